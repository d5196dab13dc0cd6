//! `Status`: honest RuntimeReady / NetworkReady conditions and, when verbose, the effective
//! configuration as JSON.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use k8s_cri::v1 as cri;
use tonic::Status;

use super::CriServer;

impl CriServer {
    pub(crate) async fn do_status(&self, r: cri::StatusRequest) -> Result<cri::StatusResponse, Status> {
        let rt = &self.config.runtime;
        let runtime_ready = match rt.handlers.get(&rt.default_handler) {
            None => Err(format!("default runtime handler {:?} is not configured", rt.default_handler)),
            Some(h) => match std::fs::metadata(&h.path) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
                Ok(_) => Err(format!("runtime binary {} is not an executable file", h.path.display())),
                Err(e) => Err(format!("runtime binary {}: {e}", h.path.display())),
            },
        };
        let mut conditions = vec![cri::RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: runtime_ready.is_ok(),
            reason: if runtime_ready.is_ok() { String::new() } else { "RuntimeBinaryMissing".into() },
            message: runtime_ready.err().unwrap_or_default(),
        }];
        let net = self.cni.ready().await;
        conditions.push(cri::RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: net.is_ok(),
            reason: if net.is_ok() { String::new() } else { "NetworkPluginNotReady".into() },
            message: net.err().unwrap_or_default(),
        });
        let mut info = HashMap::new();
        if r.verbose {
            info.insert("config".to_string(), serde_json::to_string(&*self.config).unwrap_or_default());
            if let Some(c) = self.pod_cidr() {
                info.insert("podCIDR".to_string(), c);
            }
        }
        // The default handler is listed first under the empty name too: that is how kubelet
        // (and critest) name it when a pod has no RuntimeClass.
        let mut runtime_handlers =
            vec![cri::RuntimeHandler { name: String::new(), features: Some(self.handler_features(&rt.default_handler).await) }];
        for name in rt.handlers.keys() {
            let features = self.handler_features(name).await;
            runtime_handlers.push(cri::RuntimeHandler { name: name.clone(), features: Some(features) });
        }
        Ok(cri::StatusResponse {
            status: Some(cri::RuntimeStatus { conditions }),
            info,
            runtime_handlers,
            // SupplementalGroupsPolicy Strict/Merge is applied in the spec (container/spec/user.rs)
            // and ContainerStatus.user reports the resulting identity.
            features: Some(cri::RuntimeFeatures { supplemental_groups_policy: true }),
        })
    }

    /// What kubelet may ask of a handler: only what its runtime's `features` says it has.
    async fn handler_features(&self, name: &str) -> cri::RuntimeHandlerFeatures {
        let Ok(rt) = self.runtime_for(name) else { return Default::default() };
        let f = self.features.of(&rt).await;
        cri::RuntimeHandlerFeatures {
            recursive_read_only_mounts: f.recursive_read_only,
            user_namespaces: f.user_namespaces && self.userns_paths_searchable(),
        }
    }
}
