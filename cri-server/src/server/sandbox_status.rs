//! PodSandboxStatus: state, IPs, namespaces, timestamps; `verbose` adds berth's record.

use super::CriServer;
use crate::registry::Kind;
use crate::sandbox::Sandbox;
use k8s_cri::v1 as cri;
use tonic::Status;

pub(crate) fn status_of(s: &Sandbox) -> cri::PodSandboxStatus {
    let mut ips = s.record.ips.iter();
    let network = Some(cri::PodSandboxNetworkStatus {
        ip: ips.next().cloned().unwrap_or_default(),
        additional_ips: ips.map(|i| cri::PodIp { ip: i.clone() }).collect(),
    });
    cri::PodSandboxStatus {
        id: s.record.id.clone(),
        metadata: Some(s.metadata()),
        state: s.cri_state(),
        created_at: s.record.created_at,
        network,
        linux: Some(cri::LinuxPodSandboxStatus { namespaces: Some(cri::Namespace { options: Some(s.namespace_options()) }) }),
        labels: s.config.labels.clone(),
        annotations: s.config.annotations.clone(),
        runtime_handler: s.record.handler.clone(),
    }
}

impl CriServer {
    pub(crate) async fn do_pod_sandbox_status(&self, r: cri::PodSandboxStatusRequest) -> Result<cri::PodSandboxStatusResponse, Status> {
        let s = self
            .lookup(Kind::Sandbox, &r.pod_sandbox_id, "PodSandboxStatus")?
            .and_then(|id| self.registry.sandbox(&id))
            .ok_or_else(|| Status::not_found(format!("pod sandbox {:?} not found", r.pod_sandbox_id)))?;
        let mut info = std::collections::HashMap::new();
        if r.verbose {
            info.insert("info".to_string(), serde_json::to_string(&s.record).unwrap_or_default());
        }
        let containers = self
            .registry
            .containers()
            .into_iter()
            .filter(|c| c.record.sandbox_id == s.record.id)
            .map(|c| super::container_status::status_of(&c))
            .collect();
        Ok(cri::PodSandboxStatusResponse {
            status: Some(status_of(&s)),
            info,
            containers_statuses: containers,
            timestamp: crate::sandbox::now_ns(),
        })
    }
}
