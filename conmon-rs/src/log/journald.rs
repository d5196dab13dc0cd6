//! The systemd journal through its native protocol: one datagram per entry to
//! `/run/systemd/journal/socket`, fields as `KEY=value\n`, the message in the length-prefixed
//! binary form (it may hold any byte), and an entry too large for a datagram passed as a
//! sealed memfd. Written here because the only alternative, libsystemd's `sd_journal_sendv`,
//! is C. Fields as conmon sets them: MESSAGE, CONTAINER_ID_FULL, CONTAINER_ID (12 chars),
//! CONTAINER_NAME, CONTAINER_TAG, SYSLOG_IDENTIFIER, PRIORITY (6 stdout, 3 stderr),
//! CONTAINER_PARTIAL_MESSAGE=true for a line cut short.
//!
//! `BERTH_MON_JOURNAL_SOCKET` names another socket (the tests listen on one of their own).

use super::Stream;
use crate::diag;
use crate::error::{Error, Result};
use std::io::{IoSlice, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

const PARTIAL_MAX: usize = 8192;
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";

pub struct Journal {
    sock: Option<UnixDatagram>,
    path: PathBuf,
    fixed: Vec<u8>,
    partial: [Vec<u8>; 2],
    warned: bool,
}

impl Journal {
    pub fn new(cid: &str, name: Option<&str>, tag: Option<&str>) -> Result<Journal> {
        if cid.len() <= 12 {
            return Err(Error::Config("Container ID must be longer than 12 characters".into()));
        }
        let short = &cid[..12];
        let mut fixed = Vec::new();
        let _ = writeln!(fixed, "CONTAINER_ID_FULL={cid}");
        let _ = writeln!(fixed, "CONTAINER_ID={short}");
        if let Some(t) = tag {
            let _ = writeln!(fixed, "CONTAINER_TAG={t}");
        }
        if let Some(n) = name {
            let _ = writeln!(fixed, "CONTAINER_NAME={n}");
        }
        // Identifier precedence as conmon: tag, then name, then the short id.
        let ident = tag.or(name).unwrap_or(short);
        let _ = writeln!(fixed, "SYSLOG_IDENTIFIER={ident}");
        let path = std::env::var_os("BERTH_MON_JOURNAL_SOCKET").map(PathBuf::from).unwrap_or_else(|| DEFAULT_SOCKET.into());
        let sock = UnixDatagram::unbound().ok();
        Ok(Journal { sock, path, fixed, partial: [Vec::new(), Vec::new()], warned: false })
    }

    /// Lines are sent whole; a tail without a newline waits for the rest of its line unless
    /// it outgrows the buffer.
    pub fn write(&mut self, s: Stream, mut buf: &[u8]) {
        let i = s as usize;
        while !buf.is_empty() {
            match buf.iter().position(|&b| b == b'\n') {
                Some(n) => {
                    let mut msg = std::mem::take(&mut self.partial[i]);
                    msg.extend_from_slice(&buf[..=n]);
                    self.send(s, &msg, false);
                    buf = &buf[n + 1..];
                }
                None => {
                    if self.partial[i].len() + buf.len() < PARTIAL_MAX {
                        self.partial[i].extend_from_slice(buf);
                    } else {
                        let mut msg = std::mem::take(&mut self.partial[i]);
                        msg.extend_from_slice(buf);
                        self.send(s, &msg, true);
                    }
                    return;
                }
            }
        }
    }

    pub fn flush(&mut self, s: Stream) {
        let msg = std::mem::take(&mut self.partial[s as usize]);
        if !msg.is_empty() {
            self.send(s, &msg, true);
        }
    }

    fn entry(&self, s: Stream, msg: &[u8], partial: bool) -> Vec<u8> {
        let mut e = Vec::with_capacity(msg.len() + self.fixed.len() + 64);
        e.extend_from_slice(b"MESSAGE\n");
        e.extend_from_slice(&(msg.len() as u64).to_le_bytes());
        e.extend_from_slice(msg);
        e.push(b'\n');
        e.extend_from_slice(if s == Stream::Stderr { b"PRIORITY=3\n" } else { b"PRIORITY=6\n" });
        e.extend_from_slice(&self.fixed);
        if partial {
            e.extend_from_slice(b"CONTAINER_PARTIAL_MESSAGE=true\n");
        }
        e
    }

    fn send(&mut self, s: Stream, msg: &[u8], partial: bool) {
        let entry = self.entry(s, msg, partial);
        let Some(sock) = &self.sock else { return };
        let r = match sock.send_to(&entry, &self.path) {
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) || e.raw_os_error() == Some(libc::ENOBUFS) => {
                send_memfd(sock, &self.path, &entry)
            }
            r => r.map(|_| ()),
        };
        if let Err(e) = r {
            // Once: a journal that is not there must not flood the monitor's own log.
            if !self.warned {
                diag::warn(&format!("cannot log to the journal at {}: {e}", self.path.display()));
                self.warned = true;
            }
        }
    }
}

/// journald's protocol for big entries: the entry in a sealed memfd, passed as the only
/// content of an otherwise empty datagram.
fn send_memfd(sock: &UnixDatagram, path: &Path, entry: &[u8]) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let fd = memfd_create(c"berth-mon-journal", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).map_err(std::io::Error::from)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(entry)?;
    let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_SEAL;
    fcntl(&f, FcntlArg::F_ADD_SEALS(seals)).map_err(std::io::Error::from)?;
    let addr = UnixAddr::new(path).map_err(std::io::Error::from)?;
    let fds = [f.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov: [IoSlice; 0] = [];
    sendmsg(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&addr)).map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode one native-protocol datagram into (key, value) pairs.
    fn decode(mut d: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let nl = d.iter().position(|&b| b == b'\n').unwrap();
            let line = &d[..nl];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                out.push((String::from_utf8_lossy(&line[..eq]).into_owned(), line[eq + 1..].to_vec()));
                d = &d[nl + 1..];
            } else {
                let key = String::from_utf8_lossy(line).into_owned();
                let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().unwrap()) as usize;
                out.push((key, d[nl + 9..nl + 9 + len].to_vec()));
                d = &d[nl + 9 + len + 1..];
            }
        }
        out
    }

    #[test]
    fn entries_carry_conmons_fields() {
        let j = Journal::new("0123456789abcdef", Some("web"), None).unwrap();
        let e = decode(&j.entry(Stream::Stderr, b"a=b\nc", true));
        let get = |k: &str| e.iter().find(|(kk, _)| kk == k).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        assert_eq!(get("MESSAGE").as_deref(), Some("a=b\nc"));
        assert_eq!(get("PRIORITY").as_deref(), Some("3"));
        assert_eq!(get("CONTAINER_ID").as_deref(), Some("0123456789ab"));
        assert_eq!(get("CONTAINER_ID_FULL").as_deref(), Some("0123456789abcdef"));
        assert_eq!(get("CONTAINER_NAME").as_deref(), Some("web"));
        assert_eq!(get("SYSLOG_IDENTIFIER").as_deref(), Some("web"));
        assert_eq!(get("CONTAINER_PARTIAL_MESSAGE").as_deref(), Some("true"));
        assert!(Journal::new("short", None, None).is_err());
    }

    #[test]
    fn lines_are_sent_whole_and_big_entries_by_memfd() {
        let dir = std::env::temp_dir().join(format!("berth-mon-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut j = Journal::new("0123456789abcdef", None, None).unwrap();
        j.path = path.clone();
        j.write(Stream::Stdout, b"hel");
        j.write(Stream::Stdout, b"lo\nwor");
        j.flush(Stream::Stdout);
        let mut buf = vec![0u8; 65536];
        let n = server.recv(&mut buf).unwrap();
        let e = decode(&buf[..n]);
        assert_eq!(e[0].1, b"hello\n");
        let n = server.recv(&mut buf).unwrap();
        let e = decode(&buf[..n]);
        assert_eq!(e[0].1, b"wor");
        assert!(e.iter().any(|(k, _)| k == "CONTAINER_PARTIAL_MESSAGE"));
        // Bigger than the datagram limit (the default wmem_max is ~208 KiB).
        let big = vec![b'x'; 600_000];
        let mut line = big.clone();
        line.push(b'\n');
        j.write(Stream::Stdout, &line);
        use nix::sys::socket::{recvmsg, MsgFlags, UnixAddr};
        let mut cbuf = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let m = recvmsg::<UnixAddr>(server.as_raw_fd(), &mut iov, Some(&mut cbuf), MsgFlags::empty()).unwrap();
        let fd = crate::sys::take_fds(m).unwrap().into_iter().next().expect("an fd");
        let data = std::fs::read(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let e = decode(&data);
        assert_eq!(e[0].1.len(), big.len() + 1);
        drop(fd);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
