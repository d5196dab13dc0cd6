//! Pod sandboxes: the record berth-cri keeps per pod (one source of truth on disk,
//! `<state_root>/sandboxes/<id>/sandbox.json` plus the CRI config as sent), and the pieces a
//! pod is made of — pinned namespaces (`namespaces.rs`), its files and /dev/shm (`files.rs`),
//! and pod-level sysctls (`sysctl.rs`).
//!
//! A pod costs no process: its network, IPC and UTS namespaces are created by a short-lived
//! thread and kept alive by bind mounts of their nsfs files under the sandbox directory (as
//! CRI-O's pinns does); containers join them by path. A user-namespaced pod's namespaces are
//! made by a forked helper inside its new user namespace instead (`userns.rs`).

pub mod files;
pub mod infra;
pub mod namespaces;
pub mod sysctl;
#[allow(unsafe_code)] // fork of the helper that creates a pod's user namespace
pub mod userns;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    /// Being set up; a record still in this state after a restart is cleaned up.
    Creating,
    Ready,
    /// Stopped: containers ended, network torn down; namespaces kept until removal.
    NotReady,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    /// `name_namespace_uid_attempt`, unique among live pods.
    pub name_key: String,
    pub state: SandboxState,
    /// Unix nanoseconds.
    pub created_at: i64,
    pub handler: String,
    pub host_network: bool,
    pub host_ipc: bool,
    pub host_pid: bool,
    /// Pinned namespace files (None: the host's).
    pub netns: Option<PathBuf>,
    pub ipc_ns: Option<PathBuf>,
    pub uts_ns: Option<PathBuf>,
    pub shm: Option<PathBuf>,
    /// A pod-wide PID namespace: its init (berth-pause), with its start time, and the pin.
    #[serde(default)]
    pub infra_pid: i32,
    #[serde(default)]
    pub infra_start: u64,
    #[serde(default)]
    pub pid_ns: Option<PathBuf>,
    /// A user-namespaced pod: its pinned user namespace (which owns the pod's other
    /// namespaces) and its id mapping, the one record of that pod's ids being in use.
    #[serde(default)]
    pub user_ns: Option<PathBuf>,
    #[serde(default)]
    pub userns: Option<userns::IdMap>,
    pub ips: Vec<String>,
    /// CNI ADD ran and DEL has not yet.
    pub network_attached: bool,
    pub hostname: String,
}

/// A pod as the server holds it: its record and the CRI config it was created with.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub record: SandboxRecord,
    pub config: cri::PodSandboxConfig,
}

pub fn dir(state_root: &Path, id: &str) -> PathBuf {
    state_root.join("sandboxes").join(id)
}

impl Sandbox {
    pub fn save(&self, state_root: &Path) -> std::io::Result<()> {
        crate::persist::save_record(&dir(state_root, &self.record.id), "sandbox.json", &self.record, &self.config)
    }

    pub fn load(d: &Path) -> std::io::Result<Sandbox> {
        let (record, config) = crate::persist::load_record(d, "sandbox.json")?;
        Ok(Sandbox { record, config })
    }

    pub fn metadata(&self) -> cri::PodSandboxMetadata {
        self.config.metadata.clone().unwrap_or_default()
    }

    pub fn cri_state(&self) -> i32 {
        match self.record.state {
            SandboxState::Ready => cri::PodSandboxState::SandboxReady as i32,
            _ => cri::PodSandboxState::SandboxNotready as i32,
        }
    }

    /// The pod's namespace options as requested, with the user namespace's mapping as it
    /// really is (an allocated block is not in the request).
    pub fn namespace_options(&self) -> cri::NamespaceOption {
        let mut o = self
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default();
        if let Some(m) = &self.record.userns {
            o.userns_options = Some(m.cri());
        }
        o
    }
}

/// The reservation key of a pod name (what makes a second pod with the same name,
/// namespace, uid and attempt an AlreadyExists).
pub fn name_key(m: &cri::PodSandboxMetadata) -> String {
    format!("{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
}

/// A metadata value that may appear in a file name, a CNI_ARGS value or a key: no path
/// separators, no control characters, no `;`/`=` (CNI_ARGS syntax), bounded length.
pub fn valid_meta(v: &str) -> bool {
    !v.is_empty() && v.len() <= 253 && v != "." && v != ".." && !v.chars().any(|c| c == '/' || c == ';' || c == '=' || c.is_control())
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}
