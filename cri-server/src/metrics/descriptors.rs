//! The metrics ListMetricDescriptors announces and ListPodSandboxMetrics reports: cAdvisor's
//! names, help texts and label keys (the ones kubelet's `/metrics/cadvisor` carried before
//! KEP-2371, which the CRI metrics collector now passes through), limited to what berth-cri
//! measures through `stats/`.
//!
//! Every metric has the base labels `id image namespace pod container` (CRI-O's order), then
//! the descriptor's own keys. A value is an unsigned integer (the CRI's `UInt64Value`), so
//! seconds are whole seconds, as CRI-O reports them.

use k8s_cri::v1 as cri;

/// The labels every metric starts with.
pub const BASE_LABELS: [&str; 5] = ["id", "image", "namespace", "pod", "container"];

/// One metric berth-cri can report.
#[derive(Debug)]
pub struct Desc {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: cri::MetricType,
    /// Label keys after the base ones.
    pub extra: &'static [&'static str],
}

use cri::MetricType::{Counter, Gauge};

const fn d(name: &'static str, help: &'static str, kind: cri::MetricType, extra: &'static [&'static str]) -> Desc {
    Desc { name, help, kind, extra }
}

pub const LAST_SEEN: Desc = d("container_last_seen", "Last time a container was seen by the exporter", Gauge, &[]);
pub const START_TIME: Desc = d("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", Gauge, &[]);
pub const CPU_USAGE: Desc = d("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", Counter, &["cpu"]);
pub const MEMORY_USAGE: Desc =
    d("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", Gauge, &[]);
pub const MEMORY_WORKING_SET: Desc = d("container_memory_working_set_bytes", "Current working set in bytes.", Gauge, &[]);
pub const MEMORY_RSS: Desc = d("container_memory_rss", "Size of RSS in bytes.", Gauge, &[]);
pub const MEMORY_CACHE: Desc = d("container_memory_cache", "Number of bytes of page cache memory.", Gauge, &[]);
pub const MEMORY_FAILURES: Desc =
    d("container_memory_failures_total", "Cumulative count of memory allocation failures.", Counter, &["failure_type", "scope"]);
pub const MEMORY_LIMIT: Desc = d("container_spec_memory_limit_bytes", "Memory limit for the container.", Gauge, &[]);
pub const PROCESSES: Desc = d("container_processes", "Number of processes running inside the container.", Gauge, &[]);
pub const FS_USAGE: Desc =
    d("container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", Gauge, &[]);

const IFACE: &[&str] = &["interface"];
pub const NET_RX_BYTES: Desc = d("container_network_receive_bytes_total", "Cumulative count of bytes received", Counter, IFACE);
pub const NET_RX_PACKETS: Desc = d("container_network_receive_packets_total", "Cumulative count of packets received", Counter, IFACE);
pub const NET_RX_ERRORS: Desc =
    d("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", Counter, IFACE);
pub const NET_RX_DROPPED: Desc =
    d("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", Counter, IFACE);
pub const NET_TX_BYTES: Desc = d("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", Counter, IFACE);
pub const NET_TX_PACKETS: Desc = d("container_network_transmit_packets_total", "Cumulative count of packets transmitted", Counter, IFACE);
pub const NET_TX_ERRORS: Desc =
    d("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", Counter, IFACE);
pub const NET_TX_DROPPED: Desc =
    d("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", Counter, IFACE);

/// Every metric, in the order they are announced.
pub const ALL: &[&Desc] = &[
    &LAST_SEEN,
    &START_TIME,
    &CPU_USAGE,
    &MEMORY_USAGE,
    &MEMORY_WORKING_SET,
    &MEMORY_RSS,
    &MEMORY_CACHE,
    &MEMORY_FAILURES,
    &MEMORY_LIMIT,
    &PROCESSES,
    &FS_USAGE,
    &NET_RX_BYTES,
    &NET_RX_PACKETS,
    &NET_RX_ERRORS,
    &NET_RX_DROPPED,
    &NET_TX_BYTES,
    &NET_TX_PACKETS,
    &NET_TX_ERRORS,
    &NET_TX_DROPPED,
];

impl Desc {
    pub fn label_keys(&self) -> Vec<String> {
        BASE_LABELS.iter().chain(self.extra).map(|k| k.to_string()).collect()
    }

    pub fn descriptor(&self) -> cri::MetricDescriptor {
        cri::MetricDescriptor { name: self.name.into(), help: self.help.into(), label_keys: self.label_keys() }
    }
}

/// The answer of ListMetricDescriptors.
pub fn list() -> Vec<cri::MetricDescriptor> {
    ALL.iter().map(|d| d.descriptor()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prometheus_safe() {
        let mut names: Vec<&str> = ALL.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for d in ALL {
            assert!(d.name.starts_with("container_") && d.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}", d.name);
            // Prometheus: a counter's name ends in _total (container_cpu_usage_seconds_total).
            assert_eq!(d.kind == Counter, d.name.ends_with("_total"), "{}", d.name);
            assert!(!d.help.is_empty());
        }
    }

    #[test]
    fn descriptors_start_with_the_base_labels() {
        let l = list();
        assert_eq!(l.len(), ALL.len());
        let cpu = l.iter().find(|d| d.name == "container_cpu_usage_seconds_total").unwrap();
        assert_eq!(cpu.label_keys, ["id", "image", "namespace", "pod", "container", "cpu"]);
        let rx = l.iter().find(|d| d.name == "container_network_receive_bytes_total").unwrap();
        assert_eq!(rx.label_keys.last().map(String::as_str), Some("interface"));
        assert!(l.iter().all(|d| d.label_keys[..5] == BASE_LABELS));
    }
}
