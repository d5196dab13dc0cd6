//! UpdateRuntimeConfig: the pod CIDR kubelet learned from the node object. Recorded (Status
//! `verbose` shows it) and, with `network.cni_conf_template`, rendered into a CNI config
//! while the node has none of its own (`network::template`).

use super::CriServer;
use crate::network::template;
use k8s_cri::v1 as cri;
use tonic::Status;

/// Where the last pod CIDR is kept (one line, as kubelet sent it, validated).
pub(crate) const POD_CIDR_FILE: &str = "pod-cidr";

impl CriServer {
    pub(crate) async fn do_update_runtime_config(
        &self,
        r: cri::UpdateRuntimeConfigRequest,
    ) -> Result<cri::UpdateRuntimeConfigResponse, Status> {
        let raw = r.runtime_config.and_then(|c| c.network_config).map(|n| n.pod_cidr).unwrap_or_default();
        let cidrs = template::parse_cidrs(&raw).map_err(|e| Status::invalid_argument(format!("UpdateRuntimeConfig: {e}")))?;
        // kubelet sends an empty config on some paths: nothing to change.
        if cidrs.is_empty() {
            return Ok(cri::UpdateRuntimeConfigResponse {});
        }
        let line = cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
        let file = self.registry.root.join(POD_CIDR_FILE);
        let net = self.config.network.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            crate::persist::write_atomic(&file, line.as_bytes()).map_err(|e| format!("record pod CIDR: {e}"))?;
            match &net.cni_conf_template {
                Some(t) => template::apply(&net.cni_conf_dir, t, &cidrs).map_err(|e| e.to_string()),
                None => Ok(false),
            }
        })
        .await
        .map_err(|e| Status::internal(format!("UpdateRuntimeConfig: task failed: {e}")))?
        .map_err(|e| Status::failed_precondition(format!("UpdateRuntimeConfig: {e}")))?;
        tracing::info!(pod_cidr = %raw, cni_config_rendered = rendered, "runtime config updated");
        Ok(cri::UpdateRuntimeConfigResponse {})
    }

    /// The recorded pod CIDR, for Status `verbose`.
    pub(crate) fn pod_cidr(&self) -> Option<String> {
        std::fs::read_to_string(self.registry.root.join(POD_CIDR_FILE)).ok()
    }
}
