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
