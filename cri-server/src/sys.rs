//! Small safe wrappers over system calls that neither libc nor nix offers safely, so that the
//! modules calling them need no `unsafe`. Thin calls: no locking; return conventions are the
//! system call's own (`-1` and errno) unless said otherwise.

use nix::sys::inotify::Inotify;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use tokio::io::unix::AsyncFd;

/// kill(2). Returns its result; errno is left for the caller.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> libc::c_int {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    unsafe { libc::kill(pid, sig) }
}

/// geteuid(2).
pub fn geteuid() -> libc::uid_t {
    // SAFETY: geteuid cannot fail and takes no arguments.
    unsafe { libc::geteuid() }
}

/// The running kernel's release string (uname's `release`), without its NUL; `None` if
/// uname fails.
pub fn kernel_release() -> Option<Vec<u8>> {
    // SAFETY: utsname is arrays of c_char: all-zero is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the live struct it is given.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    Some(u.release.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect())
}

/// mount_setattr(2) with fd -1 and null pointers: fails with ENOSYS where the system call
/// does not exist, otherwise early on the bad fd. Returns the raw result.
pub fn mount_setattr_probe() -> libc::c_long {
    // SAFETY: no pointer is dereferenced for fd -1; the kernel fails the call early.
    unsafe { libc::syscall(libc::SYS_mount_setattr, -1, std::ptr::null::<libc::c_char>(), 0, std::ptr::null_mut::<libc::c_void>(), 0usize) }
}

/// lgetxattr(2) of `name` on `path` (not following a final symlink) into `buf`; the value's
/// length, or -1.
pub fn lgetxattr(path: &CStr, name: &CStr, buf: &mut [u8]) -> libc::ssize_t {
    // SAFETY: two NUL-terminated strings and a live buffer of the length passed.
    unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
}

/// flock(2) with `op` (LOCK_SH/LOCK_EX, maybe LOCK_NB).
pub fn flock(fd: BorrowedFd<'_>, op: libc::c_int) -> libc::c_int {
    // SAFETY: flock takes an fd, borrowed for the call, and an integer.
    unsafe { libc::flock(fd.as_raw_fd(), op) }
}

/// gmtime_r(3): `secs` since the epoch broken down in UTC; `None` if it does not fit.
pub fn gmtime(secs: libc::time_t) -> Option<libc::tm> {
    // SAFETY: libc::tm is plain integers (and a pointer that may be null): all-zero is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to live values; gmtime_r is thread-safe.
    if unsafe { libc::gmtime_r(&secs, &mut tm) }.is_null() {
        return None;
    }
    Some(tm)
}

/// Sets O_NONBLOCK on `fd` (fcntl F_GETFL, then F_SETFL; errors ignored).
pub fn set_nonblocking(fd: BorrowedFd<'_>) {
    // SAFETY: F_GETFL/F_SETFL on an fd borrowed for the calls; integers only.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// recv(2) into `buf` with `flags`: the byte count, or errno as an io::Error.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], flags: libc::c_int) -> std::io::Result<usize> {
    // SAFETY: receiving into a live buffer of the length passed, on a borrowed fd.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// send(2) of `data` with `flags`: the byte count, or errno as an io::Error.
pub fn send(fd: BorrowedFd<'_>, data: &[u8], flags: libc::c_int) -> std::io::Result<usize> {
    // SAFETY: sending from a live buffer of the length passed, on a borrowed fd.
    let n = unsafe { libc::send(fd.as_raw_fd(), data.as_ptr().cast(), data.len(), flags) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// shutdown(2) of one or both directions (`how`: SHUT_RD, SHUT_WR, SHUT_RDWR).
pub fn shutdown(fd: BorrowedFd<'_>, how: libc::c_int) -> libc::c_int {
    // SAFETY: integers only, on a borrowed fd.
    unsafe { libc::shutdown(fd.as_raw_fd(), how) }
}

/// Makes `cmd`'s child join the user namespace `ns` and become its root (setresgid and
/// setresuid to 0) between fork and exec. `ns` must stay open until the command is spawned
/// (else the child fails with EBADF).
pub fn join_userns_as_root_on_exec(cmd: &mut std::process::Command, ns: RawFd) {
    // SAFETY: between fork and exec only setns and the set*id calls run: async-signal-safe,
    // no allocation (io::Error::last_os_error allocates nothing).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns, libc::CLONE_NEWUSER) != 0 || libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// An inotify instance as tokio registers it (nix's type has no `AsRawFd`). The instance is
/// only lent out, so its fd stays the one registered for the `AsyncFd`'s whole life.
pub struct InotifyFd(Inotify);

impl InotifyFd {
    pub fn inotify(&self) -> &Inotify {
        &self.0
    }
}

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Registers `ino` with tokio's reactor (must run inside a tokio runtime).
pub fn async_inotify(ino: Inotify) -> std::io::Result<AsyncFd<InotifyFd>> {
    // SAFETY: the InotifyFd owns its fd, nothing can close or replace it (its field is
    // private and only lent), so the fd stays open and the same while the AsyncFd holds it.
    Ok(unsafe { AsyncFd::register(InotifyFd(ino))? })
}
