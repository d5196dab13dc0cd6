//! `berth pause` / `berth resume`: freeze and thaw every process of the container through
//! the cgroup v2 freezer; both return once the kernel reports the new state.

use super::require;
use crate::cgroups::freezer;
use crate::error::Result;
use crate::state::{State, Status};
use std::path::Path;

/// A created or running container can be paused (runc allows both).
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let st = State::load(root, id)?;
    require(&st, root, &[Status::Created, Status::Running], "container not running")?;
    freezer::set(&st.cgroup, true)
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let st = State::load(root, id)?;
    require(&st, root, &[Status::Paused], "container not paused")?;
    freezer::set(&st.cgroup, false)
}
