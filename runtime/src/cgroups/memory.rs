//! memory controller: limit → `memory.max`, reservation → `memory.low`, swap → `memory.swap.max`
//! (the spec's swap is memory + swap, cgroup v2's is swap alone); usage from `memory.current`,
//! `memory.peak`, `memory.swap.*`, `memory.stat`; OOM kills from `memory.events`.
//!
//! `memory.oom.group` and other knobs without a spec field come through `unified`.
//! swappiness, kernel, kernelTCP and disableOOMKiller have no cgroup v2 file: ignored, as runc does.

use super::stats::{MemoryEntry, Stats};
use super::{fs, Mode};
use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxMemory, LinuxResources};
use std::path::Path;

fn mem(r: &LinuxResources) -> Option<&LinuxMemory> {
    r.memory().as_ref()
}

pub fn wants(r: &LinuxResources) -> Option<&'static str> {
    let m = mem(r)?;
    let set = [m.limit(), m.reservation(), m.swap()].iter().any(|v| v.is_some_and(|v| v != 0));
    set.then_some("linux.resources.memory")
}

pub fn validate(r: &LinuxResources, mode: Mode) -> Result<()> {
    let Some(m) = mem(r) else { return Ok(()) };
    for (name, v) in [("limit", m.limit()), ("reservation", m.reservation()), ("swap", m.swap())] {
        if let Some(v) = v.filter(|&v| v < -1) {
            return Err(Error::Spec(format!("linux.resources.memory.{name} {v}: must be -1 (unlimited) or a byte count")));
        }
    }
    // An update without a limit converts against the live memory.max (checked in apply).
    if m.swap().is_some_and(|s| s > 0) && (mode == Mode::Create || m.limit().is_some_and(|l| l != 0)) {
        swap_v2(m.swap().unwrap_or(0), m.limit().unwrap_or(0))?;
    }
    Ok(())
}

/// The spec's memory+swap as cgroup v2's swap alone; -1 = max, 0 = leave unset
/// (runc's ConvertMemorySwapToCgroupV2Value).
pub fn swap_v2(swap: i64, memory: i64) -> Result<i64> {
    match (swap, memory) {
        (0, -1) => Ok(-1),
        (-1 | 0, _) => Ok(swap),
        (_, -1) => Ok(swap),
        (_, 0) => Err(Error::Spec("linux.resources.memory.swap: a swap limit needs a memory limit".into())),
        (s, m) if s < m => Err(Error::Spec(format!("linux.resources.memory.swap {s} is below the memory limit {m} (swap is memory+swap)"))),
        (s, m) => Ok(s - m),
    }
}

fn value(v: i64) -> String {
    if v == -1 {
        "max".into()
    } else {
        v.to_string()
    }
}

pub fn apply(dir: &Path, r: &LinuxResources, mode: Mode) -> Result<()> {
    let Some(m) = mem(r) else { return Ok(()) };
    let limit = m.limit().unwrap_or(0);
    let swap = m.swap().unwrap_or(0);
    if mode == Mode::Update && m.check_before_update() == Some(true) && limit > 0 {
        let usage = fs::read_u64(dir, "memory.current")?;
        if limit as u64 <= usage {
            return Err(Error::Cgroup(format!("memory limit {limit} is not above the current usage {usage} (checkBeforeUpdate)")));
        }
    }
    // Unlimited memory with swap unset means unlimited swap too (the cgroup v1 meaning).
    if swap != 0 || limit == -1 {
        // An update may change swap alone: the memory limit is then the live one.
        let memory = match (limit, mode) {
            (0, Mode::Update) => {
                fs::parse_u64(fs::read(dir, "memory.max")?.trim()).map(|v| if v == u64::MAX { -1 } else { v as i64 }).unwrap_or(0)
            }
            _ => limit,
        };
        let v = swap_v2(swap, memory)?;
        // A host without swap accounting has no memory.swap.max: "no swap" and "any swap"
        // are then what it gives anyway (runc tolerates the same).
        if v != 0 || swap > 0 {
            if let Err(e) = fs::write(dir, "memory.swap.max", &value(v)) {
                let absent = e.errno() == Some(nix::errno::Errno::ENOENT);
                if !(absent && (v == -1 || v == 0)) {
                    return Err(e);
                }
            }
        }
    }
    if limit != 0 {
        fs::write(dir, "memory.max", &value(limit))?;
    }
    if let Some(low) = m.reservation().filter(|&v| v != 0) {
        fs::write(dir, "memory.low", &value(low))?;
    }
    Ok(())
}

/// OOM kills so far (memory.events `oom_kill`); None without the memory controller.
pub fn oom_kills(dir: &Path) -> Option<u64> {
    fs::read_keyed(dir, "memory.events").ok().and_then(|p| fs::keyed(&p, "oom_kill"))
}

fn entry(dir: &Path, prefix: &str) -> Result<Option<MemoryEntry>> {
    if !fs::exists(dir, &format!("{prefix}.current")) {
        return Ok(None);
    }
    let peak = format!("{prefix}.peak");
    Ok(Some(MemoryEntry {
        usage: fs::read_u64(dir, &format!("{prefix}.current"))?,
        limit: fs::read_u64(dir, &format!("{prefix}.max"))?,
        max: if fs::exists(dir, &peak) { fs::read_u64(dir, &peak)? } else { 0 },
        failcnt: 0,
    }))
}

pub fn stats(dir: &Path, s: &mut Stats) -> Result<()> {
    let Some(usage) = entry(dir, "memory")? else { return Ok(()) };
    for (k, v) in fs::read_keyed(dir, "memory.stat")? {
        s.memory.raw.insert(k, v);
    }
    s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
    // runc reports swap as memory+swap (the cgroup v1 meaning), without a peak.
    let swap = entry(dir, "memory.swap")?.unwrap_or_default();
    s.memory.swap = MemoryEntry {
        usage: swap.usage + usage.usage,
        limit: if swap.limit == u64::MAX { u64::MAX } else { swap.limit.saturating_add(usage.limit) },
        max: 0,
        failcnt: 0,
    };
    s.memory.usage = usage;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_conversion_as_runc() {
        assert_eq!(swap_v2(0, -1).unwrap(), -1);
        assert_eq!(swap_v2(-1, 100).unwrap(), -1);
        assert_eq!(swap_v2(0, 100).unwrap(), 0);
        assert_eq!(swap_v2(300, -1).unwrap(), 300);
        assert_eq!(swap_v2(300, 100).unwrap(), 200);
        assert_eq!(swap_v2(100, 100).unwrap(), 0);
        assert!(swap_v2(50, 100).unwrap_err().to_string().contains("below the memory limit"));
        assert!(swap_v2(50, 0).unwrap_err().to_string().contains("needs a memory limit"));
    }
}
