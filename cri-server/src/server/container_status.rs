//! ContainerStatus: state, exit code and reason (`Completed`, `Error`, `OOMKilled`), times,
//! image, mounts, log path, user; `verbose` adds berth's record.

use super::CriServer;
use crate::container::record::Container;
use k8s_cri::v1 as cri;
use tonic::Status;

pub(crate) fn status_of(c: &Container) -> cri::ContainerStatus {
    let r = &c.record;
    cri::ContainerStatus {
        id: r.id.clone(),
        metadata: Some(c.metadata()),
        state: c.cri_state(),
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        exit_code: r.exit_code,
        image: Some(cri::ImageSpec { image: r.image.clone(), ..Default::default() }),
        image_ref: r.image_ref.clone(),
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: c.config.labels.clone(),
        annotations: c.config.annotations.clone(),
        mounts: c.config.mounts.clone(),
        log_path: r.log_path.to_string_lossy().into_owned(),
        resources: c
            .config
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .map(|res| cri::ContainerResources { linux: Some(res), ..Default::default() }),
        image_id: r.image_id.clone(),
        user: Some(cri::ContainerUser {
            linux: Some(cri::LinuxContainerUser {
                uid: r.uid as i64,
                gid: r.gid as i64,
                supplemental_groups: r.groups.iter().map(|g| *g as i64).collect(),
            }),
        }),
    }
}

impl CriServer {
    pub(crate) async fn do_container_status(&self, r: cri::ContainerStatusRequest) -> Result<cri::ContainerStatusResponse, Status> {
        let id = self.resolve_container(&r.container_id, "ContainerStatus")?;
        let c = self.registry.container(&id).ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        let mut info = std::collections::HashMap::new();
        if r.verbose {
            info.insert("info".to_string(), serde_json::to_string(&c.record).unwrap_or_default());
        }
        Ok(cri::ContainerStatusResponse { status: Some(status_of(&c)), info })
    }
}
