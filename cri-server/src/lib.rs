//! berth-cri: the CRI v1 daemon of berth. `main.rs` only parses the command line; everything
//! else lives here: configuration, the image store, pods and containers, CNI networking, the
//! gRPC services and `play`.

// `exec_attached` and the pod namespace helper take their eight inputs as plain arguments:
// a struct used by one caller each would only rename them.
#![allow(clippy::too_many_arguments)]
// NetworkError carries a CNI plugin's whole error record (six fields); it is returned once
// per plugin run, a process spawn, so its size costs nothing and boxing it only obscures it.
#![allow(clippy::result_large_err)]
// `unsafe` only in the modules allowed below: the system-call doors.
#![deny(unsafe_code)]
// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod config;
pub mod container;
pub mod daemon;
pub mod events;
pub mod image;
pub mod metrics;
pub mod network;
pub mod persist;
pub mod play;
pub mod registry;
pub mod sandbox;
pub mod server;
pub mod stats;
pub mod streaming;
#[allow(unsafe_code)] // small safe wrappers over system calls
pub mod sys;
