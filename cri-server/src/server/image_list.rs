//! `ListImages`.

use k8s_cri::v1 as cri;
use tonic::Status;

use super::{blocking, CriServer};
use crate::image::store::ImageRecord;

/// The CRI view of a stored image.
pub(crate) fn to_cri(rec: &ImageRecord) -> cri::Image {
    // A numeric `User` ("1000" or "1000:1000") is a uid; anything else is a user name.
    let user = rec.user.clone().unwrap_or_default();
    let name = user.split(':').next().unwrap_or("").to_string();
    let (uid, username) = match name.parse::<i64>() {
        Ok(n) => (Some(cri::Int64Value { value: n }), String::new()),
        Err(_) if name.is_empty() => (Some(cri::Int64Value { value: 0 }), String::new()),
        Err(_) => (None, name),
    };
    cri::Image {
        id: rec.id.clone(),
        repo_tags: rec.repo_tags.clone(),
        repo_digests: rec.repo_digests.clone(),
        size: rec.size,
        uid,
        username,
        spec: Some(cri::ImageSpec { image: rec.id.clone(), ..Default::default() }),
        pinned: false,
    }
}

impl CriServer {
    pub(crate) async fn do_list_images(&self, r: cri::ListImagesRequest) -> Result<cri::ListImagesResponse, Status> {
        let store = self.store.clone();
        let filter = r.filter.and_then(|f| f.image).map(|s| s.image).filter(|s| !s.is_empty());
        let images = match filter {
            None => blocking(move || store.list_images()).await?,
            Some(f) => {
                let names = self.names(&f);
                blocking(move || store.find_image(&f, &names)).await?.into_iter().collect()
            }
        };
        Ok(cri::ListImagesResponse { images: images.iter().map(to_cri).collect() })
    }
}
