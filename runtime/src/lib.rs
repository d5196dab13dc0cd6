//! berth's OCI runtime library: everything behind the `berth` CLI.
//!
//! The create path, in order: [`spec`] (load and validate) → [`state`] (claim the
//! container's directory) → [`cgroups`] → [`namespaces`] (plan) → [`process::spawn`]
//! (clone, join/unshare, fork) → [`process::init`] ([`rootfs`], [`hooks`], [`console`],
//! [`seccomp`], identity, exec fifo, execve), coordinated over [`sync`]. See docs/ARCHITECTURE.md.

// `unsafe` only in the modules allowed below: the system-call doors.
#![deny(unsafe_code)]
// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod cgroups;
pub mod console;
pub mod container;
#[allow(unsafe_code)] // criu's pre_exec hook (its closures make system calls only)
pub mod criu;
pub mod error;
pub mod hooks;
pub mod logger;
pub mod lsm;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;
pub mod sync;
#[allow(unsafe_code)] // small safe wrappers over system calls
pub mod sys;
pub mod sysctl;

pub use error::{Error, Result};
