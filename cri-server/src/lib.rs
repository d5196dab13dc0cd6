//! berth-cri: the CRI v1 daemon of berth. `main.rs` only parses the command line; everything
//! else lives here: configuration, the image store, pods and containers, CNI networking, the
//! gRPC services and `play`.

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
