//! `linux.resources.unified`: cgroup v2 files written verbatim, after every other controller
//! (so they can refine what the spec's fields set, as in runc).
//!
//! A key must be a plain interface file name `<controller>.<parameter>` of a cgroup v2
//! controller: no `/`, no `..`, no hidden names, so it can never reach outside the
//! container's cgroup directory. The `cgroup.*` core files that berth itself drives (procs,
//! threads, subtree_control, freeze, kill, type) are refused: writing them through the spec
//! would move foreign processes in, or undo berth's own freezing and placement. A key whose
//! file does not exist is an error, never ignored.

use super::{fs, misc, Mode};
use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use std::path::Path;

/// Controllers of cgroup v2 (plus `cgroup` for the core files).
const PREFIXES: [&str; 9] = ["cgroup", "cpu", "cpuset", "io", "memory", "hugetlb", "pids", "rdma", "misc"];
/// Core files the spec may set.
const CORE_ALLOWED: [&str; 2] = ["cgroup.max.depth", "cgroup.max.descendants"];

fn entries(r: &LinuxResources) -> Vec<(&String, &String)> {
    let mut v: Vec<_> = r.unified().iter().flatten().collect();
    v.sort();
    v
}

/// The controller a unified key belongs to, after checking its name.
pub fn controller_of(key: &str) -> Result<&str> {
    let bad = |why: &str| Err(Error::Spec(format!("linux.resources.unified key {key:?}: {why}")));
    let Some((ctrl, param)) = key.split_once('.') else { return bad("expected <controller>.<file>") };
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        || param.is_empty()
        || param.starts_with('.')
        || param.ends_with('.')
        || key.contains("..")
    {
        return bad("not a cgroup interface file name");
    }
    if !PREFIXES.contains(&ctrl) {
        return bad("unknown cgroup v2 controller");
    }
    if ctrl == "cgroup" && !CORE_ALLOWED.contains(&key) {
        return bad("this core file is managed by the runtime");
    }
    Ok(ctrl)
}

/// Controllers the unified map needs (deduplicated, the core `cgroup` excluded).
pub fn wanted(r: &LinuxResources) -> Vec<&str> {
    let mut v: Vec<&str> = entries(r).into_iter().filter_map(|(k, _)| controller_of(k).ok()).filter(|c| *c != "cgroup").collect();
    v.dedup();
    v
}

pub fn validate(r: &LinuxResources, root: &Path, _mode: Mode) -> Result<()> {
    for (k, v) in entries(r) {
        controller_of(k)?;
        if v.contains('\0') {
            return Err(Error::Spec(format!("linux.resources.unified {k}: value contains a NUL byte")));
        }
        if k == "misc.max" {
            misc::validate_max(root, v)?;
        }
    }
    Ok(())
}

pub fn apply(dir: &Path, r: &LinuxResources, _mode: Mode) -> Result<()> {
    for (k, v) in entries(r) {
        if !fs::exists(dir, k) {
            return Err(Error::Cgroup(format!(
                "linux.resources.unified {k}: {} has no such file (controller {} not enabled there, or unknown file)",
                dir.display(),
                k.split('.').next().unwrap_or_default()
            )));
        }
        fs::write_lines(dir, k, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::controller_of;

    #[test]
    fn keys_are_checked() {
        for (k, c) in [
            ("memory.oom.group", "memory"),
            ("memory.high", "memory"),
            ("cpu.max.burst", "cpu"),
            ("hugetlb.2MB.rsvd.max", "hugetlb"),
            ("misc.max", "misc"),
            ("cgroup.max.depth", "cgroup"),
        ] {
            assert_eq!(controller_of(k).unwrap(), c, "{k}");
        }
        for k in [
            "memory",
            "../memory.max",
            "memory.max/../../x",
            "/etc/passwd",
            ".memory.max",
            "memory.",
            "memory..max",
            "foo.bar",
            "cgroup.procs",
            "cgroup.kill",
            "cgroup.freeze",
            "cgroup.subtree_control",
            "Memory.max",
            "memory.max\n",
            "",
        ] {
            assert!(controller_of(k).is_err(), "{k:?} accepted");
        }
    }
}
