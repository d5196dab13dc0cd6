//! ListPodSandboxMetrics: for every ready pod, its network series and each running
//! container's, from the same reads as the stats RPCs (`Stats::reading`,
//! `Stats::pod_network`). The reads are blocking file IO (and a namespace-joining thread),
//! so they run off the async workers.

use super::CriServer;
use crate::container::record::ContainerState;
use crate::metrics::pod::{self, Base, POD_CONTAINER};
use crate::sandbox::{Sandbox, SandboxState};
use crate::stats::Stats;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_list_pod_sandbox_metrics(
        &self,
        _r: cri::ListPodSandboxMetricsRequest,
    ) -> Result<cri::ListPodSandboxMetricsResponse, Status> {
        let pods: Vec<Sandbox> = self.registry.sandboxes().into_iter().filter(|s| s.record.state == SandboxState::Ready).collect();
        let containers = self.registry.containers();
        let stats = self.stats.clone();
        let pod_metrics = tokio::task::spawn_blocking(move || {
            pods.iter()
                .map(|sb| {
                    let md = sb.metadata();
                    let base = Base {
                        id: sb.record.id.clone(),
                        image: String::new(),
                        namespace: md.namespace.clone(),
                        pod: md.name.clone(),
                        container: POD_CONTAINER.into(),
                    };
                    let metrics = Stats::pod_network(sb).map(|ifs| pod::network(&base, crate::sandbox::now_ns(), &ifs)).unwrap_or_default();
                    let container_metrics = containers
                        .iter()
                        .filter(|c| c.record.sandbox_id == sb.record.id && c.record.state == ContainerState::Running)
                        .map(|c| {
                            let b = Base {
                                id: c.record.id.clone(),
                                image: c.record.image.clone(),
                                container: c.metadata().name,
                                ..base.clone()
                            };
                            cri::ContainerMetrics {
                                container_id: c.record.id.clone(),
                                metrics: pod::container(&b, c.record.started_at, &stats.reading(c)),
                            }
                        })
                        .collect();
                    cri::PodSandboxMetrics { pod_sandbox_id: sb.record.id.clone(), metrics, container_metrics }
                })
                .collect()
        })
        .await
        .map_err(|e| Status::internal(format!("metrics task failed: {e}")))?;
        Ok(cri::ListPodSandboxMetricsResponse { pod_metrics })
    }
}
