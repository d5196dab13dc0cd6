//! ListContainers with its filters: id (or prefix), state, pod sandbox id (or prefix), labels.

use super::CriServer;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_list_containers(&self, r: cri::ListContainersRequest) -> Result<cri::ListContainersResponse, Status> {
        let f = r.filter.unwrap_or_default();
        let mut containers: Vec<cri::Container> = self
            .registry
            .containers()
            .into_iter()
            .filter(|c| c.record.state != crate::container::record::ContainerState::Creating)
            .filter(|c| f.id.is_empty() || c.record.id.starts_with(&f.id))
            .filter(|c| f.pod_sandbox_id.is_empty() || c.record.sandbox_id.starts_with(&f.pod_sandbox_id))
            .filter(|c| f.state.as_ref().is_none_or(|s| s.state == c.cri_state()))
            .filter(|c| f.label_selector.iter().all(|(k, v)| c.config.labels.get(k) == Some(v)))
            .map(|c| cri::Container {
                id: c.record.id.clone(),
                pod_sandbox_id: c.record.sandbox_id.clone(),
                metadata: Some(c.metadata()),
                image: Some(cri::ImageSpec { image: c.record.image.clone(), ..Default::default() }),
                image_ref: c.record.image_ref.clone(),
                state: c.cri_state(),
                created_at: c.record.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
                image_id: c.record.image_id.clone(),
            })
            .collect();
        containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        Ok(cri::ListContainersResponse { containers })
    }
}
