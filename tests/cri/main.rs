//! Integration tests of `berth-cri` through its CRI gRPC socket, as kubelet would.
