//! cpu controller: shares → `cpu.weight`, quota/period → `cpu.max`, burst → `cpu.max.burst`,
//! idle → `cpu.idle`; usage and throttling from `cpu.stat`.

use super::stats::Stats;
use super::{fs, Mode};
use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxCpu, LinuxResources};
use std::path::Path;

/// The kernel's default CFS period (µs), used when the spec gives a quota alone.
const DEFAULT_PERIOD: u64 = 100_000;

fn cpu(r: &LinuxResources) -> Option<&LinuxCpu> {
    r.cpu().as_ref()
}

pub fn wants(r: &LinuxResources) -> Option<&'static str> {
    let c = cpu(r)?;
    let set = c.shares().is_some_and(|s| s != 0)
        || c.quota().is_some_and(|q| q != 0)
        || c.period().is_some_and(|p| p != 0)
        || c.idle().is_some()
        || c.burst().is_some();
    set.then_some("linux.resources.cpu")
}

pub fn validate(r: &LinuxResources, _mode: Mode) -> Result<()> {
    let Some(c) = cpu(r) else { return Ok(()) };
    if let Some(q) = c.quota() {
        if q < -1 {
            return Err(Error::Spec(format!("linux.resources.cpu.quota {q}: must be -1 (unlimited), 0 (unset) or positive")));
        }
    }
    if let Some(i) = c.idle() {
        if i != 0 && i != 1 {
            return Err(Error::Spec(format!("linux.resources.cpu.idle {i}: must be 0 or 1")));
        }
    }
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(Error::Unsupported(
            "linux.resources.cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime CPU bandwidth control".into(),
        ));
    }
    Ok(())
}

/// cgroup v1 shares [2, 262144] onto cgroup v2 weight [1, 10000], with the curve runc and
/// crun use since 2025 (a quadratic in log2(shares) that maps the v1 default 1024 to the v2
/// default 100; the older linear formula gave 39). 0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// The (quota, period) currently in cpu.max ("max" quota as -1).
fn current_max(dir: &Path) -> Result<(i64, u64)> {
    let s = fs::read(dir, "cpu.max")?;
    let mut it = s.split_whitespace();
    let quota = match it.next() {
        Some("max") => -1,
        Some(q) => q.parse().map_err(|_| Error::Cgroup(format!("cpu.max: bad quota in {s:?}")))?,
        None => -1,
    };
    let period = it.next().and_then(|p| p.parse().ok()).unwrap_or(DEFAULT_PERIOD);
    Ok((quota, period))
}

pub fn apply(dir: &Path, r: &LinuxResources, mode: Mode) -> Result<()> {
    let Some(c) = cpu(r) else { return Ok(()) };
    if let Some(idle) = c.idle() {
        fs::write(dir, "cpu.idle", &idle.to_string())?;
    }
    let weight = c.shares().map(shares_to_weight).unwrap_or(0);
    if weight != 0 {
        fs::write(dir, "cpu.weight", &weight.to_string())?;
    }
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&p| p != 0);
    // The kernel refuses a burst larger than the quota in place: when a new quota comes
    // with the burst, write the burst again after cpu.max (as runc does).
    let mut burst_after = None;
    if let Some(b) = c.burst() {
        if let Err(e) = fs::write(dir, "cpu.max.burst", &b.to_string()) {
            if e.errno() != Some(nix::errno::Errno::EINVAL) || quota.is_none() {
                return Err(e);
            }
            burst_after = Some(b);
        }
    }
    if quota.is_some() || period.is_some() {
        let (old_quota, old_period) = match mode {
            Mode::Update => current_max(dir)?,
            Mode::Create => (-1, DEFAULT_PERIOD),
        };
        let q = quota.unwrap_or(old_quota);
        let p = period.unwrap_or(old_period);
        let q = if q > 0 { q.to_string() } else { "max".into() };
        fs::write(dir, "cpu.max", &format!("{q} {p}"))?;
    }
    if let Some(b) = burst_after {
        fs::write(dir, "cpu.max.burst", &b.to_string())?;
    }
    Ok(())
}

/// cpu.stat is a core file (present without the cpu controller); throttling needs it.
pub fn stats(dir: &Path, s: &mut Stats) -> Result<()> {
    if !fs::exists(dir, "cpu.stat") {
        return Ok(());
    }
    for (k, v) in fs::read_keyed(dir, "cpu.stat")? {
        match k.as_str() {
            "usage_usec" => s.cpu.usage.total = v * 1000,
            "user_usec" => s.cpu.usage.user = v * 1000,
            "system_usec" => s.cpu.usage.kernel = v * 1000,
            "nr_periods" => s.cpu.throttling.periods = v,
            "nr_throttled" => s.cpu.throttling.throttled_periods = v,
            "throttled_usec" => s.cpu.throttling.throttled_time = v * 1000,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_onto_weights_as_runc_and_crun() {
        let cases = [
            (0, 0),
            (1, 1),
            (2, 1),
            (3, 2),
            (10, 4),
            (100, 17),
            (512, 59),
            (1024, 100),
            (2048, 174),
            (4096, 303),
            (10_000, 627),
            (262_143, 10_000),
            (262_144, 10_000),
            (u64::MAX, 10_000),
        ];
        for (shares, weight) in cases {
            assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
        }
    }
}
