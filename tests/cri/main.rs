//! Integration tests of `berth-cri` through its CRI gRPC socket, as kubelet would.

mod checkpoint;
mod common;
mod config;
mod crash;
mod events;
mod crictl;
mod node;
mod pods;
mod grpc;
mod hostile;
mod hostile_registry;
mod image_ids;
mod import;
mod load;
mod metrics;
mod network;
mod pull;
mod rootfs;
mod rro;
mod runtime_config;
mod stats;
mod streaming;
mod supplemental_groups;
mod userns;
