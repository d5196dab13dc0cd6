//! Integration tests of `berth-cri` through its CRI gRPC socket, as kubelet would.

mod common;
mod config;
mod crictl;
mod node;
mod pods;
mod grpc;
mod hostile;
mod hostile_registry;
mod import;
mod network;
mod pull;
mod rootfs;
mod streaming;
