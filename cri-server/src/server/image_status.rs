//! `ImageStatus` (absent image: empty response, as the CRI specifies).

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use tonic::Status;

use super::image_list::to_cri;
use super::{blocking, image_of, CriServer};

impl CriServer {
    pub(crate) async fn do_image_status(&self, r: cri::ImageStatusRequest) -> Result<cri::ImageStatusResponse, Status> {
        let image = image_of(r.image)?;
        let names = self.names(&image);
        let store = self.store.clone();
        let found = blocking(move || store.find_image(&image, &names)).await?;
        let Some(rec) = found else {
            return Ok(cri::ImageStatusResponse::default());
        };
        let mut info = HashMap::new();
        if r.verbose {
            let store = self.store.clone();
            let id = rec.id.clone();
            let config = blocking(move || store.read_blob(&id)).await?;
            let config: serde_json::Value = serde_json::from_slice(&config).unwrap_or_default();
            let store = self.store.clone();
            let id = rec.id.clone();
            let users = blocking(move || store.image_users(&id)).await?;
            let v = serde_json::json!({
                "record": rec,
                "imageSpec": config,
                "containers": users,
            });
            info.insert("info".to_string(), v.to_string());
        }
        Ok(cri::ImageStatusResponse { image: Some(to_cri(&rec)), info })
    }
}
