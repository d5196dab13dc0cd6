//! Integration tests of `berth-cri` through its CRI gRPC socket, as kubelet would.

// A `Node` holds `network::SERIAL`'s std guard for its whole life, across awaits, on purpose:
// the tests that change the host's bridges and iptables run one at a time.
#![allow(clippy::await_holding_lock)]
// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

mod checkpoint;
mod common;
mod config;
mod crash;
mod crictl;
mod escape;
mod events;
mod grpc;
mod hostile;
mod hostile_registry;
mod image_ids;
mod import;
mod load;
mod metrics;
mod network;
mod node;
mod pods;
mod private_state;
mod pull;
mod rootfs;
mod rro;
mod runtime_config;
mod spdy_client;
mod stats;
mod streaming;
mod streaming_transports;
mod supplemental_groups;
mod userns;
