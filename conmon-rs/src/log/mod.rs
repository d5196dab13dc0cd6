//! Where the container's output goes: the CRI log file kubelet reads (`k8s-file`), the
//! systemd journal (`journald`), nowhere (`none`), or straight through (`passthrough`: the
//! runtime gets berth-mon's own stdio).

pub mod cri;
pub mod journald;
mod timestamp;

use crate::error::{Error, Result};
use std::path::PathBuf;

/// One of the container's output streams.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
    /// The byte that tags this stream's packets on the attach socket (conmon's `stdpipe_t`).
    pub fn attach_tag(self) -> u8 {
        match self {
            Stream::Stdout => 2,
            Stream::Stderr => 3,
        }
    }
}

/// A parsed `-l/--log-path` value.
#[derive(Debug, PartialEq, Eq)]
pub enum Driver {
    None,
    Passthrough,
    Journald,
    File(PathBuf),
}

/// conmon's rules: `DRIVER:PATH`, or a bare `PATH` (a k8s-file), `:PATH` also a k8s-file;
/// `none`/`off`/`null` log nowhere (so `-l journald -l none` still logs to the journal).
/// Unlike conmon, a path may itself contain colons (everything after the first one).
pub fn parse_driver(v: &str) -> Result<Driver> {
    if v.is_empty() {
        return Err(Error::Config("log-path must not be empty".into()));
    }
    let (driver, path) = match v.split_once(':') {
        Some(("", p)) if !p.is_empty() => return Ok(Driver::File(p.into())),
        Some((d, p)) => (d, if p.is_empty() { None } else { Some(p) }),
        None => (v, None),
    };
    match driver {
        "off" | "null" | "none" => Ok(Driver::None),
        "passthrough" => Ok(Driver::Passthrough),
        "journald" => Ok(Driver::Journald),
        "k8s-file" => match path {
            Some(p) => Ok(Driver::File(p.into())),
            None => Err(Error::Config("k8s-file requires a filename".into())),
        },
        _ if path.is_none() && !v.contains(':') => Ok(Driver::File(v.into())),
        d => Err(Error::Config(format!("No such log driver {d}"))),
    }
}

/// Every configured destination of the container's output.
pub struct Logs {
    pub file: Option<cri::CriLog>,
    pub journal: Option<journald::Journal>,
    pub passthrough: bool,
}

pub struct LogConfig<'a> {
    pub paths: &'a [String],
    pub size_max: i64,
    pub global_size_max: i64,
    pub cid: &'a str,
    pub name: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub sync_on_reopen: bool,
}

impl Logs {
    pub fn open(c: &LogConfig) -> Result<Logs> {
        let mut file_path = None;
        let mut journald = false;
        let mut passthrough = false;
        for p in c.paths {
            match parse_driver(p)? {
                Driver::None => {}
                Driver::Passthrough => passthrough = true,
                Driver::Journald => journald = true,
                // conmon keeps the last k8s-file given.
                Driver::File(f) => file_path = Some(f),
            }
        }
        if passthrough {
            // A container writing to the caller's terminal could push input into it (TIOCSTI).
            use std::io::IsTerminal;
            let tty = std::io::stdin().is_terminal() || std::io::stdout().is_terminal() || std::io::stderr().is_terminal();
            if tty {
                return Err(Error::Config("cannot use a tty with passthrough logging mode to prevent attacks via TIOCSTI".into()));
            }
        }
        if file_path.is_some() && !journald && c.tag.is_some() {
            return Err(Error::Config("k8s-file doesn't support --log-tag".into()));
        }
        let file = match file_path {
            Some(p) => Some(cri::CriLog::open(p, c.size_max, c.global_size_max, c.sync_on_reopen)?),
            None => None,
        };
        let journal = if journald { Some(journald::Journal::new(c.cid, c.name, c.tag)?) } else { None };
        Ok(Logs { file, journal, passthrough })
    }

    /// Record a chunk of the container's output.
    pub fn write(&mut self, s: Stream, buf: &[u8]) {
        if let Some(f) = &mut self.file {
            f.write(s, buf);
        }
        if let Some(j) = &mut self.journal {
            j.write(s, buf);
        }
    }

    /// Flush what is buffered (the journal keeps partial lines until their newline).
    pub fn flush(&mut self) {
        if let Some(j) = &mut self.journal {
            j.flush(Stream::Stdout);
            j.flush(Stream::Stderr);
        }
    }

    /// The `ReopenContainerLog` request (ctl message 2).
    pub fn reopen(&mut self) {
        if let Some(f) = &mut self.file {
            f.reopen();
        }
    }

    pub fn sync(&mut self) {
        if let Some(f) = &mut self.file {
            f.sync();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_parse_as_conmon() {
        assert_eq!(parse_driver("k8s-file:/a/b.log").unwrap(), Driver::File("/a/b.log".into()));
        assert_eq!(parse_driver("/a/b.log").unwrap(), Driver::File("/a/b.log".into()));
        assert_eq!(parse_driver(":/a/b.log").unwrap(), Driver::File("/a/b.log".into()));
        assert_eq!(parse_driver("k8s-file:/a:b").unwrap(), Driver::File("/a:b".into()));
        assert_eq!(parse_driver("journald:").unwrap(), Driver::Journald);
        assert_eq!(parse_driver("journald").unwrap(), Driver::Journald);
        assert_eq!(parse_driver("none").unwrap(), Driver::None);
        assert_eq!(parse_driver("none:").unwrap(), Driver::None);
        assert_eq!(parse_driver("passthrough").unwrap(), Driver::Passthrough);
        assert!(parse_driver("").is_err());
        assert!(parse_driver("k8s-file").unwrap_err().to_string().contains("requires a filename"));
        assert!(parse_driver("syslog:/x").unwrap_err().to_string().contains("No such log driver syslog"));
    }
}
