//! The processes of the create path: the cloned child, the container's init, and what
//! init does to itself before execve.

pub mod enter;
pub mod exec;
pub mod fds;
pub mod identity;
pub mod init;
pub mod pidfd;
pub mod rlimits;
pub mod spawn;

/// Rust ignores SIGPIPE and ignored signals survive execve: a container process gets the
/// default disposition and an empty signal mask.
pub fn reset_signals() -> crate::error::Result<()> {
    use crate::error::Context;
    // SAFETY: resetting a disposition to SIG_DFL installs no handler.
    unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) }.ctx("reset SIGPIPE")?;
    nix::sys::signal::SigSet::empty().thread_set_mask().ctx("clear signal mask")
}
