//! The spec's resources as systemd unit properties, the way runc's systemd v2 driver sets
//! them. systemd is told so that its record of the unit agrees with the cgroup files (it
//! writes its values again on `daemon-reload` and on every property change); the files are
//! then written by the cgroupfs code as well, so that values systemd rounds (CPU quota in
//! 10 ms steps) or does not know (unified keys, burst, idle, hugetlb, rdma, io throttles)
//! land exactly.
//!
//! Devices are deliberately not expressed (no `DevicePolicy`/`DeviceAllow`): berth's own
//! eBPF program enforces the spec's rules on both drivers, with the same semantics;
//! systemd's rules are path- or class-based (`char-pts`, `/dev/null`) and cannot express
//! every OCI rule (wildcard majors, `m` on a block class), and a second program with
//! different verdicts would be a second truth. Without a policy systemd attaches no device
//! program to the scope and leaves others' programs alone.

use super::super::{cpu, io, memory, Mode};
use super::dbus::Value;
use crate::error::Result;
use oci_spec::runtime::LinuxResources;
use std::path::Path;

/// systemd's USEC_INFINITY / CGROUP_LIMIT_MAX.
const INFINITY: u64 = u64::MAX;
const DEFAULT_PERIOD: u64 = 100_000;

fn prop(name: &str, v: Value) -> (String, Value) {
    (name.to_string(), v)
}

fn limit(v: i64) -> Value {
    Value::U64(if v < 0 { INFINITY } else { v as u64 })
}

/// Properties every container unit gets: accounting on (as runc: statistics then match the
/// cgroupfs driver's).
pub fn base() -> Vec<(String, Value)> {
    ["MemoryAccounting", "CPUAccounting", "IOAccounting", "TasksAccounting"].iter().map(|n| prop(n, Value::Bool(true))).collect()
}

/// A CPU list (`0-2,5`) as systemd's bitmask: byte i holds CPUs 8i..8i+7, lowest bit first.
pub fn cpu_bits(list: &str) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>().ok()?, b.trim().parse::<usize>().ok()?),
            None => {
                let n = part.parse::<usize>().ok()?;
                (n, n)
            }
        };
        if a > b || b >= 1 << 16 {
            return None;
        }
        for n in a..=b {
            if out.len() <= n / 8 {
                out.resize(n / 8 + 1, 0);
            }
            out[n / 8] |= 1 << (n % 8);
        }
    }
    Some(out)
}

/// `CPUQuotaPerSecUSec` for a quota per period: systemd keeps a percentage, so a fraction
/// is rounded up to the next 10 ms per second (runc's rule; the cgroupfs write that follows
/// puts the exact quota in cpu.max).
fn quota_per_sec(quota: i64, period: u64) -> u64 {
    if quota <= 0 {
        return INFINITY;
    }
    let per_sec = (quota as u64).saturating_mul(1_000_000) / period.max(1);
    per_sec.div_ceil(10_000) * 10_000
}

/// The (quota, period) in a live cpu.max.
fn live_cpu_max(dir: &Path) -> (i64, u64) {
    let s = std::fs::read_to_string(dir.join("cpu.max")).unwrap_or_default();
    let mut it = s.split_whitespace();
    let q = it.next().and_then(|q| q.parse().ok()).unwrap_or(-1);
    let p = it.next().and_then(|p| p.parse().ok()).unwrap_or(DEFAULT_PERIOD);
    (q, p)
}

fn live_memory_max(dir: &Path) -> i64 {
    match std::fs::read_to_string(dir.join("memory.max")).unwrap_or_default().trim() {
        "max" => -1,
        v => v.parse().unwrap_or(0),
    }
}

/// The resource properties for `r`. On an update only what `r` names is set; `dir` (the
/// live cgroup) then supplies the other half of cpu.max and the memory limit a swap-only
/// change converts against. Values were validated by the cgroupfs code before.
pub fn for_resources(r: &LinuxResources, mode: Mode, dir: &Path) -> Result<Vec<(String, Value)>> {
    let mut p = Vec::new();
    if let Some(m) = r.memory() {
        let lim = m.limit().unwrap_or(0);
        if lim != 0 {
            p.push(prop("MemoryMax", limit(lim)));
        }
        if let Some(low) = m.reservation().filter(|&v| v != 0) {
            p.push(prop("MemoryLow", limit(low)));
        }
        let swap = m.swap().unwrap_or(0);
        if swap != 0 || lim == -1 {
            let against = if lim == 0 && mode == Mode::Update { live_memory_max(dir) } else { lim };
            match memory::swap_v2(swap, against)? {
                0 => {}
                v => p.push(prop("MemorySwapMax", limit(v))),
            }
        }
    }
    if let Some(c) = r.cpu() {
        let weight = c.shares().map(cpu::shares_to_weight).unwrap_or(0);
        if weight != 0 {
            p.push(prop("CPUWeight", Value::U64(weight)));
        }
        let quota = c.quota().filter(|&q| q != 0);
        let period = c.period().filter(|&p| p != 0);
        if quota.is_some() || period.is_some() {
            let (live_q, live_p) = if mode == Mode::Update { live_cpu_max(dir) } else { (-1, DEFAULT_PERIOD) };
            let per = period.unwrap_or(live_p);
            if period.is_some() {
                p.push(prop("CPUQuotaPeriodUSec", Value::U64(per)));
            }
            p.push(prop("CPUQuotaPerSecUSec", Value::U64(quota_per_sec(quota.unwrap_or(live_q), per))));
        }
        for (list, name) in [(c.cpus(), "AllowedCPUs"), (c.mems(), "AllowedMemoryNodes")] {
            if let Some(bits) = list.as_deref().filter(|l| !l.trim().is_empty()).and_then(cpu_bits) {
                p.push(prop(name, Value::Bytes(bits)));
            }
        }
    }
    if let Some(pids) = r.pids() {
        // 0 and -1 both mean unlimited (as the cgroupfs driver writes them).
        p.push(prop("TasksMax", limit(if pids.limit() > 0 { pids.limit() } else { -1 })));
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()).filter(|&w| w != 0) {
        p.push(prop("IOWeight", Value::U64(io::blkio_to_io_weight(w))));
    }
    if let Some(u) = r.unified() {
        let mut keys: Vec<&String> = u.keys().collect();
        keys.sort();
        for k in keys {
            unified(&mut p, k, u[k].trim());
        }
    }
    Ok(p)
}

/// The unified keys systemd has a property for (as runc converts them); the rest only go
/// to the cgroup files. A value that does not parse is left to the cgroupfs write, which
/// reports it.
fn unified(p: &mut Vec<(String, Value)>, key: &str, v: &str) {
    let max_or = |v: &str| if v == "max" { Some(INFINITY) } else { v.parse::<u64>().ok() };
    let name = match key {
        "memory.high" => "MemoryHigh",
        "memory.low" => "MemoryLow",
        "memory.min" => "MemoryMin",
        "memory.max" => "MemoryMax",
        "memory.swap.max" => "MemorySwapMax",
        "pids.max" => "TasksMax",
        "cpu.weight" => {
            if let Ok(w) = v.parse::<u64>() {
                p.push(prop("CPUWeight", Value::U64(w)));
            }
            return;
        }
        "cpuset.cpus" | "cpuset.mems" => {
            if let Some(bits) = cpu_bits(v) {
                let name = if key == "cpuset.cpus" { "AllowedCPUs" } else { "AllowedMemoryNodes" };
                p.push(prop(name, Value::Bytes(bits)));
            }
            return;
        }
        "cpu.max" => {
            let mut it = v.split_whitespace();
            let q = match it.next() {
                Some("max") => -1,
                Some(q) => match q.parse::<i64>() {
                    Ok(q) => q,
                    Err(_) => return,
                },
                None => return,
            };
            let per = match it.next().map(str::parse::<u64>) {
                Some(Ok(per)) => {
                    p.push(prop("CPUQuotaPeriodUSec", Value::U64(per)));
                    per
                }
                Some(Err(_)) => return,
                None => DEFAULT_PERIOD,
            };
            p.push(prop("CPUQuotaPerSecUSec", Value::U64(quota_per_sec(q, per))));
            return;
        }
        _ => return,
    };
    if let Some(n) = max_or(v) {
        p.push(prop(name, Value::U64(n)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(json: &str) -> Vec<(String, Value)> {
        let r: LinuxResources = serde_json::from_str(json).unwrap();
        for_resources(&r, Mode::Create, Path::new("/nonexistent")).unwrap()
    }

    #[test]
    fn maps_resources() {
        let p = props(
            r#"{"memory": {"limit": 67108864, "reservation": 33554432, "swap": 100663296},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1,9", "mems": "0"},
                "pids": {"limit": 64}, "blockIO": {"weight": 500}}"#,
        );
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("MemoryMax"), Some(Value::U64(64 << 20)));
        assert_eq!(get("MemoryLow"), Some(Value::U64(32 << 20)));
        assert_eq!(get("MemorySwapMax"), Some(Value::U64(32 << 20)));
        assert_eq!(get("CPUWeight"), Some(Value::U64(cpu::shares_to_weight(512))));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(Value::U64(100_000)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Value::U64(500_000)));
        assert_eq!(get("AllowedCPUs"), Some(Value::Bytes(vec![0b11, 0b10])));
        assert_eq!(get("AllowedMemoryNodes"), Some(Value::Bytes(vec![1])));
        assert_eq!(get("TasksMax"), Some(Value::U64(64)));
        assert_eq!(get("IOWeight"), Some(Value::U64(io::blkio_to_io_weight(500))));
    }

    #[test]
    fn unlimited_and_rounding() {
        let p = props(r#"{"memory": {"limit": -1}, "cpu": {"quota": 12345}, "pids": {"limit": 0}}"#);
        assert!(p.contains(&prop("MemoryMax", Value::U64(INFINITY))));
        assert!(p.contains(&prop("MemorySwapMax", Value::U64(INFINITY))));
        assert!(p.contains(&prop("CPUQuotaPerSecUSec", Value::U64(130_000))));
        assert!(p.contains(&prop("TasksMax", Value::U64(INFINITY))));
        let p = props(r#"{"unified": {"memory.high": "max", "cpu.max": "20000 50000", "io.max": "8:0 rbps=1"}}"#);
        assert_eq!(
            p,
            vec![
                prop("CPUQuotaPeriodUSec", Value::U64(50_000)),
                prop("CPUQuotaPerSecUSec", Value::U64(400_000)),
                prop("MemoryHigh", Value::U64(INFINITY)),
            ]
        );
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_bits("0"), Some(vec![1]));
        assert_eq!(cpu_bits("7-8"), Some(vec![0x80, 1]));
        assert_eq!(cpu_bits("2-1"), None);
        assert_eq!(cpu_bits("x"), None);
    }
}
