//! RemovePodSandbox: stop it if needed, remove its containers, unpin its namespaces, unmount
//! /dev/shm and delete its record. Idempotent, also for an unknown id.

use super::CriServer;
use crate::registry::Kind;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_remove_pod_sandbox(&self, r: cri::RemovePodSandboxRequest) -> Result<cri::RemovePodSandboxResponse, Status> {
        let Some(id) = self.lookup(Kind::Sandbox, &r.pod_sandbox_id, "RemovePodSandbox")? else {
            return Ok(cri::RemovePodSandboxResponse {});
        };
        self.stop_sandbox(&id).await?;
        for c in self.registry.containers().into_iter().filter(|c| c.record.sandbox_id == id) {
            self.remove_container(&c.record.id).await?;
        }
        let lock = self.registry.lock(&id);
        let _g = lock.lock().await;
        if let Some(sb) = self.registry.sandbox(&id) {
            self.teardown_sandbox(&sb).await;
            self.registry.remove_sandbox(&id).map_err(|e| Status::internal(format!("RemovePodSandbox: {e}")))?;
            self.stats.forget(&id);
            self.emit_stopped(&id, &id);
            self.emit(&id, &id, cri::ContainerEventType::ContainerDeletedEvent);
            tracing::info!(id = %id, "pod sandbox removed");
        }
        Ok(cri::RemovePodSandboxResponse {})
    }
}
