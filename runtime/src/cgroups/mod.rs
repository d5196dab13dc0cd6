//! The container's cgroup in the host's cgroup2 hierarchy (the cgroupfs driver): creation,
//! limits (one module per controller), freezing, signalling, statistics and removal.
//!
//! Pure v2 hosts mount cgroup2 at /sys/fs/cgroup; hybrid hosts at /sys/fs/cgroup/unified,
//! which offers only the controllers not bound to v1 (often none or hugetlb). The core
//! files (cgroup.procs, cgroup.freeze, cgroup.kill, cgroup.events, cpu.stat) exist either way,
//! so containers are tracked, frozen and killed there on both; a limit whose controller the
//! hierarchy lacks fails before anything is created, naming the controller.
//!
//! Every input is validated before the first write; a create that fails later removes
//! what it made.

mod cpu;
mod cpuset;
pub mod devices;
pub mod events;
pub mod freezer;
mod fs;
mod hugetlb;
mod io;
mod memory;
mod misc;
mod path;
mod pids;
mod rdma;
pub mod stats;
pub mod systemd;
mod unified;

pub use cpu::shares_to_weight;
pub use memory::oom_kills;
pub use path::{is_systemd_form, path_for, root};

use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether limits go to a new cgroup or change a live one: an update keeps the live value
/// of what it does not name (cpu.max's other half, memory.max for a swap-only change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// One controller's part of the resources.
struct Controller {
    name: &'static str,
    /// What in the resources needs this controller, if anything does.
    wants: fn(&LinuxResources) -> Option<&'static str>,
    validate: fn(&LinuxResources, Mode) -> Result<()>,
    apply: fn(&Path, &LinuxResources, Mode) -> Result<()>,
}

/// In the order runc writes them (unified comes last, after all of these).
const CONTROLLERS: [Controller; 7] = [
    Controller { name: "pids", wants: pids::wants, validate: pids::validate, apply: pids::apply },
    Controller { name: "memory", wants: memory::wants, validate: memory::validate, apply: memory::apply },
    Controller { name: "io", wants: io::wants, validate: io::validate, apply: io::apply },
    Controller { name: "cpu", wants: cpu::wants, validate: cpu::validate, apply: cpu::apply },
    Controller { name: "cpuset", wants: cpuset::wants, validate: cpuset::validate, apply: cpuset::apply },
    Controller { name: "hugetlb", wants: hugetlb::wants, validate: hugetlb::validate, apply: hugetlb::apply },
    Controller { name: "rdma", wants: rdma::wants, validate: rdma::validate, apply: rdma::apply },
];

/// How long `remove` waits for killed processes to leave the cgroup.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(10);

/// Controllers a resources section needs, as (controller, what asked for it).
fn required_controllers(r: &LinuxResources) -> Vec<(String, &'static str)> {
    let mut need: Vec<(String, &'static str)> =
        CONTROLLERS.iter().filter_map(|c| (c.wants)(r).map(|why| (c.name.to_string(), why))).collect();
    for ctrl in unified::wanted(r) {
        if !need.iter().any(|(c, _)| c == ctrl) {
            need.push((ctrl.to_string(), "linux.resources.unified"));
        }
    }
    need
}

fn controllers_of(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default().split_whitespace().map(String::from).collect()
}

/// Checks every value and that `dir` (the root for a new cgroup) offers every controller needed.
fn check(root: &Path, dir: &Path, r: &LinuxResources, mode: Mode) -> Result<Vec<(String, &'static str)>> {
    for c in &CONTROLLERS {
        (c.validate)(r, mode)?;
    }
    unified::validate(r, root, mode)?;
    devices::validate(r)?;
    let needed = required_controllers(r);
    let available = controllers_of(dir);
    if let Some((ctrl, why)) = needed.iter().find(|(c, _)| !available.contains(c)) {
        return Err(Error::Cgroup(format!("controller {ctrl} is not available in {} (needed for {why})", dir.display())));
    }
    Ok(needed)
}

fn apply(dir: &Path, r: &LinuxResources, mode: Mode) -> Result<()> {
    for c in &CONTROLLERS {
        (c.apply)(dir, r, mode)?;
        // The device program comes after cpu, as in runc's order. A new cgroup always gets
        // one (no rules means only the default devices); an update replaces it only when
        // it names device rules (runc's update leaves devices alone altogether).
        if c.name == "cpu" && (mode == Mode::Create || r.devices().as_ref().is_some_and(|d| !d.is_empty())) {
            devices::apply(dir, r)?;
        }
    }
    unified::apply(dir, r, mode)
}

/// Creates the cgroup (and missing parents) and applies the limits; fails naming any
/// controller the hierarchy lacks. Nothing is left behind on failure.
pub fn create(path: &Path, resources: Option<&LinuxResources>) -> Result<()> {
    let root = root()?;
    let empty = LinuxResources::default();
    let r = resources.unwrap_or(&empty);
    let needed = check(&root, &root, r, Mode::Create)?;
    if path.exists() {
        return Err(Error::Cgroup(format!("{} already exists", path.display())));
    }
    let rel = path.strip_prefix(&root).map_err(|_| Error::Cgroup(format!("{} is outside {}", path.display(), root.display())))?;
    let mut made: Vec<PathBuf> = Vec::new();
    let mut cur = root.clone();
    let result = (|| {
        for c in rel.components() {
            cur.push(c);
            match std::fs::create_dir(&cur) {
                Ok(()) => made.push(cur.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && cur != path => {}
                Err(e) => return Err(Error::Io { context: format!("create cgroup {}", cur.display()), cause: e }),
            }
        }
        enable_controllers(&root, path, &needed)?;
        apply(path, r, Mode::Create)
    })();
    if let Err(e) = result {
        for d in made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        return Err(e);
    }
    Ok(())
}

/// Checks limits for a new cgroup without creating anything (the systemd driver's first
/// step: a bad value must fail before systemd is asked for a unit).
pub fn check_new(resources: Option<&LinuxResources>) -> Result<()> {
    let root = root()?;
    check(&root, &root, resources.unwrap_or(&LinuxResources::default()), Mode::Create).map(|_| ())
}

/// Writes the limits of a new cgroup that someone else made (systemd's scope): the
/// controllers they need are enabled in the parents first, as for [`create`].
pub fn apply_new(path: &Path, resources: Option<&LinuxResources>) -> Result<()> {
    let root = root()?;
    let empty = LinuxResources::default();
    let r = resources.unwrap_or(&empty);
    let needed = check(&root, &root, r, Mode::Create)?;
    enable_controllers(&root, path, &needed)?;
    apply(path, r, Mode::Create)
}

/// Checks an update for a live cgroup without writing anything.
pub fn check_update(path: &Path, r: &LinuxResources) -> Result<()> {
    let root = root()?;
    check(&root, path.parent().unwrap_or(&root), r, Mode::Update).map(|_| ())
}

/// Changes the limits of a live cgroup (`berth update`): checked in full before the first
/// write; controllers the new limits need are enabled in the parents first.
pub fn update(path: &Path, r: &LinuxResources) -> Result<()> {
    let root = root()?;
    let parent = path.parent().unwrap_or(&root);
    let needed = check(&root, parent, r, Mode::Update)?;
    enable_controllers(&root, path, &needed)?;
    apply(path, r, Mode::Update)
}

/// Enables controllers in every ancestor's cgroup.subtree_control: those the limits need,
/// and below the hierarchy root also every other one offered (as runc does, so the
/// container's statistics are complete). The root itself belongs to the host (systemd):
/// there berth enables only what a limit needs.
fn enable_controllers(root: &Path, leaf: &Path, needed: &[(String, &str)]) -> Result<()> {
    let Some(parent) = leaf.parent() else { return Ok(()) };
    let mut dirs: Vec<&Path> = parent.ancestors().take_while(|d| d.starts_with(root)).collect();
    dirs.reverse();
    for dir in dirs {
        let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        let enabled: Vec<&str> = enabled.split_whitespace().collect();
        for (ctrl, _) in needed {
            if !enabled.contains(&ctrl.as_str()) {
                fs::write(dir, "cgroup.subtree_control", &format!("+{ctrl}"))?;
            }
        }
        if dir != root {
            for ctrl in controllers_of(dir) {
                if !enabled.contains(&ctrl.as_str()) && !needed.iter().any(|(c, _)| *c == ctrl) {
                    // Best effort: statistics only.
                    let _ = fs::write(dir, "cgroup.subtree_control", &format!("+{ctrl}"));
                }
            }
        }
    }
    Ok(())
}

pub fn add_process(dir: &Path, pid: i32) -> Result<()> {
    fs::write(dir, "cgroup.procs", &pid.to_string())
}

/// Every process in the cgroup and below it.
pub fn pids(dir: &Path) -> Vec<i32> {
    let mut out: Vec<i32> =
        std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(pids(&e.path()));
            }
        }
    }
    out
}

/// Sends `sig` to every process of the cgroup: SIGKILL through cgroup.kill; other signals
/// with the cgroup frozen meanwhile (unless it already was), so no process forked between
/// listing and signalling escapes.
pub fn signal_all(dir: &Path, sig: i32) -> Result<()> {
    if sig == libc::SIGKILL && fs::exists(dir, "cgroup.kill") {
        return fs::write(dir, "cgroup.kill", "1");
    }
    let thaw = !freezer::is_frozen(dir) && freezer::set(dir, true).is_ok();
    for pid in pids(dir) {
        // A process gone meanwhile is fine.
        crate::sys::kill(pid, sig);
    }
    if thaw {
        freezer::set(dir, false)?;
    }
    Ok(())
}

pub fn is_frozen(dir: &Path) -> bool {
    freezer::is_frozen(dir)
}

/// The container's statistics (each controller's part, where the cgroup has it).
pub fn stats(dir: &Path) -> Result<stats::Stats> {
    let mut s = stats::Stats::default();
    pids::stats(dir, &mut s)?;
    memory::stats(dir, &mut s)?;
    io::stats(dir, &mut s)?;
    cpu::stats(dir, &mut s)?;
    hugetlb::stats(dir, &mut s)?;
    Ok(s)
}

/// Removes the cgroup: kills what is left in it (and below it) through cgroup.kill, waits
/// until `cgroup.events` says it is unpopulated, removes child cgroups the container made,
/// then the cgroup and berth's default parent if empty. A cgroup that stays busy is an
/// error naming it. A cgroup already gone is fine.
pub fn remove(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if fs::exists(dir, "cgroup.kill") {
        fs::write(dir, "cgroup.kill", "1")?;
    } else {
        for pid in pids(dir) {
            // Only kernels before 5.14 lack cgroup.kill.
            crate::sys::kill(pid, libc::SIGKILL);
        }
    }
    wait_empty(dir)?;
    remove_tree(dir)?;
    if let Some(parent) = dir.parent() {
        if parent.file_name().is_some_and(|n| n == path::DEFAULT_PARENT) {
            let _ = std::fs::remove_dir(parent);
        }
    }
    Ok(())
}

/// Waits until `cgroup.events` says the cgroup (and below) has no process left.
fn wait_empty(dir: &Path) -> Result<()> {
    if !events::wait(dir, "populated", 0, EMPTY_TIMEOUT)? {
        return Err(Error::Cgroup(format!(
            "{} still has processes {:?} {}s after SIGKILL: not removed",
            dir.display(),
            pids(dir),
            EMPTY_TIMEOUT.as_secs()
        )));
    }
    Ok(())
}

/// rmdir depth-first (a container may have made sub-cgroups of its own).
fn remove_tree(dir: &Path) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path())?;
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io { context: format!("remove cgroup {}", dir.display()), cause: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};

    #[test]
    fn names_needed_controllers() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(1 << 20).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
            .cpu(LinuxCpuBuilder::default().cpus("0").build().unwrap())
            .unified(
                [("memory.high".to_string(), "max".to_string()), ("misc.max".to_string(), "x 1".to_string())]
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            )
            .build()
            .unwrap();
        let names: Vec<String> = required_controllers(&r).into_iter().map(|(c, _)| c).collect();
        assert_eq!(names, vec!["pids", "memory", "cpuset", "misc"]);
    }

    #[test]
    fn empty_resources_need_nothing() {
        assert!(required_controllers(&LinuxResources::default()).is_empty());
    }

    #[test]
    fn bad_values_fail_validation() {
        let cases = [
            r#"{"memory": {"limit": -2}}"#,
            r#"{"memory": {"limit": 100, "swap": 50}}"#,
            r#"{"memory": {"swap": 50}}"#,
            r#"{"cpu": {"quota": -5}}"#,
            r#"{"cpu": {"idle": 2}}"#,
            r#"{"cpu": {"cpus": "0-"}}"#,
            r#"{"pids": {"limit": -3}}"#,
            r#"{"blockIO": {"weight": 5}}"#,
            r#"{"blockIO": {"throttleReadBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}}"#,
            r#"{"unified": {"../memory.max": "1"}}"#,
            r#"{"unified": {"cgroup.procs": "1"}}"#,
            r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#,
            r#"{"rdma": {"mlx 0": {"hcaHandles": 1}}}"#,
        ];
        for c in cases {
            let r: LinuxResources = serde_json::from_str(c).unwrap();
            let root = Path::new("/nonexistent");
            assert!(check(root, root, &r, Mode::Create).is_err(), "{c} accepted");
        }
        for c in [r#"{"cpu": {"shares": -1}}"#, r#"{"memory": {"limit": 99999999999999999999}}"#] {
            assert!(serde_json::from_str::<LinuxResources>(c).is_err(), "{c} parsed");
        }
    }
}
