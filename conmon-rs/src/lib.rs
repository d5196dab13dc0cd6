//! berth-mon: a conmon-compatible monitor, one per container. It outlives whoever started
//! the container, relays the container's stdio to the CRI log and to attached clients,
//! records the exit code and OOM kills, and runs exec-sync commands with a timeout.

pub mod attach;
pub mod cli;
pub mod console;
pub mod ctl;
pub mod diag;
pub mod error;
pub mod exit;
pub mod log;
pub mod monitor;
pub mod notify;
pub mod oom;
pub mod parent_pipe;
mod relay;
pub mod runtime;

/// The conmon release whose command line and protocols berth-mon speaks (podman checks the
/// `conmon version X.Y.Z` line).
pub const CONMON_COMPAT: &str = "2.1.7";
