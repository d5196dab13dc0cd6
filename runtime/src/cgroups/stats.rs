//! Container statistics in the JSON shape `runc events` prints (runc's `types.Stats`), so
//! clients that parse runc's output (containerd's shim, podman) read berth's unchanged.
//!
//! Each controller module fills its part from its own files; a controller the cgroup lacks
//! leaves its part at zero, which (like runc's `omitempty`) drops the zero fields.

use serde::Serialize;
use std::collections::BTreeMap;

fn zero(v: &u64) -> bool {
    *v == 0
}

/// `runc events` record: `{"type":"stats","id":…,"data":{…}}` or `{"type":"oom","id":…}`.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a Stats>,
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Intel RDT is not managed by berth: always empty, as runc prints it without RDT.
    pub intel_rdt: IntelRdt,
    /// runc fills this only for containers it set networks up for; always null here.
    pub network_interfaces: Option<Vec<()>>,
}

#[derive(Debug, Default, Serialize)]
pub struct IntelRdt {}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds (cgroup2's cpu.stat counts microseconds; runc multiplies by 1000).
#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

/// cgroup2 has no cpuset statistics files: runc reports zeros there too.
#[derive(Debug, Default, Serialize)]
pub struct CpuSet {
    pub cpu_exclusive: u64,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    /// `max` reads as u64::MAX, as in runc.
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// memory + swap, as cgroup v1 reported it (runc adds memory to swap on v2).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat verbatim.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    /// 0 when unlimited (`max`).
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_stats_have_runc_shape() {
        let s = Stats::default();
        let e = Event { kind: "stats", id: "c1", data: Some(&s) };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "stats");
        assert_eq!(v["data"]["cpu"]["usage"], serde_json::json!({"kernel": 0, "user": 0}));
        assert_eq!(v["data"]["memory"]["usage"], serde_json::json!({"limit": 0, "failcnt": 0}));
        assert_eq!(v["data"]["pids"], serde_json::json!({}));
        assert!(v["data"]["network_interfaces"].is_null());
        let oom = serde_json::to_string(&Event { kind: "oom", id: "c1", data: None }).unwrap();
        assert_eq!(oom, r#"{"type":"oom","id":"c1"}"#);
    }
}
