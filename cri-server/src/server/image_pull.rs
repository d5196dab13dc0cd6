//! `PullImage`.

use k8s_cri::v1 as cri;
use tonic::Status;

use super::{image_of, CriServer};
use crate::image::auth;
use crate::image::pull::PullError;

impl CriServer {
    pub(crate) async fn do_pull_image(&self, r: cri::PullImageRequest) -> Result<cri::PullImageResponse, Status> {
        let image = image_of(r.image)?;
        let creds = match &r.auth {
            Some(a) => auth::from_request(&a.username, &a.password, &a.auth, &a.registry_token)
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
            None => None,
        };
        let res = self.puller.pull(&image, creds).await;
        match &res {
            Ok(rec) => self.metrics.pull_succeeded(rec.size),
            Err(_) => self.metrics.pull_failed(),
        }
        match res {
            Ok(rec) => Ok(cri::PullImageResponse { image_ref: rec.id }),
            Err(e @ PullError::Resolve(_)) => Err(Status::invalid_argument(e.to_string())),
            Err(e) => Err(Status::unknown(e.to_string())),
        }
    }
}
