//! `berth update`: change a live container's limits, from a resources JSON (`-r FILE|-`, the
//! spec's `linux.resources` shape) or from runc's flags. Only what is given changes: the
//! cgroup files are the record of the rest (cpu.max keeps its other half, a swap-only change
//! converts against the live memory.max).

use super::require;
use crate::cgroups;
use crate::error::{Error, Result};
use crate::state::{State, Status};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

/// runc's update flags, as given (strings are parsed here, with runc's error wording).
#[derive(Debug, Default)]
pub struct Flags {
    pub resources: Option<PathBuf>,
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<String>,
    pub cpu_quota: Option<String>,
    pub cpu_burst: Option<String>,
    pub cpu_share: Option<String>,
    pub cpu_rt_period: Option<String>,
    pub cpu_rt_runtime: Option<String>,
    pub cpu_idle: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
}

fn invalid(flag: &str, v: &str) -> Error {
    Error::Spec(format!("invalid value for {flag}: {v:?}"))
}

/// A byte count as Docker's `RAMInBytes` reads it: `512`, `64k`, `1.5g`, `2GiB` (binary units).
pub fn ram_in_bytes(s: &str) -> Option<i64> {
    let t = s.trim();
    let num_len = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = (&t[..num_len], t[num_len..].trim_start_matches(' ').to_ascii_lowercase());
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    let v = n * (1u64 << shift) as f64;
    (v < i64::MAX as f64).then_some(v as i64)
}

/// The resources an update asks for.
pub fn resources(f: &Flags) -> Result<LinuxResources> {
    if let Some(p) = &f.resources {
        let mut data = Vec::new();
        let r = if p.as_os_str() == "-" {
            std::io::stdin().read_to_end(&mut data).map(|_| ())
        } else {
            std::fs::File::open(p).and_then(|mut fl| fl.read_to_end(&mut data)).map(|_| ())
        };
        r.map_err(|e| Error::Spec(format!("read resources {}: {e}", p.display())))?;
        return serde_json::from_slice(&data).map_err(|e| Error::Spec(format!("malformed resources {}: {e}", p.display())));
    }
    let mut cpu = Map::new();
    let mut mem = Map::new();
    let uint = |flag: &str, v: &Option<String>| -> Result<Option<u64>> {
        v.as_deref().map(|s| s.parse::<u64>().map_err(|_| invalid(flag, s))).transpose()
    };
    let int = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref().map(|s| s.parse::<i64>().map_err(|_| invalid(flag, s))).transpose()
    };
    let bytes = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref().map(|s| if s == "-1" { Some(-1) } else { ram_in_bytes(s) }.ok_or_else(|| invalid(flag, s))).transpose()
    };
    for (key, flag, v) in [
        ("period", "cpu-period", &f.cpu_period),
        ("burst", "cpu-burst", &f.cpu_burst),
        ("shares", "cpu-share", &f.cpu_share),
        ("realtimePeriod", "cpu-rt-period", &f.cpu_rt_period),
    ] {
        if let Some(n) = uint(flag, v)? {
            cpu.insert(key.into(), json!(n));
        }
    }
    for (key, flag, v) in
        [("quota", "cpu-quota", &f.cpu_quota), ("realtimeRuntime", "cpu-rt-runtime", &f.cpu_rt_runtime), ("idle", "cpu-idle", &f.cpu_idle)]
    {
        if let Some(n) = int(flag, v)? {
            cpu.insert(key.into(), json!(n));
        }
    }
    for (key, v) in [("cpus", &f.cpuset_cpus), ("mems", &f.cpuset_mems)] {
        if let Some(s) = v.as_deref().filter(|s| !s.is_empty()) {
            cpu.insert(key.into(), json!(s));
        }
    }
    for (key, flag, v) in [
        ("limit", "memory", &f.memory),
        ("reservation", "memory-reservation", &f.memory_reservation),
        ("swap", "memory-swap", &f.memory_swap),
    ] {
        if let Some(n) = bytes(flag, v)? {
            mem.insert(key.into(), json!(n));
        }
    }
    let mut r = Map::new();
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if !mem.is_empty() {
        r.insert("memory".into(), Value::Object(mem));
    }
    if let Some(w) = f.blkio_weight.filter(|&w| w != 0) {
        r.insert("blockIO".into(), json!({"weight": w}));
    }
    if let Some(l) = f.pids_limit {
        r.insert("pids".into(), json!({"limit": l}));
    }
    serde_json::from_value(Value::Object(r)).map_err(|e| Error::Spec(format!("update: {e}")))
}

pub fn update(root: &Path, id: &str, r: &LinuxResources) -> Result<()> {
    let st = State::load(root, id)?;
    require(&st, root, &[Status::Created, Status::Running, Status::Paused], "container not running")?;
    if let Some(u) = &st.systemd_unit {
        // Validated in full by the cgroupfs code first: systemd is told nothing it would
        // then refuse to write.
        cgroups::check_update(&st.cgroup, r)?;
        cgroups::systemd::update(u, r, &st.cgroup)?;
    }
    cgroups::update(&st.cgroup, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(ram_in_bytes("512"), Some(512));
        assert_eq!(ram_in_bytes("64k"), Some(64 << 10));
        assert_eq!(ram_in_bytes("64KiB"), Some(64 << 10));
        assert_eq!(ram_in_bytes("1.5g"), Some(3 << 29));
        assert_eq!(ram_in_bytes("2 MB"), Some(2 << 20));
        for bad in ["", "x", "1x", "-5", ".5m", "1e9", "99999999999p"] {
            assert_eq!(ram_in_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn flags_make_resources() {
        let f = Flags {
            memory: Some("32m".into()),
            memory_swap: Some("-1".into()),
            cpu_quota: Some("50000".into()),
            cpu_share: Some("512".into()),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(9),
            blkio_weight: Some(300),
            ..Default::default()
        };
        let r = resources(&f).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["memory"], json!({"limit": 32 << 20, "swap": -1}));
        assert_eq!(v["cpu"], json!({"quota": 50000, "shares": 512, "cpus": "0"}));
        assert_eq!(v["pids"], json!({"limit": 9}));
        assert_eq!(v["blockIO"], json!({"weight": 300}));
        let bad = Flags { cpu_period: Some("-1".into()), ..Default::default() };
        assert!(resources(&bad).unwrap_err().to_string().contains("cpu-period"));
    }
}
