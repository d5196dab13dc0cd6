//! Attach: a URL on the streaming server for the stdio of a running container (through its
//! monitor's attach socket).

use super::CriServer;
use crate::streaming::token::Pending;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_attach(&self, mut r: cri::AttachRequest) -> Result<cri::AttachResponse, Status> {
        r.container_id = self.running_container(&r.container_id, "Attach")?;
        super::exec::check_streams("Attach", r.tty, r.stdin, r.stdout, r.stderr)?;
        let url = self.streaming.url(Pending::Attach(r))?;
        Ok(cri::AttachResponse { url })
    }
}
