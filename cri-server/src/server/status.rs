//! `Status`: honest RuntimeReady / NetworkReady conditions and, when verbose, the effective
//! configuration as JSON.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use k8s_cri::v1 as cri;
use tonic::Status;

use super::CriServer;

/// `path` is an executable regular file (what a spawn of it needs).
fn executable(what: &str, path: &std::path::Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(format!("{what} {} is not an executable file", path.display())),
        Err(e) => Err(format!("{what} {}: {e}", path.display())),
    }
}

impl CriServer {
    pub(crate) async fn do_status(&self, r: cri::StatusRequest) -> Result<cri::StatusResponse, Status> {
        let rt = &self.config.runtime;
        // Every binary a CreateContainer needs: the default handler's runtime, the monitor,
        // and the pod init for a pod-wide PID namespace. Ready only when all are there.
        let runtime_ready = match rt.handlers.get(&rt.default_handler) {
            None => Err(("RuntimeBinaryMissing", format!("default runtime handler {:?} is not configured", rt.default_handler))),
            Some(h) => executable("runtime binary", &h.path).map_err(|m| ("RuntimeBinaryMissing", m)),
        }
        .and_then(|()| executable("monitor binary", &rt.monitor_path).map_err(|m| ("MonitorBinaryMissing", m)))
        .and_then(|()| executable("pod init binary", &crate::sandbox::infra::pause_binary()).map_err(|m| ("PauseBinaryMissing", m)));
        let mut conditions = vec![match runtime_ready {
            Ok(()) => cri::RuntimeCondition { r#type: "RuntimeReady".into(), status: true, ..Default::default() },
            Err((reason, message)) => {
                cri::RuntimeCondition { r#type: "RuntimeReady".into(), status: false, reason: reason.into(), message }
            }
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
