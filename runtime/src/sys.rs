//! Small safe wrappers over system calls that neither libc nor nix offers safely, so that the
//! modules calling them need no `unsafe`. Each is a thin call: no allocation, no locking, so
//! each is as async-signal-safe as the system call it wraps (several run in the container's
//! init or between fork and exec). Return conventions are the system call's own (`-1` and
//! errno), unless said otherwise.

use nix::sys::socket::{ControlMessageOwned, RecvMsg};
use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// kill(2). Returns its result; errno is left for the caller.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> libc::c_int {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    unsafe { libc::kill(pid, sig) }
}

/// setrlimit(2) of `resource` to `limit`.
pub fn setrlimit(resource: libc::__rlimit_resource_t, limit: &libc::rlimit) -> libc::c_int {
    // SAFETY: setrlimit only reads the rlimit behind the reference, valid for the call.
    unsafe { libc::setrlimit(resource, limit) }
}

/// SIGPIPE back to SIG_DFL (Rust's runtime ignores it, and ignored signals survive execve).
pub fn default_sigpipe() -> nix::Result<nix::sys::signal::SigHandler> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_DFL installs no handler, so no handler can break async-signal-safety.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }
}

/// pidfd_open(2): a pidfd on `pid`, or `None` (errno set).
pub fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a fresh fd nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// pidfd_send_signal(2) with no siginfo and no flags. Returns the raw result.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> libc::c_long {
    // SAFETY: integers only (a null siginfo); the fd is borrowed for the call.
    unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, 0usize, 0u32) }
}

/// mount_setattr(2) on an invalid fd with a null attr: fails with ENOSYS where the system
/// call does not exist, otherwise with EBADF/EINVAL. Returns the raw result.
pub fn mount_setattr_probe() -> libc::c_long {
    // SAFETY: an invalid fd, an empty static path and a null attr of size 0: the kernel only
    // validates its arguments and returns.
    unsafe { libc::syscall(libc::SYS_mount_setattr, -1, c"".as_ptr(), 0, std::ptr::null_mut::<libc::mount_attr>(), 0usize) }
}

/// fcntl(fd, F_GETFD) on an fd number that may not be open (then -1, EBADF).
pub fn fd_flags(fd: RawFd) -> libc::c_int {
    // SAFETY: F_GETFD only queries the fd table; no memory is passed.
    unsafe { libc::fcntl(fd, libc::F_GETFD) }
}

/// fcntl(fd, F_SETFD, flags) on an fd number that may not be open (then -1, EBADF).
pub fn set_fd_flags(fd: RawFd, flags: libc::c_int) -> libc::c_int {
    // SAFETY: F_SETFD only changes the fd's close-on-exec flag; no memory is passed.
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags) }
}

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC): marks every fd from `first` on close-on-exec.
/// Returns the raw result.
pub fn cloexec_from(first: libc::c_uint) -> libc::c_long {
    // SAFETY: with CLOSE_RANGE_CLOEXEC the call only flips flags; integers only.
    unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC) }
}

/// ioctl(TIOCSWINSZ): sets the terminal's size.
pub fn set_winsize(tty: BorrowedFd<'_>, ws: &libc::winsize) -> libc::c_int {
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, valid for the call.
    unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) }
}

/// ioctl(TIOCSCTTY, 0): makes `tty` the calling session leader's controlling terminal.
pub fn set_controlling_tty(tty: BorrowedFd<'_>) -> libc::c_int {
    // SAFETY: TIOCSCTTY takes an int argument; no memory is passed.
    unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) }
}

/// dup2(2) of `fd` onto the number `target` (stdio: whatever was there is replaced, which is
/// the point).
pub fn dup2(fd: BorrowedFd<'_>, target: RawFd) -> libc::c_int {
    // SAFETY: dup2 takes two fd numbers; no memory is passed.
    unsafe { libc::dup2(fd.as_raw_fd(), target) }
}

/// The fds a received message carried (SCM_RIGHTS), now owned, in order, with the message's
/// byte count. Takes the message so that its fds cannot be taken twice.
pub fn take_fds<S>(msg: RecvMsg<'_, '_, S>) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel installed these fds in our table for this message, and the
                // message is consumed here, so nothing else takes them.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((msg.bytes, fds))
}

/// `berth restore`'s criu child between fork and exec: joins the cgroup (`procs` is its
/// cgroup.procs), enters a private mount namespace, binds `rootfs` on `target` and clears
/// close-on-exec on the `keep` fds. Async-signal-safe: system calls only, no allocation.
pub fn criu_restore_child(procs: &CStr, rootfs: &CStr, target: &CStr, keep: &[RawFd]) -> std::io::Result<()> {
    let err = std::io::Error::last_os_error;
    // SAFETY: plain system calls on NUL-terminated strings that outlive the calls, and on
    // fd numbers; nothing allocates.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(err());
        }
        let n = libc::write(fd, b"0".as_ptr().cast(), 1);
        libc::close(fd);
        if n != 1 {
            return Err(err());
        }
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(err());
        }
        if libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
            return Err(err());
        }
        if libc::mount(rootfs.as_ptr(), target.as_ptr(), std::ptr::null(), libc::MS_BIND | libc::MS_REC, std::ptr::null()) != 0 {
            return Err(err());
        }
        for &fd in keep {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(err());
            }
        }
    }
    Ok(())
}
