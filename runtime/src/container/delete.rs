//! `berth delete`: remove a stopped (or, with `--force`, any) container.

use super::state_json;
use crate::cgroups;
use crate::error::{Error, Result};
use crate::hooks::{self, Kind};
use crate::process::pidfd;
use crate::state::{self, State, Status};
use std::path::Path;
use std::time::Duration;

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let st = match State::load(root, id) {
        Ok(s) => s,
        Err(Error::NotFound(_)) if force => {
            // An aborted create may have left a directory without state.json.
            state::validate_id(id)?;
            let _ = std::fs::remove_dir_all(state::dir(root, id));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match st.status(root) {
        Status::Stopped => {}
        Status::Created => stop(&st)?,
        s @ (Status::Running | Status::Paused | Status::Creating) => {
            if !force {
                return Err(Error::Status {
                    id: id.into(),
                    status: s.to_string(),
                    why: "cannot delete a container that is not stopped (use --force)".into(),
                });
            }
            stop(&st)?;
        }
    }
    destroy(root, &st)
}

/// SIGKILLs every process of the container and waits for the init to go.
fn stop(st: &State) -> Result<()> {
    let fd = pidfd::open(st.pid);
    cgroups::signal_all(&st.cgroup, libc::SIGKILL)?;
    if let Some(fd) = fd {
        if st.init_alive() {
            let _ = pidfd::signal(&fd, libc::SIGKILL);
        }
        if !pidfd::wait_exit(&fd, Duration::from_secs(10)) {
            return Err(Error::Init(format!("container {} init did not exit after SIGKILL", st.id)));
        }
    }
    Ok(())
}

/// Removes what is left of a stopped container: stray processes and the cgroup (an error if
/// the cgroup stays busy: the state is then kept, so `delete --force` can be retried), the
/// mounts of a container without a mount namespace, then the state; then poststop.
pub fn destroy(root: &Path, st: &State) -> Result<()> {
    match &st.systemd_unit {
        Some(u) => cgroups::systemd::remove(u, &st.cgroup)?,
        None => cgroups::remove(&st.cgroup)?,
    }
    if st.shares_host_mounts {
        crate::rootfs::detach_host_mounts(&st.rootfs);
    }
    if let Some(h) = st.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
        hooks::run_all_warn(Kind::Poststop, h, &state_json(st, Status::Stopped));
    }
    let _ = std::fs::remove_dir_all(state::dir(root, &st.id));
    Ok(())
}
