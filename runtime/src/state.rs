//! A container's state directory (`<root>/<id>/`) and its status.
//!
//! `state.json` is the one source of truth, written atomically (temp file + rename);
//! the status is derived on every read from the init process (pid + start time, so a
//! reused pid is never mistaken for the container), its cgroup (frozen → paused) and the
//! exec fifo (present until `start`).

use crate::error::{Context, Error, Result};
use oci_spec::runtime::Hooks;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// The OCI runtime-spec version berth's state follows.
pub const OCI_VERSION: &str = "1.2.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What berth keeps about a container between commands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (clock ticks since boot, /proc/<pid>/stat field 22).
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Absolute path of the container's cgroup directory.
    pub cgroup: PathBuf,
    /// The systemd unit that owns `cgroup` (the systemd driver); None for cgroupfs. Later
    /// commands follow this record, whatever `--systemd-cgroup` says then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// Hooks that run after `create` returns (poststart, poststop).
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// The container has no mount namespace: its mounts are in the host's, below the
    /// rootfs, and `delete` detaches them.
    #[serde(default)]
    pub shares_host_mounts: bool,
    /// The init's stdio as it was given (fds 0-2), for `checkpoint`: taken at create, when
    /// no redirection of the container's own can have replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio: Option<Stdio>,
}

/// fds 0-2 of a container's init: their link targets (runc's `descriptors.json`) and, for
/// files, CRIU's external-file key `file[<mnt_id hex>:<inode hex>]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stdio {
    pub links: Vec<String>,
    pub file_keys: Vec<Option<String>>,
}

impl Stdio {
    /// Reads fds 0-2 of `/proc/<who>` (`self` or a pid).
    pub fn of(who: &str) -> Stdio {
        let links: Vec<String> = (0..3)
            .map(|fd| std::fs::read_link(format!("/proc/{who}/fd/{fd}")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default())
            .collect();
        let file_keys = links.iter().enumerate().map(|(fd, l)| if l.starts_with('/') { file_key(who, fd) } else { None }).collect();
        Stdio { links, file_keys }
    }
}

/// CRIU's key for an open file: `file[<mnt_id hex>:<inode hex>]`.
fn file_key(who: &str, fd: usize) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let info = std::fs::read_to_string(format!("/proc/{who}/fdinfo/{fd}")).ok()?;
    let mnt_id: u64 = info.lines().find_map(|l| l.strip_prefix("mnt_id:"))?.trim().parse().ok()?;
    let ino = std::fs::metadata(format!("/proc/{who}/fd/{fd}")).ok()?.ino();
    Some(format!("file[{mnt_id:x}:{ino:x}]"))
}

/// The OCI state as `berth state` prints it (runc's shape, with `created` and `owner`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
}

/// Checks an id is safe as a directory name (runc's rule: `^[\w+.-]+$`).
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

impl State {
    pub fn load(root: &Path, id: &str) -> Result<State> {
        validate_id(id)?;
        let file = dir(root, id).join(STATE_FILE);
        let data = match std::fs::read(&file) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound(id.into())),
            Err(e) => return Err(e).with_ctx(|| format!("read {}", file.display())),
        };
        serde_json::from_slice(&data).map_err(|e| Error::Spec(format!("corrupt state {}: {e}", file.display())))
    }

    /// Writes state.json atomically (temp file + rename). No fsync: the state root lives on
    /// /run (tmpfs) and does not outlive the containers it describes.
    pub fn save(&self, root: &Path) -> Result<()> {
        let d = dir(root, &self.id);
        let tmp = d.join(".state.json.tmp");
        let data = serde_json::to_vec(self).expect("state serializes");
        let mut f = std::fs::File::create(&tmp).with_ctx(|| format!("write {}", tmp.display()))?;
        f.write_all(&data).with_ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, d.join(STATE_FILE)).ctx("save state")
    }

    pub fn fifo(&self, root: &Path) -> PathBuf {
        dir(root, &self.id).join(EXEC_FIFO)
    }

    /// Whether the init process recorded in the state is still this container's.
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && matches!(proc_stat(self.pid), Some((state, start)) if start == self.pid_start && state != 'Z' && state != 'X')
    }

    pub fn status(&self, root: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        // A frozen container is paused whether or not it was started (as in runc).
        if crate::cgroups::is_frozen(&self.cgroup) {
            return Status::Paused;
        }
        if self.fifo(root).exists() {
            return Status::Created;
        }
        Status::Running
    }

    pub fn oci(&self, status: Status) -> OciState {
        OciState {
            oci_version: OCI_VERSION.into(),
            id: self.id.clone(),
            pid: if status == Status::Stopped { 0 } else { self.pid },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// Ids of all containers under `root` that have a state file, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_ctx(|| format!("read {}", root.display())),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// (state letter, start time) of a process from /proc/<pid>/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1.2_x+y", "A"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\n"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_stdio_is_read() {
        let s = Stdio::of("self");
        assert_eq!(s.links.len(), 3);
        assert_eq!(s.file_keys.len(), 3);
        for (l, k) in s.links.iter().zip(&s.file_keys) {
            if l.starts_with('/') {
                let k = k.as_deref().unwrap_or_default();
                assert!(k.starts_with("file[") && k.ends_with(']') && k.contains(':'), "{l} → {k}");
            } else {
                assert!(k.is_none(), "{l}");
            }
        }
    }

    #[test]
    fn own_stat_parses() {
        let (state, start) = proc_stat(std::process::id() as i32).unwrap();
        assert!("RSD".contains(state), "{state}");
        assert!(start > 0);
    }
}
