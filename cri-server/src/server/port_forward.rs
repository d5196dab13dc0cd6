//! PortForward: a URL on the streaming server for connections to ports on a pod's loopback.

use super::CriServer;
use crate::registry::Kind;
use crate::sandbox::SandboxState;
use crate::streaming::token::Pending;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_port_forward(&self, mut r: cri::PortForwardRequest) -> Result<cri::PortForwardResponse, Status> {
        let id = self
            .lookup(Kind::Sandbox, &r.pod_sandbox_id, "PortForward")?
            .ok_or_else(|| Status::not_found(format!("pod sandbox {:?} not found", r.pod_sandbox_id)))?;
        let s = self.registry.sandbox(&id).ok_or_else(|| Status::not_found(format!("pod sandbox {id} not found")))?;
        if s.record.state != SandboxState::Ready {
            return Err(Status::failed_precondition(format!("PortForward: pod sandbox {id} is not ready")));
        }
        if let Some(p) = r.port.iter().find(|p| !(1..=65535).contains(*p)) {
            return Err(Status::invalid_argument(format!("PortForward: invalid port {p}")));
        }
        r.pod_sandbox_id = id;
        let url = self.streaming.url(Pending::PortForward(r))?;
        Ok(cri::PortForwardResponse { url })
    }
}
