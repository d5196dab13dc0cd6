//! StopPodSandbox: stop every container of the pod, tear its network down, mark it NotReady.
//! Idempotent, also for an unknown id (kubelet retries).

use super::CriServer;
use crate::registry::Kind;
use crate::sandbox::SandboxState;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_stop_pod_sandbox(&self, r: cri::StopPodSandboxRequest) -> Result<cri::StopPodSandboxResponse, Status> {
        let Some(id) = self.lookup(Kind::Sandbox, &r.pod_sandbox_id, "StopPodSandbox")? else {
            return Ok(cri::StopPodSandboxResponse {});
        };
        self.stop_sandbox(&id).await?;
        Ok(cri::StopPodSandboxResponse {})
    }

    pub(crate) async fn stop_sandbox(&self, id: &str) -> Result<(), Status> {
        for c in self.registry.containers().into_iter().filter(|c| c.record.sandbox_id == id) {
            self.stop_container(&c.record.id, 0).await?;
        }
        let lock = self.registry.lock(id);
        let _g = lock.lock().await;
        let Some(mut sb) = self.registry.sandbox(id) else { return Ok(()) };
        if sb.record.network_attached {
            if let Some(pn) = super::sandbox_run::pod_network(&sb) {
                self.cni.del(&pn).await.map_err(|e| Status::internal(format!("StopPodSandbox: network teardown: {e}")))?;
            }
            sb.record.network_attached = false;
        }
        if sb.record.state != SandboxState::NotReady {
            sb.record.state = SandboxState::NotReady;
        }
        self.registry.put_sandbox(sb).map_err(|e| Status::internal(format!("StopPodSandbox: persist: {e}")))?;
        self.emit_stopped(id, id);
        Ok(())
    }
}
