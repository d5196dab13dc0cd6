//! A `--console-socket` receiver owned by the test.
//!
//! runc's protocol: the runtime connects to the unix socket and sends one message whose data is
//! the pty's name (e.g. `/dev/pts/0`) and whose SCM_RIGHTS ancillary data is the pty master fd.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The pty master received from the runtime, with the name it sent.
pub struct Master {
    pub name: String,
    pub file: File,
}

/// A listening console socket; `accept` runs in a thread so `create` can connect meanwhile.
pub struct ConsoleSocket {
    pub path: PathBuf,
    rx: mpsc::Receiver<std::io::Result<Master>>,
}

impl ConsoleSocket {
    /// Listen at `path` and accept one connection in the background.
    pub fn listen(path: &Path) -> ConsoleSocket {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let r = l.accept().and_then(|(s, _)| recv_fd(s.as_raw_fd()));
            let _ = tx.send(r);
        });
        ConsoleSocket { path: path.to_path_buf(), rx }
    }

    pub fn path_str(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// The master, once the runtime has sent it.
    pub fn master(&self, timeout: Duration) -> std::io::Result<Master> {
        self.rx.recv_timeout(timeout).map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no console received: {e}")))?
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn recv_fd(sock: i32) -> std::io::Result<Master> {
    let mut buf = [0u8; 4096];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut _, iov_len: buf.len() };
    let mut cbuf = [0u64; 64];
    // SAFETY: msghdr is integers and pointers: all-zero (null) is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut _;
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg points at the live iovec and control buffer of the lengths it states.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let name = String::from_utf8_lossy(&buf[..n as usize]).trim_end_matches('\0').to_string();
    // SAFETY: msg is the header recvmsg just filled.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: cmsg is non-null (loop condition) and points into the live control buffer.
        let c = unsafe { &*cmsg };
        if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: SCM_RIGHTS data holds at least one int; read unaligned from the live control buffer.
            let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32) };
            // SAFETY: the kernel installed this fd for us with the message; nothing else owns it.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            return Ok(Master { name, file: File::from(owned) });
        }
        // SAFETY: msg and cmsg as above; CMSG_NXTHDR returns null after the last header.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("message {name:?} carried no SCM_RIGHTS fd")))
}

impl Master {
    pub fn write_all(&mut self, b: &[u8]) {
        self.file.write_all(b).expect("write to pty master");
    }

    /// Read from the master (non-blocking poll) until `needle` shows up or `timeout`; returns
    /// all that was read.
    pub fn read_until(&mut self, needle: &str, timeout: Duration) -> String {
        let fd = self.file.as_raw_fd();
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            if String::from_utf8_lossy(&got).contains(needle) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: poll on one live pollfd.
            let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(200) as i32) };
            if r <= 0 {
                continue;
            }
            if p.revents & libc::POLLIN == 0 {
                // POLLHUP: the slave side is closed (container gone).
                break;
            }
            let mut b = [0u8; 4096];
            match self.file.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }
}
