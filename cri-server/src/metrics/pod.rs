//! A pod's metrics from the readings of `stats/`: the pod's own series (its network
//! namespace's counters, per interface, as cAdvisor reports them on the infra container,
//! `container="POD"`), and each running container's.

use super::descriptors::{self as d, Desc};
use crate::stats::{net, Reading};
use k8s_cri::v1 as cri;

/// The base label values of one series source (see `descriptors::BASE_LABELS`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Base {
    pub id: String,
    pub image: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// The container name cAdvisor gives a pod's infra container, whose series carry the
/// network counters.
pub const POD_CONTAINER: &str = "POD";

struct Out<'a> {
    base: &'a Base,
    timestamp: i64,
    metrics: Vec<cri::Metric>,
}

impl Out<'_> {
    fn push(&mut self, desc: &Desc, extra: &[&str], value: u64) {
        // The label values must line up with the descriptor's keys; a mismatch is a bug here,
        // and a series kubelet would misread is worse than none.
        if extra.len() != desc.extra.len() {
            debug_assert!(false, "{}: {} extra labels for {:?}", desc.name, extra.len(), desc.extra);
            return;
        }
        let b = self.base;
        let mut labels = vec![b.id.clone(), b.image.clone(), b.namespace.clone(), b.pod.clone(), b.container.clone()];
        labels.extend(extra.iter().map(|s| s.to_string()));
        self.metrics.push(cri::Metric {
            name: desc.name.into(),
            timestamp: self.timestamp,
            metric_type: desc.kind as i32,
            label_values: labels,
            value: Some(cri::UInt64Value { value }),
        });
    }
}

const NS_PER_S: i64 = 1_000_000_000;

fn secs(ns: i64) -> u64 {
    (ns.max(0) / NS_PER_S) as u64
}

/// A running container's series; `started_at` in ns since the epoch. A reading without
/// usage (the container does not run) gives none: cAdvisor reports live cgroups only.
pub fn container(base: &Base, started_at: i64, r: &Reading) -> Vec<cri::Metric> {
    let mut o = Out { base, timestamp: r.timestamp, metrics: Vec::new() };
    let Some(u) = &r.usage else { return o.metrics };
    o.push(&d::LAST_SEEN, &[], secs(r.timestamp));
    if started_at > 0 {
        o.push(&d::START_TIME, &[], secs(started_at));
    }
    if let Some(ns) = u.cpu_ns {
        // cAdvisor's per-cpu breakdown is not read; "total" is its label for the sum.
        o.push(&d::CPU_USAGE, &["total"], ns / NS_PER_S as u64);
    }
    if let Some(m) = &u.memory {
        o.push(&d::MEMORY_USAGE, &[], m.usage);
        o.push(&d::MEMORY_WORKING_SET, &[], m.working_set);
        o.push(&d::MEMORY_RSS, &[], m.rss);
        if let Some(c) = m.cache {
            o.push(&d::MEMORY_CACHE, &[], c);
        }
        // memory.stat's counts include the cgroup's descendants: cAdvisor's "hierarchy".
        o.push(&d::MEMORY_FAILURES, &["pgfault", "hierarchy"], m.page_faults);
        o.push(&d::MEMORY_FAILURES, &["pgmajfault", "hierarchy"], m.major_page_faults);
        // cAdvisor says 0 for "no limit".
        o.push(&d::MEMORY_LIMIT, &[], m.limit.unwrap_or(0));
    }
    if let Some(p) = u.pids {
        o.push(&d::PROCESSES, &[], p);
    }
    if let Some(w) = &r.writable {
        o.push(&d::FS_USAGE, &[], w.bytes);
    }
    o.metrics
}

/// The pod's network series, one set per interface (loopback is already left out).
pub fn network(base: &Base, timestamp: i64, ifs: &[net::Interface]) -> Vec<cri::Metric> {
    let mut o = Out { base, timestamp, metrics: Vec::new() };
    for i in ifs {
        let n = [i.name.as_str()];
        o.push(&d::NET_RX_BYTES, &n, i.rx_bytes);
        o.push(&d::NET_RX_PACKETS, &n, i.rx_packets);
        o.push(&d::NET_RX_ERRORS, &n, i.rx_errors);
        o.push(&d::NET_RX_DROPPED, &n, i.rx_dropped);
        o.push(&d::NET_TX_BYTES, &n, i.tx_bytes);
        o.push(&d::NET_TX_PACKETS, &n, i.tx_packets);
        o.push(&d::NET_TX_ERRORS, &n, i.tx_errors);
        o.push(&d::NET_TX_DROPPED, &n, i.tx_dropped);
    }
    o.metrics
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::cgroup::{Memory, Usage};
    use crate::stats::fs::DirUsage;

    fn base() -> Base {
        Base { id: "c1".into(), image: "busybox".into(), namespace: "ns".into(), pod: "p".into(), container: "app".into() }
    }

    fn value(ms: &[cri::Metric], name: &str) -> Option<u64> {
        ms.iter().find(|m| m.name == name).and_then(|m| m.value.as_ref()).map(|v| v.value)
    }

    #[test]
    fn every_series_matches_its_descriptor() {
        let r = Reading {
            timestamp: 1_700_000_000_500_000_000,
            usage: Some(Usage {
                cpu_ns: Some(2_700_000_000),
                memory: Some(Memory {
                    usage: 100,
                    working_set: 80,
                    rss: 50,
                    cache: Some(30),
                    limit: None,
                    page_faults: 7,
                    major_page_faults: 1,
                    available: None,
                }),
                pids: Some(3),
            }),
            writable: Some(DirUsage { bytes: 4096, inodes: 2 }),
        };
        let ms = container(&base(), 1_600_000_000_000_000_000, &r);
        let ifs = [net::Interface { name: "eth0".into(), rx_bytes: 10, tx_bytes: 20, ..Default::default() }];
        let all: Vec<cri::Metric> =
            ms.iter().cloned().chain(network(&Base { container: POD_CONTAINER.into(), ..base() }, r.timestamp, &ifs)).collect();
        for m in &all {
            let desc = d::ALL.iter().find(|x| x.name == m.name).unwrap_or_else(|| panic!("{} has no descriptor", m.name));
            assert_eq!(m.label_values.len(), desc.label_keys().len(), "{}", m.name);
            assert_eq!(m.metric_type, desc.kind as i32);
            assert_eq!(m.timestamp, r.timestamp);
        }
        // Whole seconds, truncated.
        assert_eq!(value(&ms, "container_cpu_usage_seconds_total"), Some(2));
        assert_eq!(value(&ms, "container_last_seen"), Some(1_700_000_000));
        assert_eq!(value(&ms, "container_start_time_seconds"), Some(1_600_000_000));
        assert_eq!(value(&ms, "container_memory_working_set_bytes"), Some(80));
        assert_eq!(value(&ms, "container_memory_cache"), Some(30));
        assert_eq!(value(&ms, "container_spec_memory_limit_bytes"), Some(0));
        assert_eq!(value(&ms, "container_processes"), Some(3));
        assert_eq!(value(&ms, "container_fs_usage_bytes"), Some(4096));
        let cpu = ms.iter().find(|m| m.name == "container_cpu_usage_seconds_total").unwrap();
        assert_eq!(cpu.label_values, ["c1", "busybox", "ns", "p", "app", "total"]);
        let rx = all.iter().find(|m| m.name == "container_network_receive_bytes_total").unwrap();
        assert_eq!(rx.label_values, ["c1", "busybox", "ns", "p", "POD", "eth0"]);
        assert_eq!(rx.value.as_ref().unwrap().value, 10);
        assert_eq!(rx.metric_type, cri::MetricType::Counter as i32);
    }

    #[test]
    fn a_stopped_container_has_no_series() {
        let r = Reading { timestamp: 1, usage: None, writable: Some(DirUsage::default()) };
        assert!(container(&base(), 1, &r).is_empty());
    }

    #[test]
    fn what_was_not_measured_is_left_out() {
        let r = Reading { timestamp: 5, usage: Some(Usage { cpu_ns: None, memory: Some(Memory::default()), pids: None }), writable: None };
        let ms = container(&base(), 0, &r);
        for absent in [
            "container_cpu_usage_seconds_total",
            "container_memory_cache",
            "container_processes",
            "container_fs_usage_bytes",
            "container_start_time_seconds",
        ] {
            assert_eq!(value(&ms, absent), None, "{absent}");
        }
        assert_eq!(value(&ms, "container_memory_usage_bytes"), Some(0));
    }
}
