//! The attach socket: `SOCK_SEQPACKET`, one packet per chunk of output, its first byte the
//! stream (2 stdout, 3 stderr, conmon's numbering) and the rest the bytes; what a client
//! sends is the container's stdin. Every connected client gets every chunk.
//!
//! Where it lives, as conmon: with `--full-attach`, `<bundle>/attach`; otherwise
//! `<socket-dir-path>/<cuuid>` is made a symlink to the bundle and the socket is
//! `<socket-dir-path>/<cuuid>/attach` (the short name keeps the path within sun_path's 108
//! bytes). The socket is bound through `/proc/self/fd/<dir>/attach`, so a long bundle path
//! works too.

use crate::error::{Context, Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// conmon's attach packet size for stdin (and the upper bound of what is read at once).
pub const STDIN_BUF: usize = 32768;
/// A client that cannot take output for this long is dropped rather than stalling the
/// container's logs.
const SEND_TIMEOUT_SECS: libc::time_t = 5;

pub struct Client {
    pub fd: OwnedFd,
    pub readable: bool,
    pub writable: bool,
}

pub struct Attach {
    pub listener: OwnedFd,
    pub clients: Vec<Client>,
    /// The `<socket-dir>/<cuuid>` symlink to remove at exit.
    pub symlink: Option<PathBuf>,
}

const SUN_PATH_MAX: usize = 108;

/// Where the socket's directory is, creating the symlink when not `--full-attach`.
fn socket_dir(bundle: &Path, socket_dir: &Path, cuuid: &str, full: bool) -> Result<(PathBuf, Option<PathBuf>)> {
    if full {
        return Ok((bundle.to_path_buf(), None));
    }
    let mut base = socket_dir.join(cuuid).into_os_string().into_string().map_err(|_| Error::Config("socket dir is not UTF-8".into()))?;
    // conmon's corner case: a link of exactly sun_path's length - 1 would collide with the
    // socket's own name length; it makes the link one character shorter.
    if base.len() == SUN_PATH_MAX - 1 {
        base.pop();
    }
    let base = PathBuf::from(base);
    match std::fs::remove_file(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::sys(format!("Failed to remove existing symlink for socket directory {}", base.display()), e)),
    }
    std::os::unix::fs::symlink(bundle, &base).ctx(|| format!("Failed to create symlink {} for the attach socket", base.display()))?;
    Ok((base.clone(), Some(base)))
}

/// A SOCK_SEQPACKET or SOCK_DGRAM socket bound at `dir/name` (through /proc/self/fd) with
/// mode `perms`.
pub fn bind_in(dir: &Path, name: &str, ty: libc::c_int, perms: u32) -> Result<OwnedFd> {
    let dfd = std::fs::File::open(dir).ctx(|| format!("failed to open socket path parent dir {}", dir.display()))?;
    let full = dir.join(name);
    match std::fs::remove_file(&full) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::sys(format!("Failed to remove existing socket: {}", full.display()), e)),
    }
    // SAFETY: plain socket creation; the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::sys(format!("Failed to create socket {}", full.display()), std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let via = format!("/proc/self/fd/{}/{name}", dfd.as_raw_fd());
    let addr = nix::sys::socket::UnixAddr::new(via.as_str()).ctx(|| format!("socket address {via}"))?;
    // Restrictive before bind, so that the socket is never reachable with looser rights.
    // SAFETY: fchmod on the socket fd we own; integers only.
    unsafe { libc::fchmod(sock.as_raw_fd(), 0o700) };
    nix::sys::socket::bind(sock.as_raw_fd(), &addr).ctx(|| format!("Failed to bind socket {}", full.display()))?;
    std::fs::set_permissions(&full, std::os::unix::fs::PermissionsExt::from_mode(perms))
        .ctx(|| format!("Failed to change socket permissions {}", full.display()))?;
    Ok(sock)
}

impl Attach {
    pub fn bind(bundle: &Path, socket_dir_path: &Path, cuuid: &str, full: bool) -> Result<Attach> {
        let (dir, symlink) = socket_dir(bundle, socket_dir_path, cuuid, full)?;
        let listener = match bind_in(&dir, "attach", libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK, 0o700) {
            Ok(l) => l,
            Err(e) => {
                if let Some(s) = &symlink {
                    let _ = std::fs::remove_file(s);
                }
                return Err(e);
            }
        };
        // SAFETY: listen on the listener fd we own; integers only.
        if unsafe { libc::listen(listener.as_raw_fd(), 10) } == -1 {
            return Err(Error::sys("Failed to listen on attach socket", std::io::Error::last_os_error()));
        }
        Ok(Attach { listener, clients: Vec::new(), symlink })
    }

    pub fn accept(&mut self) {
        loop {
            // Accepted sockets do not inherit the listener's O_NONBLOCK: sends block, with a
            // timeout.
            // SAFETY: accept4 on the listener we own, with null address pointers (not wanted).
            let fd = unsafe { libc::accept4(self.listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
            if fd < 0 {
                return;
            }
            // SAFETY: a non-negative accept4 result is a new fd nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let tv = libc::timeval { tv_sec: SEND_TIMEOUT_SECS, tv_usec: 0 };
            // SAFETY: setsockopt reads one live timeval of the size passed, on an fd we own.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                )
            };
            crate::diag::debug(&format!("accepted attach connection {}", fd.as_raw_fd()));
            self.clients.push(Client { fd, readable: true, writable: true });
        }
    }

    /// Send one chunk of output, tagged with its stream, to every client.
    pub fn broadcast(&mut self, tag: u8, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let mut pkt = Vec::with_capacity(data.len() + 1);
        pkt.push(tag);
        pkt.extend_from_slice(data);
        for c in self.clients.iter_mut().filter(|c| c.writable) {
            // SAFETY: sending from a live buffer of the length passed, on a client fd we own.
            let n = unsafe { libc::send(c.fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len(), libc::MSG_NOSIGNAL) };
            if n < 0 {
                crate::diag::warn("Failed to write to remote console socket");
                // SAFETY: shutdown on a client fd we own; integers only.
                unsafe { libc::shutdown(c.fd.as_raw_fd(), libc::SHUT_WR) };
                c.writable = false;
            }
        }
        self.clients.retain(|c| c.readable || c.writable);
    }

    /// Read stdin from client `i`: Some(bytes) (empty when the client finished sending).
    pub fn read_client(&mut self, i: usize, buf: &mut [u8]) -> Option<usize> {
        let c = &mut self.clients[i];
        // SAFETY: receiving into a live buffer of the length passed, on a client fd we own.
        let n = unsafe { libc::recv(c.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                return None;
            }
        }
        if n <= 0 {
            // SAFETY: shutdown on a client fd we own; integers only.
            unsafe { libc::shutdown(c.fd.as_raw_fd(), libc::SHUT_RD) };
            c.readable = false;
            return Some(0);
        }
        Some(n as usize)
    }

    pub fn prune(&mut self) {
        self.clients.retain(|c| c.readable || c.writable);
    }

    /// Close every client and the listener; remove the symlink.
    pub fn close(&mut self) {
        self.clients.clear();
        if let Some(s) = self.symlink.take() {
            let _ = std::fs::remove_file(s);
        }
    }
}
