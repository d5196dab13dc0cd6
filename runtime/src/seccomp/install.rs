//! Installing a compiled program with seccomp(2).

use super::{flag, Program};
use crate::error::{Error, Result};
use crate::sync::{Channel, Msg};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;

/// Applies `p` to the calling thread (and, with TSYNC, its siblings). Without
/// no_new_privs this needs CAP_SYS_ADMIN. Returns the notification listener when the
/// program has one.
pub fn install(p: &Program) -> Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog { len: p.filter.len() as u16, filter: p.filter.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `prog` points at `p.filter`, alive for the call; the kernel copies it.
    let r =
        unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, p.flags as libc::c_ulong, &prog as *const libc::sock_fprog) };
    if r < 0 {
        let e = nix::errno::Errno::last();
        let why = match e {
            nix::errno::Errno::EACCES => " (needs no_new_privs or CAP_SYS_ADMIN)",
            nix::errno::Errno::EINVAL => " (the kernel refused the filter or its flags)",
            _ => "",
        };
        return Err(Error::Init(format!("install seccomp filter: {e}{why}")));
    }
    if p.flags & flag::NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the return value is a new fd that we own.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }));
    }
    if p.flags & flag::TSYNC != 0 && r > 0 {
        return Err(Error::Init(format!("install seccomp filter: thread {r} could not be synchronized")));
    }
    Ok(None)
}

/// In the container's init: install, then hand a notification listener to `berth create`
/// (which passes it on to the agent) and drop our copy, so that once the agent goes away
/// notified syscalls fail instead of waiting for ever.
pub fn install_in_init(p: &Program, ch: &Channel) -> Result<()> {
    if let Some(fd) = install(p)? {
        ch.send_with_fd(&Msg::SeccompListener, fd.as_fd())?;
    }
    Ok(())
}

/// Whether the kernel knows `flags`: seccomp(2) checks them before it reads the program,
/// so a null program gives EFAULT for known flags and EINVAL for unknown ones.
pub fn flags_supported(flags: u32) -> bool {
    // SAFETY: a null program is never read past the flags check (EFAULT).
    let r = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags as libc::c_ulong, std::ptr::null::<u8>()) };
    r < 0 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
}
