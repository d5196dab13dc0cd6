//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient
//! scope that systemd creates (`StartTransientUnit`, `Delegate=yes`) in the slice that the
//! `slice:prefix:name` cgroupsPath names; systemd instantiates missing parent slices itself
//! (a slice needs no unit file; `a-b.slice` lives in `a.slice`).
//!
//! Create: the init is cloned outside any cgroup of its own and waits on its sync channel;
//! the scope is started with `PIDs=[init]` and the resource properties, the driver waits
//! for the job's `JobRemoved`, then the cgroupfs code writes every limit into the scope's
//! directory too (exact values, and the ones systemd has no property for), and only then is
//! the init let go. Update: `SetUnitProperties` (runtime) plus the cgroupfs writes. Delete:
//! `cgroup.kill`, `StopUnit`, `ResetFailedUnit`. Freezing, signalling, statistics and
//! exec use the scope's directory like any cgroupfs cgroup.

pub mod dbus;
mod properties;
mod unit;

pub use properties::cpu_bits;
pub use unit::{expand_slice, Unit};

use super::Mode;
use crate::error::Result;
use crate::logger;
use dbus::{Buf, Conn, DbusError, Value};
use oci_spec::runtime::LinuxResources;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("linux.cgroupsPath {path:?}: {why}")]
    CgroupsPath { path: String, why: String },
    #[error(transparent)]
    Dbus(#[from] DbusError),
    #[error("unit {0} already exists")]
    UnitExists(String),
    #[error("systemd job to {what} unit {unit} ended with {result:?}")]
    JobFailed { unit: String, what: &'static str, result: String },
    #[error("timed out after {secs}s waiting for systemd to {what} unit {unit}")]
    JobTimeout { unit: String, what: &'static str, secs: u64 },
}

/// How long a start or stop job may take (runc waits as long).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);
const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

fn prop(name: &str, v: Value) -> (String, Value) {
    (name.to_string(), v)
}

fn first_arg(m: &dbus::Msg) -> Result<String, DbusError> {
    m.args()?.into_iter().next().ok_or_else(|| DbusError::Protocol(format!("empty reply to {}", m.member)))
}

/// Starts the container's unit with `pid` in it (a scope; a slice gets no processes from
/// systemd, the caller moves `pid` in) and waits until systemd has made it. Only limits
/// validated by the cgroupfs code reach here. A unit that already exists is an error: it
/// belongs to another container (berth's state dir already refused this container id).
pub fn start(unit: &Unit, pid: i32, r: &LinuxResources, id: &str, dir: &Path) -> Result<()> {
    let mut props = vec![prop("Description", Value::Str(format!("berth container {id}")))];
    if unit.is_slice() {
        props.push(prop("Wants", Value::Strs(vec![unit.parent.clone()])));
    } else {
        props.push(prop("Slice", Value::Str(unit.parent.clone())));
        props.push(prop("Delegate", Value::Bool(true)));
        props.push(prop("PIDs", Value::U32s(vec![pid as u32])));
    }
    props.extend(properties::base());
    // No ordering against shutdown or basic.target: a container may start at any time.
    props.push(prop("DefaultDependencies", Value::Bool(false)));
    props.extend(properties::for_resources(r, Mode::Create, dir)?);

    let mut c = Conn::connect().map_err(SystemdError::from)?;
    let mut b = Buf::default();
    b.str(&unit.name);
    b.str("replace");
    b.props(&props);
    b.empty_struct_array();
    let job = match c.manager("StartTransientUnit", "ssa(sv)a(sa(sv))", &b.0).and_then(|m| first_arg(&m)) {
        Ok(j) => j,
        Err(DbusError::Remote { name, .. }) if name == UNIT_EXISTS => return Err(SystemdError::UnitExists(unit.name.clone()).into()),
        Err(e) => return Err(SystemdError::from(e).into()),
    };
    logger::debug(&format!("{id}: systemd job {job} starts {}", unit.name));
    let outcome = c.wait_job(&job, JOB_TIMEOUT).map_err(SystemdError::from)?;
    let err = match outcome.as_deref() {
        Some("done") => return Ok(()),
        Some(res) => SystemdError::JobFailed { unit: unit.name.clone(), what: "start", result: res.to_string() },
        None => SystemdError::JobTimeout { unit: unit.name.clone(), what: "start", secs: JOB_TIMEOUT.as_secs() },
    };
    // The unit is ours: leave nothing of it behind.
    let _ = stop_unit(&mut c, &unit.name);
    reset_failed(&mut c, &unit.name);
    Err(err.into())
}

/// Changes the live unit's properties (runtime only: nothing written to /etc) for what `r`
/// names; the caller writes the cgroup files after.
pub fn update(unit: &str, r: &LinuxResources, dir: &Path) -> Result<()> {
    let props = properties::for_resources(r, Mode::Update, dir)?;
    if props.is_empty() {
        return Ok(());
    }
    let mut c = Conn::connect().map_err(SystemdError::from)?;
    let mut b = Buf::default();
    b.str(unit);
    b.bool(true);
    b.props(&props);
    c.manager("SetUnitProperties", "sba(sv)", &b.0).map_err(SystemdError::from)?;
    Ok(())
}

/// StopUnit and wait; a unit systemd has already dropped (its cgroup emptied) is fine.
fn stop_unit(c: &mut Conn, unit: &str) -> Result<(), SystemdError> {
    let mut b = Buf::default();
    b.str(unit);
    b.str("replace");
    let job = match c.manager("StopUnit", "ss", &b.0).and_then(|m| first_arg(&m)) {
        Ok(j) => j,
        Err(DbusError::Remote { name, .. }) if name == NO_SUCH_UNIT => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    match c.wait_job(&job, JOB_TIMEOUT)?.as_deref() {
        Some("done") => Ok(()),
        Some(res) => Err(SystemdError::JobFailed { unit: unit.into(), what: "stop", result: res.into() }),
        None => Err(SystemdError::JobTimeout { unit: unit.into(), what: "stop", secs: JOB_TIMEOUT.as_secs() }),
    }
}

/// Forgets a failed unit (an OOM-killed scope stays "failed" and would block its name).
fn reset_failed(c: &mut Conn, unit: &str) {
    let mut b = Buf::default();
    b.str(unit);
    let _ = c.manager("ResetFailedUnit", "s", &b.0);
}

/// How long `remove` waits for the killed scope to empty (as the cgroupfs driver).
const EMPTY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether an error means the cgroup is gone: systemd removes a scope's directory as soon
/// as its last process has left, at any moment of ours (ENOENT on open, ENODEV on an fd
/// opened before).
fn gone(e: &crate::error::Error, dir: &Path) -> bool {
    matches!(e.errno(), Some(nix::errno::Errno::ENOENT | nix::errno::Errno::ENODEV)) || !dir.exists()
}

/// Kills what is in the cgroup and waits until it is empty or gone. Polls: a poll(2) on
/// cgroup.events is not woken when systemd removes the directory under it.
fn kill_and_wait(dir: &Path) -> Result<()> {
    match super::signal_all(dir, libc::SIGKILL) {
        Err(e) if !gone(&e, dir) => return Err(e),
        _ => {}
    }
    let deadline = std::time::Instant::now() + EMPTY_TIMEOUT;
    loop {
        match super::fs::read_keyed(dir, "cgroup.events") {
            Ok(ev) if super::fs::keyed(&ev, "populated") == Some(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if gone(&e, dir) => return Ok(()),
            Err(e) => return Err(e),
        }
        if std::time::Instant::now() >= deadline {
            return Err(crate::error::Error::Cgroup(format!(
                "{} still has processes {:?} {}s after SIGKILL: not removed",
                dir.display(),
                super::pids(dir),
                EMPTY_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes the container's unit: kills what is left in its cgroup (cgroup.kill) and waits
/// for it to empty, stops the unit, forgets it if it failed, and removes any cgroup the
/// container made below the scope (systemd removes the scope's own directory).
pub fn remove(unit: &str, dir: &Path) -> Result<()> {
    if !dir.exists() {
        // systemd removes a scope's cgroup only once the scope is dead: nothing to stop.
        // (Asking anyway is worse than useless: in the VM bed a call made right after the
        // scope died sometimes got no reply for 25 s; see docs/ARCHITECTURE.md.)
        logger::debug(&format!("{unit}: cgroup already removed by systemd"));
        return Ok(());
    }
    kill_and_wait(dir)?;
    let mut c = Conn::connect().map_err(SystemdError::from)?;
    // A scope whose last process left is dead and usually already dropped by systemd:
    // GetUnit (which, unlike StopUnit, does not load a unit by name) says whether there is
    // anything left to stop.
    let mut b = Buf::default();
    b.str(unit);
    match c.manager("GetUnit", "s", &b.0) {
        Err(DbusError::Remote { name, .. }) if name == NO_SUCH_UNIT => {
            logger::debug(&format!("{unit}: already gone"));
            return match super::remove(dir) {
                Err(e) if !gone(&e, dir) => Err(e),
                _ => Ok(()),
            };
        }
        Err(e) => logger::warn(&format!("GetUnit {unit}: {e}")),
        Ok(_) => {}
    }
    logger::debug(&format!("{unit}: stopping"));
    let stopped = stop_unit(&mut c, unit);
    reset_failed(&mut c, unit);
    logger::debug(&format!("{unit}: stopped"));
    if let Err(e) = stopped {
        logger::warn(&format!("stop {unit}: {e}"));
    }
    match super::remove(dir) {
        Err(e) if !gone(&e, dir) => Err(e),
        _ => Ok(()),
    }
}
