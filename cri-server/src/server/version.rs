//! `Version`.

use k8s_cri::v1 as cri;
use tonic::Status;

use super::CriServer;

impl CriServer {
    pub(crate) async fn do_version(&self, _r: cri::VersionRequest) -> Result<cri::VersionResponse, Status> {
        Ok(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "berth".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        })
    }
}
