//! ExecSync: a command in a running container through a berth-mon exec session, killed at the
//! timeout (its process group), its output capped at kubelet's 16 MiB per stream.

use super::CriServer;
use crate::container::record::{bundle, ContainerState};
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_exec_sync(&self, r: cri::ExecSyncRequest) -> Result<cri::ExecSyncResponse, Status> {
        let id = self.resolve_container(&r.container_id, "ExecSync")?;
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument("ExecSync: cmd is required"));
        }
        if r.timeout < 0 {
            return Err(Status::invalid_argument("ExecSync: timeout must not be negative"));
        }
        let c = self.registry.container(&id).ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        if c.record.state != ContainerState::Running {
            return Err(Status::failed_precondition(format!("ExecSync: container {id} is not running")));
        }
        let rt = self.runtime_for(&c.record.handler)?;
        // The container's own process settings (user, env, cwd, capabilities…) with the
        // command in place of its args.
        let spec: serde_json::Value = std::fs::read(bundle(&self.registry.root, &id).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Status::internal(format!("ExecSync: container {id} has no readable bundle")))?;
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(r.cmd);
        process["terminal"] = serde_json::json!(false);
        let work = crate::container::record::dir(&self.registry.root, &id).join("exec").join(crate::persist::new_id());
        let monitor = self.config.runtime.monitor_path.clone();
        let timeout = r.timeout;
        let w = work.clone();
        let res = tokio::task::spawn_blocking(move || {
            crate::container::monitor::exec_sync(&monitor, &rt.path, &rt.root, &id, &w, process.to_string().as_bytes(), timeout)
        })
        .await
        .map_err(|e| Status::internal(format!("ExecSync: {e}")));
        let _ = std::fs::remove_dir_all(&work);
        let out = res?.map_err(|e| Status::internal(format!("ExecSync: {e}")))?;
        if out.timed_out {
            return Err(Status::deadline_exceeded(format!("ExecSync: command {:?} timed out after {timeout}s", r.cmd)));
        }
        Ok(cri::ExecSyncResponse { stdout: out.stdout, stderr: out.stderr, exit_code: out.exit_code })
    }
}
