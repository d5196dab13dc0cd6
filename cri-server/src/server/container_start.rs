//! StartContainer: the runtime's `start` (the monitor is already there since CreateContainer),
//! or, for a container made from a checkpoint archive, its monitor running the runtime's `restore`.

use super::CriServer;
use crate::container::record::ContainerState;
use crate::registry::Kind;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_start_container(&self, r: cri::StartContainerRequest) -> Result<cri::StartContainerResponse, Status> {
        let id = self.resolve_container(&r.container_id, "StartContainer")?;
        let lock = self.registry.lock(&id);
        let _g = lock.lock().await;
        let mut c = self.registry.container(&id).ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        if c.record.state != ContainerState::Created {
            return Err(Status::failed_precondition(format!(
                "StartContainer: container {id} is not in the created state ({:?})",
                c.record.state
            )));
        }
        let rt = self.runtime_for(&c.record.handler)?;
        // Taken before: a short-lived container may be done (exit file written) before the
        // runtime's `start` returns, and must not finish before it started.
        let started = crate::sandbox::now_ns();
        match c.record.restore_from.clone() {
            // Made from a checkpoint archive: restored now (container_restore.rs).
            Some(images) => self.start_restored(&mut c, images).await?,
            None => rt.start(&id).await.map_err(|e| Status::internal(format!("StartContainer: {e}")))?,
        }
        c.record.state = ContainerState::Running;
        c.record.started_at = started;
        let sandbox_id = c.record.sandbox_id.clone();
        self.registry.put_container(c).map_err(|e| Status::internal(format!("StartContainer: persist: {e}")))?;
        self.emit(&id, &sandbox_id, cri::ContainerEventType::ContainerStartedEvent);
        Ok(cri::StartContainerResponse {})
    }

    pub(crate) fn resolve_container(&self, id: &str, rpc: &str) -> Result<String, Status> {
        self.lookup(Kind::Container, id, rpc)?.ok_or_else(|| Status::not_found(format!("container {id:?} not found")))
    }

    /// The full id a request names (an id or a unique prefix): an empty one is
    /// InvalidArgument, an unknown one None (what the idempotent RPCs answer with success).
    pub(crate) fn lookup(&self, kind: Kind, id: &str, rpc: &str) -> Result<Option<String>, Status> {
        if id.is_empty() {
            let field = match kind {
                Kind::Container => "container_id",
                Kind::Sandbox => "pod_sandbox_id",
            };
            return Err(Status::invalid_argument(format!("{rpc}: {field} is required")));
        }
        Ok(self.registry.resolve(kind, id))
    }
}
