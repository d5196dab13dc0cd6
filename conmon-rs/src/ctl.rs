//! The `ctl` fifo in the bundle: the caller's control messages, one per line,
//! `<type> <height> <width>\n` — type 1 resizes the terminal, type 2 reopens the log file
//! (kubelet's `ReopenContainerLog`).

use crate::error::{Context, Result};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// conmon reads lines of at most 200 bytes; a longer "line" is garbage and is dropped.
const MAX_LINE: usize = 200;

#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Resize { rows: u16, cols: u16 },
    ReopenLogs,
}

pub struct Ctl {
    pub reader: File,
    /// Held open so that the reader never sees end-of-file (and a flood of POLLHUP) when the
    /// last writer closes.
    _writer: File,
    buf: Vec<u8>,
}

impl Ctl {
    pub fn create(dir: &Path) -> Result<Ctl> {
        let path = dir.join("ctl");
        let _ = std::fs::remove_file(&path);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o660))
            .ctx(|| format!("create the control fifo {}", path.display()))?;
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        let writer =
            std::fs::OpenOptions::new().write(true).custom_flags(libc::O_CLOEXEC).open(&path).ctx(|| format!("open {}", path.display()))?;
        Ok(Ctl { reader, _writer: writer, buf: Vec::new() })
    }

    /// Read what is there and return the complete messages.
    pub fn read(&mut self) -> Vec<Message> {
        let mut chunk = [0u8; 512];
        loop {
            match self.reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        parse(&mut self.buf)
    }
}

/// Take the complete lines out of `buf` and parse them; unparsable lines are logged and
/// dropped.
pub fn parse(buf: &mut Vec<u8>) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buf.drain(..=nl).collect();
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        let nums: Vec<i64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        match nums.as_slice() {
            [1, h, w] if (0..=u16::MAX as i64).contains(h) && (0..=u16::MAX as i64).contains(w) => {
                out.push(Message::Resize { rows: *h as u16, cols: *w as u16 })
            }
            [2, _, _] => out.push(Message::ReopenLogs),
            _ => crate::diag::warn(&format!("ignoring control message {text:?}")),
        }
    }
    if buf.len() > MAX_LINE {
        crate::diag::warn("ignoring an over-long control message");
        buf.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let mut b = b"1 24 80\n2 0 0\n1 -3 5\nfoo\n1 30".to_vec();
        assert_eq!(parse(&mut b), vec![Message::Resize { rows: 24, cols: 80 }, Message::ReopenLogs]);
        assert_eq!(b, b"1 30");
        b.extend_from_slice(b" 100\n");
        assert_eq!(parse(&mut b), vec![Message::Resize { rows: 30, cols: 100 }]);
        let mut junk = vec![b'x'; 300];
        assert!(parse(&mut junk).is_empty());
        assert!(junk.is_empty());
    }
}
