//! `berth kill`: signal the init, or every process of the container with `--all`.

use super::require;
use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::process::pidfd;
use crate::state::{self, State, Status};
use std::path::Path;

pub fn kill(root: &Path, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = crate::signal::parse(signal)?;
    let st = State::load(root, id)?;
    require(&st, root, &[Status::Created, Status::Running, Status::Paused], "container not running")?;
    if all {
        return cgroups::signal_all(&st.cgroup, sig);
    }
    let fd = pidfd::open(st.pid).ok_or_else(|| Error::Init("container init is gone".into()))?;
    // The pidfd pins the process: check it is still ours before signalling through it.
    if state::proc_stat(st.pid).map(|(_, t)| t) != Some(st.pid_start) {
        return Err(Error::Status { id: id.into(), status: "stopped".into(), why: "container not running".into() });
    }
    pidfd::signal(&fd, sig).with_ctx(|| format!("send signal {sig}"))
}
