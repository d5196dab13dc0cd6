//! File descriptors that may reach the container: stdio and the preserved ones only.

use crate::error::{Context, Error, Result};

/// Marks every fd from `3 + preserve` on close-on-exec, and clears it on the preserved ones.
pub fn restrict_to(preserve: i32) -> Result<()> {
    for fd in 3..3 + preserve {
        // SAFETY: F_SETFD on an fd number; an fd not open just fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    let first = (3 + preserve) as libc::c_uint;
    // SAFETY: close_range with CLOEXEC only flips flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r < 0 {
        return Err(nix::errno::Errno::last()).ctx("close_range");
    }
    Ok(())
}

/// The fds a caller passes with --preserve-fds must really be open: berth's own files
/// would otherwise take those numbers and leak into the container.
pub fn check_preserved(n: i32) -> Result<()> {
    if n < 0 {
        return Err(Error::Spec("--preserve-fds must not be negative".into()));
    }
    for fd in 3..3 + n {
        // SAFETY: F_GETFD only queries.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::Spec(format!("--preserve-fds: fd {fd} is not open")));
        }
    }
    Ok(())
}
