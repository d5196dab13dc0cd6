//! Runtime log records, in runc's formats, so shims that read `--log` find our errors.
//!
//! `text` is logrus-style (`time="…" level=error msg="…"`), `json` one object a line
//! (`{"level":"error","msg":"…","time":"…"}`); without `--log` records go to stderr.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug)]
struct Config {
    path: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Sets where records go; called once by the binary before any command runs.
pub fn init(path: Option<PathBuf>, format: Format, debug: bool) {
    let _ = CONFIG.set(Config { path, format, debug });
}

pub fn is_debug() -> bool {
    CONFIG.get().is_some_and(|c| c.debug)
}

pub fn debug(msg: &str) {
    if is_debug() {
        record("debug", msg);
    }
}

pub fn warn(msg: &str) {
    record("warning", msg);
}

pub fn error(msg: &str) {
    record("error", msg);
}

/// Whether records go to a file (so the caller still owes stderr one line).
pub fn has_file() -> bool {
    CONFIG.get().is_some_and(|c| c.path.is_some())
}

fn record(level: &str, msg: &str) {
    let (path, format) = match CONFIG.get() {
        Some(c) => (c.path.as_ref(), c.format),
        None => (None, Format::Text),
    };
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let line = format_record(format, &time, level, msg);
    match path {
        Some(p) => {
            if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(p) {
                let _ = f.write_all(line.as_bytes());
            }
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

fn format_record(format: Format, time: &str, level: &str, msg: &str) -> String {
    match format {
        Format::Json => {
            let v = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{v}\n")
        }
        Format::Text => format!("time=\"{time}\" level={level} msg={}\n", serde_json::Value::from(msg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_record_is_one_object_a_line() {
        let s = format_record(Format::Json, "t", "error", "bad \"x\"");
        assert!(s.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "bad \"x\"");
    }

    #[test]
    fn text_record_quotes_message() {
        let s = format_record(Format::Text, "t", "warning", "a b");
        assert_eq!(s, "time=\"t\" level=warning msg=\"a b\"\n");
    }
}
