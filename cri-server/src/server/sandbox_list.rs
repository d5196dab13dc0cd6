//! ListPodSandbox with its filters: id (or a unique prefix), state, labels.

use super::CriServer;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_list_pod_sandbox(&self, r: cri::ListPodSandboxRequest) -> Result<cri::ListPodSandboxResponse, Status> {
        let f = r.filter.unwrap_or_default();
        let mut items: Vec<cri::PodSandbox> = self
            .registry
            .sandboxes()
            .into_iter()
            .filter(|s| s.record.state != crate::sandbox::SandboxState::Creating)
            .filter(|s| f.id.is_empty() || s.record.id.starts_with(&f.id))
            .filter(|s| f.state.as_ref().is_none_or(|st| st.state == s.cri_state()))
            .filter(|s| f.label_selector.iter().all(|(k, v)| s.config.labels.get(k) == Some(v)))
            .map(|s| cri::PodSandbox {
                id: s.record.id.clone(),
                metadata: Some(s.metadata()),
                state: s.cri_state(),
                created_at: s.record.created_at,
                labels: s.config.labels.clone(),
                annotations: s.config.annotations.clone(),
                runtime_handler: s.record.handler.clone(),
            })
            .collect();
        items.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(cri::ListPodSandboxResponse { items })
    }
}
