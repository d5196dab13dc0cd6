//! ReopenContainerLog: ask the container's monitor (ctl fifo, message 2) to reopen the log
//! file kubelet has just renamed away.

use super::CriServer;
use crate::container::record::{bundle, ContainerState};
use k8s_cri::v1 as cri;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_reopen_container_log(
        &self,
        r: cri::ReopenContainerLogRequest,
    ) -> Result<cri::ReopenContainerLogResponse, Status> {
        let id = self.resolve_container(&r.container_id, "ReopenContainerLog")?;
        let c = self.registry.container(&id).ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        if c.record.state != ContainerState::Running {
            return Err(Status::failed_precondition(format!("ReopenContainerLog: container {id} is not running")));
        }
        let ctl = bundle(&self.registry.root, &id).join("ctl");
        // Non-blocking: a monitor that is gone must not hang the RPC on the fifo.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&ctl)
            .map_err(|e| Status::failed_precondition(format!("ReopenContainerLog: the container's monitor is not reachable: {e}")))?;
        f.write_all(b"2 0 0\n").map_err(|e| Status::internal(format!("ReopenContainerLog: {e}")))?;
        // Synchronous, as kubelet expects: the call returns once the monitor has the file
        // open again (it recreates the path when it was renamed away).
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !c.record.log_path.exists() {
            if std::time::Instant::now() > end {
                return Err(Status::deadline_exceeded("ReopenContainerLog: the monitor did not reopen the log within 5s"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Ok(cri::ReopenContainerLogResponse {})
    }
}
