//! ContainerStats and ListContainerStats (filters: id or prefix, pod sandbox id or prefix,
//! labels). The reading is blocking file IO, so it runs off the async workers.

use super::CriServer;
use crate::container::record::{Container, ContainerState};
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    async fn stats_of(&self, containers: Vec<Container>) -> Result<Vec<cri::ContainerStats>, Status> {
        let stats = self.stats.clone();
        tokio::task::spawn_blocking(move || containers.iter().map(|c| stats.container(c)).collect())
            .await
            .map_err(|e| Status::internal(format!("stats task failed: {e}")))
    }

    pub(crate) async fn do_container_stats(&self, r: cri::ContainerStatsRequest) -> Result<cri::ContainerStatsResponse, Status> {
        let id = self.resolve_container(&r.container_id, "ContainerStats")?;
        let c = self.registry.container(&id).ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        let stats = self.stats_of(vec![c]).await?.pop();
        Ok(cri::ContainerStatsResponse { stats })
    }

    pub(crate) async fn do_list_container_stats(
        &self,
        r: cri::ListContainerStatsRequest,
    ) -> Result<cri::ListContainerStatsResponse, Status> {
        let f = r.filter.unwrap_or_default();
        let containers: Vec<Container> = self
            .registry
            .containers()
            .into_iter()
            .filter(|c| c.record.state != ContainerState::Creating)
            .filter(|c| f.id.is_empty() || c.record.id.starts_with(&f.id))
            .filter(|c| f.pod_sandbox_id.is_empty() || c.record.sandbox_id.starts_with(&f.pod_sandbox_id))
            .filter(|c| f.label_selector.iter().all(|(k, v)| c.config.labels.get(k) == Some(v)))
            .collect();
        Ok(cri::ListContainerStatsResponse { stats: self.stats_of(containers).await? })
    }
}
