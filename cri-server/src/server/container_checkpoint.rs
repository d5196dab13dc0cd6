//! CheckpointContainer: the runtime's `checkpoint --leave-running` (CRIU) into a scratch
//! directory, then the archive at the request's `location` in CRI-O's layout
//! (`container/checkpoint.rs`). The container keeps running (kubelet's checkpoint API
//! expects that). `timeout` bounds the runtime's checkpoint (0: 300 s). On any failure
//! (e.g. a kernel CRIU refuses) the error carries the runtime's message (criu's complaint),
//! the scratch directory is removed and no archive, not even a partial one, is left.

use super::CriServer;
use crate::container::checkpoint::{self as archive, ConfigDump};
use crate::container::record::{self, ContainerState};
use crate::container::runtime::RuntimeError;
use k8s_cri::v1 as cri;
use std::path::PathBuf;
use std::time::Duration;
use tonic::Status;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl CriServer {
    pub(crate) async fn do_checkpoint_container(
        &self,
        r: cri::CheckpointContainerRequest,
    ) -> Result<cri::CheckpointContainerResponse, Status> {
        let id = self.resolve_container(&r.container_id, "CheckpointContainer")?;
        if r.location.is_empty() {
            return Err(Status::invalid_argument("CheckpointContainer: location is required"));
        }
        let location = PathBuf::from(&r.location);
        if !location.is_absolute() || location.file_name().is_none() {
            return Err(Status::invalid_argument(format!("CheckpointContainer: location {:?} must be an absolute file path", r.location)));
        }
        if location.is_dir() {
            return Err(Status::invalid_argument(format!("CheckpointContainer: location {:?} is a directory", r.location)));
        }
        let lock = self.registry.lock(&id);
        let _g = lock.lock().await;
        let c = self.registry.container(&id).ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        if c.record.state != ContainerState::Running {
            return Err(Status::failed_precondition(format!("CheckpointContainer: container {id} is not running ({:?})", c.record.state)));
        }
        let rt = self.runtime_for(&c.record.handler)?;
        let root = self.registry.root.clone();
        let scratch = record::dir(&root, &id).join("checkpoint.tmp");
        let _ = std::fs::remove_dir_all(&scratch);
        let images = scratch.join(archive::IMAGES_DIR);
        std::fs::create_dir_all(&images).map_err(|e| Status::internal(format!("CheckpointContainer: {}: {e}", images.display())))?;
        let timeout = if r.timeout > 0 { Duration::from_secs(r.timeout as u64) } else { DEFAULT_TIMEOUT };
        let dumped = rt.checkpoint(&id, &images, &scratch, timeout).await;
        let result = match dumped {
            Err(e @ RuntimeError::Timeout { .. }) => Err(Status::deadline_exceeded(format!("CheckpointContainer: {e}"))),
            Err(e) => Err(Status::internal(format!("CheckpointContainer: {e}"))),
            Ok(()) => {
                let dump = ConfigDump {
                    id: id.clone(),
                    name: c.metadata().name,
                    rootfs_image: c.record.image.clone(),
                    rootfs_image_ref: c.record.image_ref.clone(),
                    rootfs_image_name: c.record.image.clone(),
                    image_id: c.record.image_id.clone(),
                    runtime: rt.path.display().to_string(),
                    handler: c.record.handler.clone(),
                    created_time: chrono_ns(c.record.created_at),
                    checkpointed_time: chrono_ns(crate::sandbox::now_ns()),
                };
                let bundle = record::bundle(&root, &id);
                let upper = self.store.upper_dir(&id).map_err(super::store_status)?;
                let (scratch2, location2) = (scratch.clone(), location.clone());
                tokio::task::spawn_blocking(move || -> Result<(), String> {
                    crate::persist::write_atomic(
                        &scratch2.join(archive::CONFIG_DUMP),
                        &serde_json::to_vec_pretty(&dump).map_err(|e| e.to_string())?,
                    )
                    .map_err(|e| format!("{}: {e}", archive::CONFIG_DUMP))?;
                    std::fs::copy(bundle.join("config.json"), scratch2.join(archive::SPEC_DUMP))
                        .map_err(|e| format!("{}: {e}", archive::SPEC_DUMP))?;
                    archive::write_rootfs_diff(&upper, &scratch2.join(archive::ROOTFS_DIFF)).map_err(|e| e.to_string())?;
                    archive::write_archive(&scratch2, &location2).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::internal(format!("CheckpointContainer: {e}")))
            }
        };
        let _ = std::fs::remove_dir_all(&scratch);
        result?;
        tracing::info!(id = %id, location = %location.display(), "container checkpointed");
        Ok(cri::CheckpointContainerResponse {})
    }
}

/// RFC 3339 (UTC) of a nanosecond timestamp.
fn chrono_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000) as libc::time_t;
    let Some(tm) = crate::sys::gmtime(secs) else { return String::new() };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        ns.rem_euclid(1_000_000_000)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339() {
        assert_eq!(super::chrono_ns(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456789Z");
    }
}
