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
            info.insert(
                "config".to_string(),
                serde_json::to_string(&*self.config).unwrap_or_default(),
            );
        }
        let runtime_handlers = rt
            .handlers
            .keys()
            .map(|name| cri::RuntimeHandler {
                name: name.clone(),
                ..Default::default()
            })
            .collect();
        Ok(cri::StatusResponse {
            status: Some(cri::RuntimeStatus { conditions }),
            info,
            runtime_handlers,
            features: None,
        })
    }
}
