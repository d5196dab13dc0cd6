//! `ImageFsInfo`: bytes and inodes the image store uses on its filesystem.

use k8s_cri::v1 as cri;
use tonic::Status;

use super::{blocking, CriServer};

impl CriServer {
    pub(crate) async fn do_image_fs_info(&self, _r: cri::ImageFsInfoRequest) -> Result<cri::ImageFsInfoResponse, Status> {
        let store = self.store.clone();
        let (bytes, inodes) = blocking(move || store.usage()).await?;
        let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
        Ok(cri::ImageFsInfoResponse {
            image_filesystems: vec![cri::FilesystemUsage {
                timestamp: ts,
                fs_id: Some(cri::FilesystemIdentifier { mountpoint: self.store.root().display().to_string() }),
                used_bytes: Some(cri::UInt64Value { value: bytes }),
                inodes_used: Some(cri::UInt64Value { value: inodes }),
            }],
            container_filesystems: vec![],
        })
    }
}
