//! berth-cri: the CRI v1 daemon of berth. `main.rs` only parses the command line; everything
//! else lives here: configuration, the image store and the gRPC services.

pub mod config;
pub mod container;
pub mod daemon;
pub mod image;
pub mod server;
