//! StopContainer: the stop signal (the image's StopSignal, else SIGTERM), up to `timeout`
//! seconds for the container to end, then SIGKILL to everything in it. Idempotent.

use super::CriServer;
use crate::container::record::{exit_dir, ContainerState};
use crate::registry::Kind;
use k8s_cri::v1 as cri;
use std::time::{Duration, Instant};
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_stop_container(&self, r: cri::StopContainerRequest) -> Result<cri::StopContainerResponse, Status> {
        // Idempotent: an unknown container is already stopped (kubelet retries).
        let Some(id) = self.lookup(Kind::Container, &r.container_id, "StopContainer")? else {
            return Ok(cri::StopContainerResponse {});
        };
        self.stop_container(&id, r.timeout).await?;
        Ok(cri::StopContainerResponse {})
    }

    /// Wait until the monitor wrote the container's exit file (or `limit` passes).
    async fn wait_exit(&self, id: &str, limit: Duration) -> bool {
        let f = exit_dir(&self.registry.root).join(id);
        let end = Instant::now() + limit;
        loop {
            if f.exists() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            // The monitor writes the file within milliseconds of the exit; no event on our
            // side tells when (inotify on the exit dir would, at the cost of a watcher).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), Status> {
        let lock = self.registry.lock(id);
        let _g = lock.lock().await;
        let Some(c) = self.registry.container(id) else { return Ok(()) };
        if !matches!(c.record.state, ContainerState::Running | ContainerState::Created) {
            return Ok(());
        }
        let rt = self.runtime_for(&c.record.handler)?;
        if timeout > 0 && c.record.state == ContainerState::Running {
            let sig = c.record.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into());
            if rt.kill(id, &sig, false).await.is_ok() && self.wait_exit(id, Duration::from_secs(timeout as u64)).await {
                self.registry.container(id);
                return Ok(());
            }
        }
        if let Err(e) = rt.kill(id, "SIGKILL", true).await {
            tracing::debug!(id, error = %e, "kill --all");
        }
        if !self.wait_exit(id, Duration::from_secs(30)).await {
            // A created container's init waits on the exec fifo: delete ends it.
            let _ = rt.delete_force(id).await;
            if !self.wait_exit(id, Duration::from_secs(10)).await {
                return Err(Status::deadline_exceeded(format!("StopContainer: container {id} did not exit after SIGKILL")));
            }
        }
        self.registry.container(id);
        Ok(())
    }
}
