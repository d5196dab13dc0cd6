//! RemoveContainer: stop it if it runs, delete it in the runtime, unmount its rootfs, drop its
//! record. Idempotent, also for an unknown id.

use super::CriServer;
use crate::registry::Kind;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_remove_container(&self, r: cri::RemoveContainerRequest) -> Result<cri::RemoveContainerResponse, Status> {
        let Some(id) = self.lookup(Kind::Container, &r.container_id, "RemoveContainer")? else {
            return Ok(cri::RemoveContainerResponse {});
        };
        self.remove_container(&id).await?;
        Ok(cri::RemoveContainerResponse {})
    }

    pub(crate) async fn remove_container(&self, id: &str) -> Result<(), Status> {
        self.stop_container(id, 0).await?;
        let lock = self.registry.lock(id);
        let _g = lock.lock().await;
        let Some(c) = self.registry.container(id) else { return Ok(()) };
        let started = c.record.started_at > 0;
        self.destroy_container(&c.record.id, &c.record.handler).await?;
        // A stop the exit watcher has not reported yet comes before the delete.
        if started {
            self.emit_stopped(id, &c.record.sandbox_id);
        }
        self.emit(id, &c.record.sandbox_id, k8s_cri::v1::ContainerEventType::ContainerDeletedEvent);
        Ok(())
    }

    /// Everything of a container but its lock: runtime state, rootfs, record.
    pub(crate) async fn destroy_container(&self, id: &str, handler: &str) -> Result<(), Status> {
        if let Ok(rt) = self.runtime_for(handler) {
            rt.delete_force(id).await.map_err(|e| Status::internal(format!("RemoveContainer: {e}")))?;
        }
        let store = self.store.clone();
        let cid = id.to_string();
        super::blocking(move || store.remove_rootfs(&cid)).await?;
        self.registry.remove_container(id).map_err(|e| Status::internal(format!("RemoveContainer: {e}")))?;
        self.stats.forget(id);
        tracing::info!(id, "container removed");
        Ok(())
    }
}
