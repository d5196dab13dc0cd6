//! berth-mon: a conmon-compatible monitor, one per container. It outlives whoever started
//! the container, relays the container's stdio to the CRI log and to attached clients,
//! records the exit code and OOM kills, and runs exec-sync commands with a timeout.

// `unsafe` only in the modules allowed below: the system-call doors.
#![deny(unsafe_code)]
// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

#[allow(unsafe_code)] // attach sockets: socket/listen/accept4/send/recv/shutdown on raw fds
pub mod attach;
pub mod cli;
pub mod console;
pub mod ctl;
pub mod diag;
pub mod error;
#[allow(unsafe_code)] // fork/waitpid of the exit command
pub mod exit;
pub mod log;
#[allow(unsafe_code)] // fork, setsid, subreaper, dup2 and poll of the monitor
pub mod monitor;
pub mod notify;
pub mod oom;
#[allow(unsafe_code)] // adopts the fds the caller hands over by number
pub mod parent_pipe;
#[allow(unsafe_code)] // read/write/poll on the container's stdio fds
mod relay;
#[allow(unsafe_code)] // fork and exec of the OCI runtime
pub mod runtime;
#[allow(unsafe_code)] // small safe wrappers over system calls
pub mod sys;

/// The conmon release whose command line and protocols berth-mon speaks (podman checks the
/// `conmon version X.Y.Z` line).
pub const CONMON_COMPAT: &str = "2.1.7";
