//! A container as berth-cri keeps it: `<state_root>/containers/<id>/container.json` (state,
//! times, exit) and `config.pb` (the CRI config as sent). The running/exited truth comes
//! from the monitor: its exit file (`<state_root>/exits/<id>`) and `persist/oom`; the record
//! is brought up to date from them whenever it is read.

use k8s_cri::v1 as cri;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Being set up; cleaned up after a restart.
    Creating,
    Created,
    Running,
    Exited,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub name_key: String,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// The image as the request named it, and what it resolved to.
    pub image: String,
    pub image_id: String,
    pub image_ref: String,
    pub log_path: PathBuf,
    pub handler: String,
    /// The container's init (host pid) and its start time (clock ticks since boot), to tell
    /// it from a later process that reuses the pid.
    pub pid: i32,
    pub pid_start: u64,
    pub monitor_pid: i32,
    pub stop_signal: Option<String>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// A container made from a checkpoint archive: the CRIU images StartContainer restores
    /// from (the monitor then runs the runtime's `restore`, not `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub record: ContainerRecord,
    pub config: cri::ContainerConfig,
}

pub fn dir(state_root: &Path, id: &str) -> PathBuf {
    state_root.join("containers").join(id)
}
pub fn bundle(state_root: &Path, id: &str) -> PathBuf {
    dir(state_root, id).join("bundle")
}
pub fn persist_dir(state_root: &Path, id: &str) -> PathBuf {
    dir(state_root, id).join("persist")
}
pub fn exit_dir(state_root: &Path) -> PathBuf {
    state_root.join("exits")
}

/// Start time of `pid` (field 22 of /proc/<pid>/stat), if it runs.
pub fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn mtime_ns(p: &Path) -> Option<i64> {
    let m = std::fs::metadata(p).ok()?.modified().ok()?;
    Some(m.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as i64)
}

impl Container {
    pub fn save(&self, state_root: &Path) -> std::io::Result<()> {
        crate::persist::save_record(&dir(state_root, &self.record.id), "container.json", &self.record, &self.config)
    }

    pub fn load(d: &Path) -> std::io::Result<Container> {
        let (record, config) = crate::persist::load_record(d, "container.json")?;
        Ok(Container { record, config })
    }

    /// Take the monitor's word on an exit; true when the record changed (save it).
    pub fn refresh(&mut self, state_root: &Path) -> bool {
        let r = &mut self.record;
        if !matches!(r.state, ContainerState::Created | ContainerState::Running) {
            return false;
        }
        let exit = exit_dir(state_root).join(&r.id);
        if let Ok(s) = std::fs::read_to_string(&exit) {
            if let Ok(code) = s.trim().parse::<i32>() {
                r.state = ContainerState::Exited;
                r.exit_code = code;
                r.finished_at = mtime_ns(&exit).unwrap_or_else(crate::sandbox::now_ns);
                let oom = persist_dir(state_root, &r.id).join("oom").exists();
                r.reason = if oom {
                    "OOMKilled"
                } else if code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .into();
                return true;
            }
        }
        // No exit file: the container still runs, or its monitor died with it (kill -9 of
        // both). Then no exit code exists anywhere; say so instead of reporting it running.
        let init_alive = r.pid > 0 && start_time(r.pid) == Some(r.pid_start);
        let monitor_alive =
            r.monitor_pid > 0 && std::path::Path::new(&format!("/proc/{}", r.monitor_pid)).exists() && start_time(r.monitor_pid).is_some();
        if !init_alive && !monitor_alive && r.pid > 0 {
            r.state = ContainerState::Exited;
            r.exit_code = 255;
            r.finished_at = crate::sandbox::now_ns();
            r.reason = "Error".into();
            r.message = "the container's monitor ended without recording its exit".into();
            return true;
        }
        false
    }

    pub fn cri_state(&self) -> i32 {
        match self.record.state {
            ContainerState::Creating | ContainerState::Created => cri::ContainerState::ContainerCreated as i32,
            ContainerState::Running => cri::ContainerState::ContainerRunning as i32,
            ContainerState::Exited => cri::ContainerState::ContainerExited as i32,
        }
    }

    pub fn metadata(&self) -> cri::ContainerMetadata {
        self.config.metadata.clone().unwrap_or_default()
    }
}

/// `name_sandboxname_namespace_uid_attempt`: unique among live containers.
pub fn name_key(m: &cri::ContainerMetadata, pod: &cri::PodSandboxMetadata) -> String {
    format!("{}_{}_{}_{}_{}", m.name, pod.name, pod.namespace, pod.uid, m.attempt)
}
