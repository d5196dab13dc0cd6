//! pids controller: `pids.limit` → `pids.max`; `pids.current` for statistics.

use super::stats::Stats;
use super::{fs, Mode};
use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use std::path::Path;

pub fn wants(r: &LinuxResources) -> Option<&'static str> {
    r.pids().as_ref().map(|_| "linux.resources.pids")
}

pub fn validate(r: &LinuxResources, _mode: Mode) -> Result<()> {
    match r.pids().as_ref().map(|p| p.limit()) {
        Some(l) if l < -1 => Err(Error::Spec(format!("linux.resources.pids.limit {l}: must be -1 or 0 (unlimited) or positive"))),
        _ => Ok(()),
    }
}

/// A positive limit is written as is; 0 and -1 mean unlimited (runc 1.1 and Docker read 0 so).
pub fn value(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".into()
    }
}

pub fn apply(dir: &Path, r: &LinuxResources, _mode: Mode) -> Result<()> {
    match r.pids().as_ref() {
        Some(p) => fs::write(dir, "pids.max", &value(p.limit())),
        None => Ok(()),
    }
}

pub fn stats(dir: &Path, s: &mut Stats) -> Result<()> {
    if fs::exists(dir, "pids.current") {
        s.pids.current = fs::read_u64(dir, "pids.current")?;
        let max = fs::read_u64(dir, "pids.max")?;
        s.pids.limit = if max == u64::MAX { 0 } else { max };
    } else {
        // Without the controller, count the processes (as runc does).
        s.pids.current = fs::read(dir, "cgroup.procs")?.lines().count() as u64;
    }
    Ok(())
}
