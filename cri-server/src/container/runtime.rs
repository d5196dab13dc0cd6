//! The OCI runtime of a handler, called as a CLI (`<path> --root <root> VERB …`), with a
//! timeout and its stderr (runc's error line) in the error.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime {path}: {verb}: {message}")]
    Failed { path: String, verb: String, message: String },
    #[error("runtime {path}: {verb}: timed out after {secs}s")]
    Timeout { path: String, verb: String, secs: u64 },
    #[error("runtime {path}: {0}", path = .1)]
    Spawn(std::io::Error, String),
}

#[derive(Debug, Clone)]
pub struct Runtime {
    pub path: PathBuf,
    pub root: PathBuf,
    /// `--systemd-cgroup` (runc's global flag) on every call: the node's cgroup manager is
    /// systemd.
    pub systemd_cgroup: bool,
}

impl Runtime {
    pub fn new(path: &Path, root: PathBuf, systemd_cgroup: bool) -> Runtime {
        Runtime { path: path.to_path_buf(), root, systemd_cgroup }
    }

    /// The global flags before every verb.
    pub fn global_args(&self) -> Vec<std::ffi::OsString> {
        let mut a = vec!["--root".into(), self.root.clone().into_os_string()];
        if self.systemd_cgroup {
            a.push("--systemd-cgroup".into());
        }
        a
    }

    pub async fn run(&self, args: &[&str], stdin: Option<Vec<u8>>, timeout: Duration) -> Result<String, RuntimeError> {
        let mut c = Command::new(&self.path);
        c.args(self.global_args()).args(args).kill_on_drop(true);
        c.stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() });
        c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let verb = args.first().copied().unwrap_or("").to_string();
        let path = self.path.display().to_string();
        let mut child = c.spawn().map_err(|e| RuntimeError::Spawn(e, path.clone()))?;
        if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            let _ = w.write_all(&data).await;
        }
        let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| RuntimeError::Spawn(e, path.clone()))?,
            Err(_) => return Err(RuntimeError::Timeout { path, verb, secs: timeout.as_secs() }),
        };
        if !out.status.success() {
            let e = String::from_utf8_lossy(&out.stderr);
            let msg = e.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed").trim().to_string();
            return Err(RuntimeError::Failed { path, verb, message: msg });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&["start", id], None, Duration::from_secs(60)).await.map(|_| ())
    }
    pub async fn kill(&self, id: &str, signal: &str, all: bool) -> Result<(), RuntimeError> {
        let mut a = vec!["kill"];
        if all {
            a.push("--all");
        }
        // After `--`: neither the id nor the signal can read as a flag.
        a.extend(["--", id, signal]);
        self.run(&a, None, Duration::from_secs(30)).await.map(|_| ())
    }
    pub async fn delete_force(&self, id: &str) -> Result<(), RuntimeError> {
        match self.run(&["delete", "--force", id], None, Duration::from_secs(60)).await {
            // Already gone is what we wanted.
            Err(RuntimeError::Failed { message, .. }) if message.contains("does not exist") || message.contains("not exist") => Ok(()),
            r => r.map(|_| ()),
        }
    }
    /// `checkpoint --leave-running` into `images` (CRIU's log in `work`).
    pub async fn checkpoint(&self, id: &str, images: &Path, work: &Path, timeout: Duration) -> Result<(), RuntimeError> {
        let (i, w) = (images.to_string_lossy(), work.to_string_lossy());
        self.run(&["checkpoint", "--leave-running", "--image-path", &i, "--work-path", &w, id], None, timeout).await.map(|_| ())
    }
    pub async fn update(&self, id: &str, resources_json: Vec<u8>) -> Result<(), RuntimeError> {
        self.run(&["update", "--resources", "-", id], Some(resources_json), Duration::from_secs(30)).await.map(|_| ())
    }
}
