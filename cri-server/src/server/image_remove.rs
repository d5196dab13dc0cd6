//! `RemoveImage` (by id, tag or digest; idempotent; refused while a container uses it).

use k8s_cri::v1 as cri;
use tonic::Status;

use super::{blocking, image_of, CriServer};

impl CriServer {
    pub(crate) async fn do_remove_image(&self, r: cri::RemoveImageRequest) -> Result<cri::RemoveImageResponse, Status> {
        let image = image_of(r.image)?;
        let names = self.names(&image);
        let store = self.store.clone();
        let removed = blocking(move || store.remove_image(&image, &names)).await?;
        tracing::info!(removed, "remove image");
        Ok(cri::RemoveImageResponse {})
    }
}
