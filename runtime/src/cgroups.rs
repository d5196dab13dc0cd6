//! The container's cgroup in the host's cgroup2 hierarchy (minimal v2 manager).
//!
//! Pure v2 hosts mount cgroup2 at /sys/fs/cgroup; hybrid hosts at /sys/fs/cgroup/unified.
//! Limits are written only where the hierarchy has the controller; a spec asking for one
//! it lacks fails before anything is created, naming the controller.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::LinuxResources;
use std::path::{Component, Path, PathBuf};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// Parent of containers whose spec names no cgroupsPath.
const DEFAULT_PARENT: &str = "berth";

/// Mount point of the host's cgroup2 hierarchy.
pub fn root() -> Result<PathBuf> {
    for p in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if let Ok(st) = nix::sys::statfs::statfs(p) {
            if st.filesystem_type().0 == CGROUP2_SUPER_MAGIC {
                return Ok(PathBuf::from(p));
            }
        }
    }
    Err(Error::Cgroup("no cgroup2 hierarchy mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified".into()))
}

/// Absolute cgroup directory for a container: the spec's cgroupsPath (relative to the
/// hierarchy root) or `berth/<id>`.
pub fn path_for(spec_path: Option<&Path>, id: &str) -> Result<PathBuf> {
    let root = root()?;
    let rel = match spec_path {
        None => PathBuf::from(DEFAULT_PARENT).join(id),
        Some(p) => {
            let s = p.to_string_lossy();
            if !s.starts_with('/') && s.contains(':') {
                return Err(Error::Unsupported(format!(
                    "systemd cgroupsPath {s:?} (berth manages cgroupfs paths only)"
                )));
            }
            let mut rel = PathBuf::new();
            for c in p.components() {
                match c {
                    Component::Normal(n) => rel.push(n),
                    Component::RootDir | Component::CurDir => {}
                    _ => return Err(Error::Spec(format!("cgroupsPath {s:?} must not contain ..",))),
                }
            }
            if rel.as_os_str().is_empty() {
                return Err(Error::Spec("cgroupsPath must not be the hierarchy root".into()));
            }
            rel
        }
    };
    Ok(root.join(rel))
}

/// Controllers a resources section needs, as (controller, what asked for it).
fn required_controllers(r: &LinuxResources) -> Vec<(String, &'static str)> {
    let mut need = Vec::new();
    if let Some(m) = r.memory() {
        if m.limit().is_some() || m.reservation().is_some() || m.swap().is_some() {
            need.push(("memory".into(), "linux.resources.memory"));
        }
    }
    if let Some(c) = r.cpu() {
        if c.shares().is_some() || c.quota().is_some() || c.period().is_some() || c.idle().is_some() {
            need.push(("cpu".into(), "linux.resources.cpu"));
        }
        if c.cpus().as_ref().is_some_and(|s| !s.is_empty()) || c.mems().as_ref().is_some_and(|s| !s.is_empty()) {
            need.push(("cpuset".into(), "linux.resources.cpu.cpus/mems"));
        }
    }
    if r.pids().is_some() {
        need.push(("pids".into(), "linux.resources.pids"));
    }
    if let Some(b) = r.block_io() {
        if b.weight().is_some()
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || b.throttle_read_bps_device().as_ref().is_some_and(|v| !v.is_empty())
            || b.throttle_write_bps_device().as_ref().is_some_and(|v| !v.is_empty())
            || b.throttle_read_iops_device().as_ref().is_some_and(|v| !v.is_empty())
            || b.throttle_write_iops_device().as_ref().is_some_and(|v| !v.is_empty())
        {
            need.push(("io".into(), "linux.resources.blockIO"));
        }
    }
    if r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
        need.push(("hugetlb".into(), "linux.resources.hugepageLimits"));
    }
    if r.rdma().as_ref().is_some_and(|v| !v.is_empty()) {
        need.push(("rdma".into(), "linux.resources.rdma"));
    }
    for key in r.unified().as_ref().map(|u| u.keys().collect::<Vec<_>>()).unwrap_or_default() {
        if let Some((ctrl, _)) = key.split_once('.') {
            if ctrl != "cgroup" {
                need.push((ctrl.to_string(), "linux.resources.unified"));
            }
        }
    }
    need
}

fn controllers_of(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Creates the cgroup and applies the limits it can; fails naming any controller the
/// hierarchy lacks. Nothing is left behind on failure.
pub fn create(path: &Path, resources: Option<&LinuxResources>) -> Result<()> {
    let root = root()?;
    let available = controllers_of(&root);
    let needed = resources.map(required_controllers).unwrap_or_default();
    for (ctrl, why) in &needed {
        if !available.iter().any(|a| a == ctrl) {
            return Err(Error::Cgroup(format!(
                "controller {ctrl} is not available in {} (needed for {why})",
                root.display()
            )));
        }
    }
    if path.exists() {
        return Err(Error::Cgroup(format!("{} already exists", path.display())));
    }
    std::fs::create_dir_all(path).with_ctx(|| format!("create cgroup {}", path.display()))?;
    let applied = enable_controllers(&root, path, &needed).and_then(|_| match resources {
        Some(r) => apply(path, r),
        None => Ok(()),
    });
    if let Err(e) = applied {
        remove(path);
        return Err(e);
    }
    Ok(())
}

/// Enables what the limits need in every ancestor's cgroup.subtree_control.
fn enable_controllers(root: &Path, leaf: &Path, needed: &[(String, &str)]) -> Result<()> {
    let Some(parent) = leaf.parent() else { return Ok(()) };
    let mut dirs: Vec<&Path> = parent.ancestors().take_while(|d| d.starts_with(root)).collect();
    dirs.reverse();
    for dir in dirs {
        let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        for (ctrl, _) in needed {
            if !enabled.split_whitespace().any(|c| c == ctrl) {
                std::fs::write(dir.join("cgroup.subtree_control"), format!("+{ctrl}"))
                    .with_ctx(|| format!("enable {ctrl} in {}", dir.display()))?;
            }
        }
    }
    Ok(())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    std::fs::write(dir.join(file), value).with_ctx(|| format!("cgroup {file}={value}"))
}

fn max_or(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

/// Writes the limits of a resources section (the full mapping lands with the cgroups issue).
fn apply(dir: &Path, r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            write(dir, "memory.max", &max_or(l))?;
        }
        if let Some(l) = m.reservation() {
            write(dir, "memory.low", &max_or(l))?;
        }
        if let Some(s) = m.swap() {
            // OCI's swap is memory+swap; cgroup2's memory.swap.max is swap alone.
            let v = match m.limit() {
                Some(l) if s >= 0 && l >= 0 => (s - l).max(0).to_string(),
                _ => max_or(s),
            };
            write(dir, "memory.swap.max", &v)?;
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares() {
            // runc's mapping of cgroup1 shares [2, 262144] onto cgroup2 weight [1, 10000].
            let s = shares.clamp(2, 262_144);
            write(dir, "cpu.weight", &(1 + ((s - 2) * 9999) / 262_142).to_string())?;
        }
        if c.quota().is_some() || c.period().is_some() {
            let quota = c.quota().map(max_or).unwrap_or_else(|| "max".into());
            write(dir, "cpu.max", &format!("{quota} {}", c.period().unwrap_or(100_000)))?;
        }
        if let Some(cpus) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems().as_ref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.mems", mems)?;
        }
    }
    if let Some(p) = r.pids() {
        write(dir, "pids.max", &max_or(p.limit()))?;
    }
    for h in r.hugepage_limits().as_deref().unwrap_or_default() {
        write(dir, &format!("hugetlb.{}.max", h.page_size()), &h.limit().to_string())?;
    }
    for (k, v) in r.unified().iter().flatten() {
        if k.contains('/') || k.starts_with('.') {
            return Err(Error::Spec(format!("invalid unified cgroup key {k:?}")));
        }
        write(dir, k, v)?;
    }
    Ok(())
}

pub fn add_process(dir: &Path, pid: i32) -> Result<()> {
    write(dir, "cgroup.procs", &pid.to_string())
}

/// Every process in the cgroup and below it.
pub fn pids(dir: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(pids(&e.path()));
            }
        }
    }
    out
}

/// Sends `sig` to every process of the cgroup (cgroup.kill for SIGKILL where the kernel has it).
pub fn signal_all(dir: &Path, sig: i32) -> Result<()> {
    if sig == libc::SIGKILL && dir.join("cgroup.kill").exists() {
        return write(dir, "cgroup.kill", "1");
    }
    for pid in pids(dir) {
        // SAFETY: kill(2) has no memory effects; a process gone meanwhile is fine.
        unsafe { libc::kill(pid, sig) };
    }
    Ok(())
}

pub fn is_frozen(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
}

/// Removes the cgroup (waiting briefly for exiting tasks) and berth's default parent if empty.
pub fn remove(dir: &Path) {
    for attempt in 0..200 {
        match std::fs::remove_dir(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(_) if attempt < 199 => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => crate::logger::warn(&format!("remove cgroup {}: {e}", dir.display())),
        }
    }
    if let Some(parent) = dir.parent() {
        if parent.file_name().is_some_and(|n| n == DEFAULT_PARENT) {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};

    #[test]
    fn names_needed_controllers() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(1 << 20).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
            .build()
            .unwrap();
        let names: Vec<String> = required_controllers(&r).into_iter().map(|(c, _)| c).collect();
        assert_eq!(names, vec!["memory", "pids"]);
    }

    #[test]
    fn empty_resources_need_nothing() {
        let r = LinuxResources::default();
        assert!(required_controllers(&r).is_empty());
    }
}
