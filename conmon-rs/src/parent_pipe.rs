//! The pipes the caller hands over in `_OCI_SYNCPIPE`, `_OCI_STARTPIPE` and `_OCI_ATTACHPIPE`
//! (podman passes socketpairs, CRI-O pipes), and conmon's one-line JSON messages on them.

use crate::error::{Error, Result};
use std::os::fd::{FromRawFd, OwnedFd};

/// The fd number in environment variable `name`, made close-on-exec so that the runtime and
/// the container never inherit it.
pub fn from_env(name: &str) -> Result<Option<OwnedFd>> {
    let Some(v) = std::env::var_os(name) else { return Ok(None) };
    let s = v.to_string_lossy();
    let fd: i32 = s.parse().map_err(|_| Error::Config(format!("unable to parse {name}")))?;
    if fd < 0 {
        return Ok(None);
    }
    // SAFETY: fcntl on an arbitrary number is harmless; it fails for a closed one.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(Error::sys(format!("unable to make {name} CLOEXEC"), std::io::Error::last_os_error()));
    }
    // SAFETY: the caller gave us this fd to own; nothing else in this process refers to it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The key of a message: "data" for API version 1, else "exit_code" (legacy exec) or "pid".
pub fn key(api_version: u32, exec: bool) -> &'static str {
    if api_version >= 1 {
        "data"
    } else if exec {
        "exit_code"
    } else {
        "pid"
    }
}

/// `{"<key>": res}` or `{"<key>": res, "message": "…"}`, newline-terminated.
pub fn message(key: &str, res: i32, msg: Option<&str>) -> String {
    match msg {
        None => format!("{{\"{key}\": {res}}}\n"),
        Some(m) => format!("{{\"{key}\": {res}, \"message\": \"{}\"}}\n", escape(m)),
    }
}

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// Write one message in a single write (the caller's socketpair is SOCK_SEQPACKET: one
/// message, one record). A caller that went away is not an error worth dying for.
pub fn send(fd: &OwnedFd, key: &str, res: i32, msg: Option<&str>) {
    let m = message(key, res, msg);
    let mut off = 0;
    while off < m.len() {
        match nix::unistd::write(fd, &m.as_bytes()[off..]) {
            Ok(n) => off += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                crate::diag::warn(&format!("cannot write to the caller's pipe: {}", std::io::Error::from(e)));
                return;
            }
        }
    }
}

/// Block until the caller writes to the start pipe (or closes it).
pub fn wait_start(fd: &OwnedFd) -> Result<()> {
    let mut buf = [0u8; 8192];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("start-pipe read failed", std::io::Error::from(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_conmon() {
        assert_eq!(message(key(1, false), 42, None), "{\"data\": 42}\n");
        assert_eq!(message(key(0, false), 42, None), "{\"pid\": 42}\n");
        assert_eq!(message(key(0, true), 3, None), "{\"exit_code\": 3}\n");
        assert_eq!(
            message("data", -1, Some("bad \"thing\"\n\tx\u{1}")),
            "{\"data\": -1, \"message\": \"bad \\\"thing\\\"\\n\\tx\\u0001\"}\n"
        );
    }
}
