//! Small safe wrappers over system calls that neither libc nor nix offers safely, so that the
//! modules calling them need no `unsafe`. Thin calls: no allocation, no locking.

use nix::sys::socket::{ControlMessageOwned, RecvMsg};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// CLOCK_REALTIME now, and the same second broken down in local time (all zero if
/// localtime_r fails).
pub fn local_now() -> (libc::timespec, libc::tm) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec to the live out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    // SAFETY: libc::tm is plain integers (and a pointer that may be null): all-zero is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads the live timespec's seconds and writes the live tm.
    if unsafe { libc::localtime_r(&ts.tv_sec, &mut tm) }.is_null() {
        // SAFETY: as above, all-zero is a valid tm.
        tm = unsafe { std::mem::zeroed() };
    }
    (ts, tm)
}

/// mkdtemp(3): creates a directory named after `template` with its trailing XXXXXX
/// replaced, and returns that name.
pub fn mkdtemp(template: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut t = template.as_os_str().as_bytes().to_vec();
    t.push(0);
    // SAFETY: mkdtemp rewrites the XXXXXX of a NUL-terminated buffer we own.
    if unsafe { libc::mkdtemp(t.as_mut_ptr().cast()) }.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    t.pop();
    Ok(std::path::PathBuf::from(std::ffi::OsString::from(std::ffi::OsStr::from_bytes(&t))))
}

/// ioctl(TIOCSWINSZ): sets the terminal's size. Returns the raw result (errno is kept).
pub fn set_winsize(tty: BorrowedFd<'_>, ws: &libc::winsize) -> libc::c_int {
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, valid for the call.
    unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) }
}

/// The fds a received message carried (SCM_RIGHTS), now owned, in order. Takes the message
/// so that its fds cannot be taken twice.
pub fn take_fds<S>(msg: RecvMsg<'_, '_, S>) -> nix::Result<Vec<OwnedFd>> {
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
    Ok(fds)
}
