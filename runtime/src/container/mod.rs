//! Container lifecycle operations, one file per CLI verb.

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
#[allow(unsafe_code)] // fork of the exec process
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod restore;
pub mod run;
pub mod spec;
pub mod start;
pub mod update;

use crate::error::{Error, Result};
use crate::state::{State, Status};
use std::path::Path;

/// The container's state in the shape hooks and `berth state` use.
pub fn state_json(s: &State, status: Status) -> Vec<u8> {
    serde_json::to_vec(&s.oci(status)).expect("state serializes")
}

/// Fails unless the container has one of the `allowed` statuses.
pub fn require(s: &State, root: &Path, allowed: &[Status], why: &str) -> Result<Status> {
    let status = s.status(root);
    if allowed.contains(&status) {
        Ok(status)
    } else {
        Err(Error::Status { id: s.id.clone(), status: status.to_string(), why: why.to_string() })
    }
}
