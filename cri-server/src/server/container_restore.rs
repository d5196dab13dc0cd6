//! Restoring a container from a checkpoint archive, as CRI-O does: CreateContainer whose
//! image is the path of a checkpoint archive (a tar file, `container/checkpoint.rs`) makes
//! a container of the archive's original image (which must be present), from the request's
//! config; its rootfs gets the archive's `rootfs-diff.tar` in the overlay upper directory
//! before it is mounted, and the archive is unpacked into `<container dir>/restore/`. No
//! monitor runs yet. StartContainer then starts the monitor with `--restore`, whose runtime
//! call is `restore --detach --image-path <restore>/checkpoint` instead of `create`: the
//! container comes back running, from its checkpointed memory.
//!
//! The request's config must give the container the same mounts (destinations) as the
//! checkpointed one had (CRIU binds them again by destination) and no terminal.

use super::CriServer;
use crate::container::checkpoint::{self as archive, ConfigDump};
use crate::container::record::{self, Container};
use std::path::{Path, PathBuf};
use tonic::Status;

/// A CreateContainer that restores: the archive and what it says about the container.
#[derive(Debug, Clone)]
pub(crate) struct Restore {
    pub archive: PathBuf,
    pub dump: ConfigDump,
}

impl Restore {
    /// The image to look up: the original's id, else its reference or name.
    pub fn image(&self) -> String {
        [&self.dump.image_id, &self.dump.rootfs_image_ref, &self.dump.rootfs_image_name]
            .into_iter()
            .find(|s| !s.is_empty())
            .cloned()
            .unwrap_or_default()
    }
}

/// Where a restoring container's archive is unpacked.
pub(crate) fn restore_dir(state_root: &Path, id: &str) -> PathBuf {
    record::dir(state_root, id).join("restore")
}

impl CriServer {
    /// The checkpoint archive `image` names, if it is the path of one.
    pub(crate) async fn checkpoint_import(&self, image: &str) -> Result<Option<Restore>, Status> {
        if !archive::is_archive(image) {
            return Ok(None);
        }
        let path = PathBuf::from(image);
        let p = path.clone();
        let dump = tokio::task::spawn_blocking(move || archive::read_config(&p))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::invalid_argument(format!("CreateContainer: {e}")))?;
        Ok(Some(Restore { archive: path, dump }))
    }

    /// Unpacks the archive into the container's restore directory; returns the rootfs diff.
    pub(crate) async fn unpack_checkpoint(&self, id: &str, r: &Restore) -> Result<PathBuf, Status> {
        let dir = restore_dir(&self.registry.root, id);
        let a = r.archive.clone();
        let d = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&d).map_err(|e| archive::ArchiveError::Io { path: d.display().to_string(), source: e })?;
            archive::unpack(&a, &d)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::invalid_argument(format!("CreateContainer: {e}")))?;
        Ok(dir.join(archive::ROOTFS_DIFF))
    }

    /// StartContainer of a restoring container: its monitor runs the runtime's `restore`.
    pub(crate) async fn start_restored(&self, c: &mut Container, images: PathBuf) -> Result<(), Status> {
        let rt = self.runtime_for(&c.record.handler)?;
        let mut launch = self.launch(c, &rt);
        launch.restore = Some(images);
        self.spawn_monitor(c, launch, "StartContainer: restore").await
    }
}
