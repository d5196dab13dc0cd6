//! The CRI v1 gRPC services. One file per RPC; the trait impls here only delegate.

#[macro_use]
mod unimplemented;
mod image_fs_info;
mod image_list;
mod image_pull;
mod image_remove;
mod image_status;
mod status;
mod version;

use std::sync::Arc;

use k8s_cri::v1 as cri;
use tonic::{Request, Response, Status};

use crate::config::Config;
use crate::image::pull::Puller;
use crate::image::store::Store;

pub use k8s_cri::v1::image_service_server::ImageServiceServer;
pub use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;

/// Shared state of both services.
#[derive(Clone)]
pub struct CriServer {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub puller: Arc<Puller>,
}

impl CriServer {
    pub fn new(config: Arc<Config>, store: Arc<Store>) -> CriServer {
        let puller = Arc::new(Puller::new(store.clone(), &config.image));
        CriServer { config, store, puller }
    }

    /// Normalised names a reference may be stored under.
    pub(crate) fn names(&self, reference: &str) -> Vec<String> {
        match self.puller.registries() {
            Ok(r) => crate::image::lookup_names(reference, &r),
            Err(_) => crate::image::lookup_names(reference, &Default::default()),
        }
    }
}

pub(crate) fn image_of(spec: Option<cri::ImageSpec>) -> Result<String, Status> {
    match spec {
        Some(s) if !s.image.trim().is_empty() => Ok(s.image),
        _ => Err(Status::invalid_argument("image spec with a non-empty image reference is required")),
    }
}

pub(crate) fn store_status(e: crate::image::store::StoreError) -> Status {
    use crate::image::store::StoreError as E;
    match &e {
        E::InUse { .. } => Status::failed_precondition(e.to_string()),
        E::NotFound(_) => Status::not_found(e.to_string()),
        E::BadDigest(_) | E::BadContainerId(_) => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::image::store::StoreError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("task failed: {e}")))?
        .map_err(store_status)
}

#[tonic::async_trait]
impl k8s_cri::v1::image_service_server::ImageService for CriServer {
    async fn list_images(&self, r: Request<cri::ListImagesRequest>) -> Result<Response<cri::ListImagesResponse>, Status> {
        self.do_list_images(r.into_inner()).await.map(Response::new)
    }
    async fn image_status(&self, r: Request<cri::ImageStatusRequest>) -> Result<Response<cri::ImageStatusResponse>, Status> {
        self.do_image_status(r.into_inner()).await.map(Response::new)
    }
    async fn pull_image(&self, r: Request<cri::PullImageRequest>) -> Result<Response<cri::PullImageResponse>, Status> {
        self.do_pull_image(r.into_inner()).await.map(Response::new)
    }
    async fn remove_image(&self, r: Request<cri::RemoveImageRequest>) -> Result<Response<cri::RemoveImageResponse>, Status> {
        self.do_remove_image(r.into_inner()).await.map(Response::new)
    }
    async fn image_fs_info(&self, r: Request<cri::ImageFsInfoRequest>) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        self.do_image_fs_info(r.into_inner()).await.map(Response::new)
    }
}

#[tonic::async_trait]
impl k8s_cri::v1::runtime_service_server::RuntimeService for CriServer {
    async fn version(&self, r: Request<cri::VersionRequest>) -> Result<Response<cri::VersionResponse>, Status> {
        self.do_version(r.into_inner()).await.map(Response::new)
    }
    async fn status(&self, r: Request<cri::StatusRequest>) -> Result<Response<cri::StatusResponse>, Status> {
        self.do_status(r.into_inner()).await.map(Response::new)
    }

    type GetContainerEventsStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;
    async fn get_container_events(
        &self,
        _r: Request<cri::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        Err(unimplemented::not_yet("get_container_events"))
    }

    unimplemented_rpcs! {
        run_pod_sandbox(RunPodSandboxRequest) -> RunPodSandboxResponse;
        stop_pod_sandbox(StopPodSandboxRequest) -> StopPodSandboxResponse;
        remove_pod_sandbox(RemovePodSandboxRequest) -> RemovePodSandboxResponse;
        pod_sandbox_status(PodSandboxStatusRequest) -> PodSandboxStatusResponse;
        list_pod_sandbox(ListPodSandboxRequest) -> ListPodSandboxResponse;
        create_container(CreateContainerRequest) -> CreateContainerResponse;
        start_container(StartContainerRequest) -> StartContainerResponse;
        stop_container(StopContainerRequest) -> StopContainerResponse;
        remove_container(RemoveContainerRequest) -> RemoveContainerResponse;
        list_containers(ListContainersRequest) -> ListContainersResponse;
        container_status(ContainerStatusRequest) -> ContainerStatusResponse;
        update_container_resources(UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse;
        reopen_container_log(ReopenContainerLogRequest) -> ReopenContainerLogResponse;
        exec_sync(ExecSyncRequest) -> ExecSyncResponse;
        exec(ExecRequest) -> ExecResponse;
        attach(AttachRequest) -> AttachResponse;
        port_forward(PortForwardRequest) -> PortForwardResponse;
        container_stats(ContainerStatsRequest) -> ContainerStatsResponse;
        list_container_stats(ListContainerStatsRequest) -> ListContainerStatsResponse;
        pod_sandbox_stats(PodSandboxStatsRequest) -> PodSandboxStatsResponse;
        list_pod_sandbox_stats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse;
        update_runtime_config(UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse;
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse;
        list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse;
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse;
        runtime_config(RuntimeConfigRequest) -> RuntimeConfigResponse;
    }
}
