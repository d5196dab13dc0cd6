//! File descriptors that may reach the container: stdio and the preserved ones only.

use crate::error::{Context, Error, Result};

/// Marks every fd from `3 + preserve` on close-on-exec, and clears it on the preserved ones.
pub fn restrict_to(preserve: i32) -> Result<()> {
    for fd in 3..3 + preserve {
        // An fd not open just fails.
        crate::sys::set_fd_flags(fd, 0);
    }
    let first = (3 + preserve) as libc::c_uint;
    let r = crate::sys::cloexec_from(first);
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
        if crate::sys::fd_flags(fd) < 0 {
            return Err(Error::Spec(format!("--preserve-fds: fd {fd} is not open")));
        }
    }
    Ok(())
}
