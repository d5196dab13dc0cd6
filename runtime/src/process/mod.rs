//! The processes of the create path: the cloned child, the container's init, and what
//! init does to itself before execve.

#[allow(unsafe_code)] // setns and fork into a running container
pub mod enter;
pub mod exec;
pub mod fds;
pub mod identity;
#[allow(unsafe_code)] // the container's init: system calls up to execve
pub mod init;
pub mod pidfd;
pub mod rlimits;
#[allow(unsafe_code)] // clone/clone3 and fork
pub mod spawn;

/// Rust ignores SIGPIPE and ignored signals survive execve: a container process gets the
/// default disposition and an empty signal mask.
pub fn reset_signals() -> crate::error::Result<()> {
    use crate::error::Context;
    crate::sys::default_sigpipe().ctx("reset SIGPIPE")?;
    nix::sys::signal::SigSet::empty().thread_set_mask().ctx("clear signal mask")
}
