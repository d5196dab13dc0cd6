//! Metrics. Two kinds, kept apart:
//! - the CRI's own (KEP-2371): ListMetricDescriptors and ListPodSandboxMetrics answer with
//!   cAdvisor-named series of pods and containers (`descriptors.rs` what is announced,
//!   `pod.rs` series from the readings of `stats/`);
//! - the daemon's Prometheus endpoint: counts and latencies of the CRI calls and image pulls
//!   (`daemon.rs` the registry, `layer.rs` the tower layer recording each call, `http.rs`
//!   the `/metrics` server, off unless `metrics.enable`).

pub mod daemon;
pub mod descriptors;
pub mod http;
pub mod layer;
pub mod pod;
