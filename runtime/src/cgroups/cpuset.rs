//! cpuset controller: `cpu.cpus` → `cpuset.cpus`, `cpu.mems` → `cpuset.mems`.
//!
//! cgroup v2 has no cpuset statistics files (runc reports zeros as well).

use super::{fs, Mode};
use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use std::path::Path;

fn lists(r: &LinuxResources) -> (Option<&str>, Option<&str>) {
    let Some(c) = r.cpu().as_ref() else { return (None, None) };
    (c.cpus().as_deref().filter(|s| !s.is_empty()), c.mems().as_deref().filter(|s| !s.is_empty()))
}

pub fn wants(r: &LinuxResources) -> Option<&'static str> {
    let (cpus, mems) = lists(r);
    (cpus.is_some() || mems.is_some()).then_some("linux.resources.cpu.cpus/mems")
}

/// A cpu or memory-node list as the kernel takes it: `0-3,5,7-8`.
fn valid_list(s: &str) -> bool {
    s.split(',').all(|part| {
        let mut ends = part.trim().splitn(2, '-');
        let ok = |x: Option<&str>| x.is_some_and(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()));
        match (ends.next(), ends.next()) {
            (a, None) => ok(a),
            (a, b) => ok(a) && ok(b),
        }
    })
}

pub fn validate(r: &LinuxResources, _mode: Mode) -> Result<()> {
    let (cpus, mems) = lists(r);
    for (name, v) in [("cpus", cpus), ("mems", mems)] {
        if let Some(v) = v {
            if !valid_list(v) {
                return Err(Error::Spec(format!("linux.resources.cpu.{name} {v:?}: expected a list such as 0-3,5")));
            }
        }
    }
    Ok(())
}

pub fn apply(dir: &Path, r: &LinuxResources, _mode: Mode) -> Result<()> {
    let (cpus, mems) = lists(r);
    if let Some(c) = cpus {
        fs::write(dir, "cpuset.cpus", c)?;
    }
    if let Some(m) = mems {
        fs::write(dir, "cpuset.mems", m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_list;

    #[test]
    fn lists() {
        for ok in ["0", "0-3", "0-1,3", "1,2,3", "0-3,5,7-8"] {
            assert!(valid_list(ok), "{ok}");
        }
        for bad in ["", "a", "0-", "-1", "0,,1", "0-1-2", "../x", "0 1"] {
            assert!(!valid_list(bad), "{bad}");
        }
    }
}
