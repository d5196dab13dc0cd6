//! PodSandboxStats and ListPodSandboxStats (filters: id or prefix, labels): the pod's sums,
//! its network namespace's counters and every container's stats.

use super::CriServer;
use crate::container::record::ContainerState;
use crate::sandbox::{Sandbox, SandboxState};
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    async fn pod_stats_of(&self, pods: Vec<Sandbox>) -> Result<Vec<cri::PodSandboxStats>, Status> {
        let all = self.registry.containers();
        let stats = self.stats.clone();
        tokio::task::spawn_blocking(move || {
            pods.iter()
                .map(|sb| {
                    let mine: Vec<_> = all
                        .iter()
                        .filter(|c| c.record.sandbox_id == sb.record.id && c.record.state != ContainerState::Creating)
                        .cloned()
                        .collect();
                    stats.sandbox(sb, &mine)
                })
                .collect()
        })
        .await
        .map_err(|e| Status::internal(format!("stats task failed: {e}")))
    }

    pub(crate) async fn do_pod_sandbox_stats(&self, r: cri::PodSandboxStatsRequest) -> Result<cri::PodSandboxStatsResponse, Status> {
        let id = self
            .lookup(crate::registry::Kind::Sandbox, &r.pod_sandbox_id, "PodSandboxStats")?
            .ok_or_else(|| Status::not_found(format!("pod sandbox {:?} not found", r.pod_sandbox_id)))?;
        let sb = self.registry.sandbox(&id).ok_or_else(|| Status::not_found(format!("pod sandbox {id} not found")))?;
        Ok(cri::PodSandboxStatsResponse { stats: self.pod_stats_of(vec![sb]).await?.pop() })
    }

    pub(crate) async fn do_list_pod_sandbox_stats(
        &self,
        r: cri::ListPodSandboxStatsRequest,
    ) -> Result<cri::ListPodSandboxStatsResponse, Status> {
        let f = r.filter.unwrap_or_default();
        let pods: Vec<Sandbox> = self
            .registry
            .sandboxes()
            .into_iter()
            .filter(|s| s.record.state != SandboxState::Creating)
            .filter(|s| f.id.is_empty() || s.record.id.starts_with(&f.id))
            .filter(|s| f.label_selector.iter().all(|(k, v)| s.config.labels.get(k) == Some(v)))
            .collect();
        Ok(cri::ListPodSandboxStatsResponse { stats: self.pod_stats_of(pods).await? })
    }
}
