//! UpdateContainerResources: the new limits through the runtime's `update --resources -`
//! (the cgroup files change live), and the container's config updated to match.

use super::CriServer;
use crate::container::record::ContainerState;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_update_container_resources(
        &self,
        r: cri::UpdateContainerResourcesRequest,
    ) -> Result<cri::UpdateContainerResourcesResponse, Status> {
        let id = self.resolve_container(&r.container_id, "UpdateContainerResources")?;
        let lock = self.registry.lock(&id);
        let _g = lock.lock().await;
        let mut c = self.registry.container(&id).ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        if !matches!(c.record.state, ContainerState::Created | ContainerState::Running) {
            return Err(Status::failed_precondition(format!("UpdateContainerResources: container {id} is not running")));
        }
        let Some(res) = r.linux else { return Ok(cri::UpdateContainerResourcesResponse {}) };
        let mut res_in = res.clone();
        res_in.oom_score_adj = res_in.oom_score_adj.max(self.oom_score_adj_min() as i64);
        let oci = crate::container::spec::resources::try_resources(&res_in)
            .map_err(|e| Status::new(e.code(), format!("UpdateContainerResources: {e}")))?;
        let json = serde_json::to_vec(&oci).map_err(|e| Status::internal(e.to_string()))?;
        self.runtime_for(&c.record.handler)?
            .update(&id, json)
            .await
            .map_err(|e| Status::internal(format!("UpdateContainerResources: {e}")))?;
        if let Some(l) = c.config.linux.as_mut() {
            l.resources = Some(res);
        }
        self.registry.put_container(c).map_err(|e| Status::internal(format!("UpdateContainerResources: persist: {e}")))?;
        Ok(cri::UpdateContainerResourcesResponse {})
    }

    /// The lowest oom_score_adj a container can get: the daemon's own (no process here can
    /// lower it without CAP_SYS_RESOURCE; containerd's `restrict_oom_score_adj`).
    pub(crate) fn oom_score_adj_min(&self) -> i32 {
        std::fs::read_to_string("/proc/self/oom_score_adj").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }
}
