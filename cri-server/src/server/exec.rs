//! Exec: a URL on the streaming server for an interactive command in a running container.

use super::CriServer;
use crate::container::record::ContainerState;
use crate::streaming::token::Pending;
use k8s_cri::v1 as cri;
use tonic::Status;

/// kubelet's rules for the stream flags of Exec and Attach.
pub(crate) fn check_streams(rpc: &str, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<(), Status> {
    if tty && stderr {
        return Err(Status::invalid_argument(format!("{rpc}: tty and stderr cannot both be true")));
    }
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid_argument(format!("{rpc}: one of stdin, stdout, or stderr must be set")));
    }
    Ok(())
}

impl CriServer {
    /// The full id of a running container.
    pub(crate) fn running_container(&self, id: &str, rpc: &str) -> Result<String, Status> {
        let id = self.resolve_container(id, rpc)?;
        let c = self.registry.container(&id).ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        if c.record.state != ContainerState::Running {
            return Err(Status::failed_precondition(format!("{rpc}: container {id} is not running")));
        }
        Ok(id)
    }

    pub(crate) async fn do_exec(&self, mut r: cri::ExecRequest) -> Result<cri::ExecResponse, Status> {
        r.container_id = self.running_container(&r.container_id, "Exec")?;
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument("Exec: cmd is required"));
        }
        check_streams("Exec", r.tty, r.stdin, r.stdout, r.stderr)?;
        let url = self.streaming.url(Pending::Exec(r))?;
        Ok(cri::ExecResponse { url })
    }
}
