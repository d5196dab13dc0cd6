//! The CRI v1 gRPC services. One file per RPC; the trait impls here only delegate.

mod attach;
mod container_checkpoint;
mod container_create;
mod container_list;
mod container_remove;
mod container_reopen_log;
mod container_restore;
mod container_start;
mod container_stats;
mod container_status;
mod container_stop;
mod container_update;
mod events;
mod exec;
mod exec_sync;
mod image_fs_info;
mod image_list;
mod image_pull;
mod image_remove;
mod image_status;
mod metric_descriptors;
mod port_forward;
mod recover;
mod runtime_config_update;
mod sandbox_list;
mod sandbox_metrics;
mod sandbox_remove;
mod sandbox_run;
mod sandbox_stats;
mod sandbox_status;
mod sandbox_stop;
mod status;
mod version;

use std::sync::Arc;

use k8s_cri::v1 as cri;
use tonic::{Request, Response, Status};

use crate::config::Config;
use crate::container::runtime::Runtime;
use crate::events::Events;
use crate::image::pull::Puller;
use crate::image::store::Store;
use crate::network::Cni;
use crate::registry::Registry;
use crate::stats::Stats;

pub use k8s_cri::v1::image_service_server::ImageServiceServer;
pub use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;

/// Shared state of both services.
#[derive(Clone)]
pub struct CriServer {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub puller: Arc<Puller>,
    pub registry: Arc<Registry>,
    pub cni: Arc<Cni>,
    pub stats: Arc<Stats>,
    pub events: Arc<Events>,
    pub streaming: Arc<crate::streaming::Streaming>,
    /// Each handler's runtime `features`, asked once.
    pub features: Arc<crate::container::features::FeatureCache>,
    /// The daemon's own counters (served only with `metrics.enable`, kept always: cheap).
    pub metrics: Arc<crate::metrics::daemon::DaemonMetrics>,
}

impl CriServer {
    /// The server over `config.daemon.state_root`; records found there are loaded (call
    /// `recover` before serving to clean up what a crash left half-made).
    pub fn new(config: Arc<Config>, store: Arc<Store>) -> CriServer {
        let puller = Arc::new(Puller::new(store.clone(), &config.image));
        let root = config.daemon.state_root.clone();
        let (registry, broken) = Registry::load(&root);
        for d in broken {
            let _ = std::fs::remove_dir_all(&d);
        }
        let cni = Arc::new(Cni::new(&config.network, root.join("cni-cache")));
        let stats = Arc::new(Stats::new(store.root()));
        let streaming = Arc::new(crate::streaming::Streaming::new(config.streaming.clone()));
        CriServer {
            config,
            store,
            puller,
            registry: Arc::new(registry),
            cni,
            stats,
            events: Arc::new(Events::default()),
            streaming,
            features: Default::default(),
            metrics: Arc::new(crate::metrics::daemon::DaemonMetrics::new()),
        }
    }

    /// The OCI runtime of a handler, with its own state root under ours.
    pub(crate) fn runtime_for(&self, handler: &str) -> Result<Runtime, Status> {
        let h = self
            .config
            .runtime
            .handlers
            .get(handler)
            .ok_or_else(|| Status::failed_precondition(format!("runtime handler {handler:?} is not configured")))?;
        Ok(Runtime::new(&h.path, self.registry.root.join("runtime").join(handler), self.systemd_cgroup()))
    }

    /// Whether the node's cgroup manager is systemd (`runtime.cgroup_manager`).
    pub(crate) fn systemd_cgroup(&self) -> bool {
        self.config.runtime.cgroup_manager == "systemd"
    }

    /// Sets the daemon's container and pod gauges from the registry (at each scrape).
    pub(crate) fn count_objects(&self) {
        use crate::container::record::ContainerState as C;
        use crate::sandbox::SandboxState as S;
        let cs = self.registry.containers();
        let ps = self.registry.sandboxes();
        let nc = |s: C| cs.iter().filter(|c| c.record.state == s).count() as i64;
        let np = |s: S| ps.iter().filter(|p| p.record.state == s).count() as i64;
        self.metrics.set_objects(
            &[("creating", nc(C::Creating)), ("created", nc(C::Created)), ("running", nc(C::Running)), ("exited", nc(C::Exited))],
            &[("creating", np(S::Creating)), ("ready", np(S::Ready)), ("notready", np(S::NotReady))],
        );
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
    tokio::task::spawn_blocking(f).await.map_err(|e| Status::internal(format!("task failed: {e}")))?.map_err(store_status)
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

    type GetContainerEventsStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;
    async fn get_container_events(&self, _r: Request<cri::GetEventsRequest>) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        use tokio_stream::StreamExt;
        let rx = self.do_get_container_events().await?;
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok))))
    }

    async fn run_pod_sandbox(&self, r: Request<cri::RunPodSandboxRequest>) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
        self.do_run_pod_sandbox(r.into_inner()).await.map(Response::new)
    }
    async fn stop_pod_sandbox(&self, r: Request<cri::StopPodSandboxRequest>) -> Result<Response<cri::StopPodSandboxResponse>, Status> {
        self.do_stop_pod_sandbox(r.into_inner()).await.map(Response::new)
    }
    async fn remove_pod_sandbox(
        &self,
        r: Request<cri::RemovePodSandboxRequest>,
    ) -> Result<Response<cri::RemovePodSandboxResponse>, Status> {
        self.do_remove_pod_sandbox(r.into_inner()).await.map(Response::new)
    }
    async fn pod_sandbox_status(
        &self,
        r: Request<cri::PodSandboxStatusRequest>,
    ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
        self.do_pod_sandbox_status(r.into_inner()).await.map(Response::new)
    }
    async fn list_pod_sandbox(&self, r: Request<cri::ListPodSandboxRequest>) -> Result<Response<cri::ListPodSandboxResponse>, Status> {
        self.do_list_pod_sandbox(r.into_inner()).await.map(Response::new)
    }
    async fn create_container(&self, r: Request<cri::CreateContainerRequest>) -> Result<Response<cri::CreateContainerResponse>, Status> {
        self.do_create_container(r.into_inner()).await.map(Response::new)
    }
    async fn start_container(&self, r: Request<cri::StartContainerRequest>) -> Result<Response<cri::StartContainerResponse>, Status> {
        self.do_start_container(r.into_inner()).await.map(Response::new)
    }
    async fn stop_container(&self, r: Request<cri::StopContainerRequest>) -> Result<Response<cri::StopContainerResponse>, Status> {
        self.do_stop_container(r.into_inner()).await.map(Response::new)
    }
    async fn remove_container(&self, r: Request<cri::RemoveContainerRequest>) -> Result<Response<cri::RemoveContainerResponse>, Status> {
        self.do_remove_container(r.into_inner()).await.map(Response::new)
    }
    async fn list_containers(&self, r: Request<cri::ListContainersRequest>) -> Result<Response<cri::ListContainersResponse>, Status> {
        self.do_list_containers(r.into_inner()).await.map(Response::new)
    }
    async fn container_status(&self, r: Request<cri::ContainerStatusRequest>) -> Result<Response<cri::ContainerStatusResponse>, Status> {
        self.do_container_status(r.into_inner()).await.map(Response::new)
    }
    async fn update_container_resources(
        &self,
        r: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Result<Response<cri::UpdateContainerResourcesResponse>, Status> {
        self.do_update_container_resources(r.into_inner()).await.map(Response::new)
    }
    async fn reopen_container_log(
        &self,
        r: Request<cri::ReopenContainerLogRequest>,
    ) -> Result<Response<cri::ReopenContainerLogResponse>, Status> {
        self.do_reopen_container_log(r.into_inner()).await.map(Response::new)
    }
    async fn runtime_config(&self, _r: Request<cri::RuntimeConfigRequest>) -> Result<Response<cri::RuntimeConfigResponse>, Status> {
        // kubelet (1.28+, KubeletCgroupDriverFromCRI) takes its cgroup driver from here.
        let driver = if self.systemd_cgroup() { cri::CgroupDriver::Systemd } else { cri::CgroupDriver::Cgroupfs };
        Ok(Response::new(cri::RuntimeConfigResponse { linux: Some(cri::LinuxRuntimeConfiguration { cgroup_driver: driver as i32 }) }))
    }
    async fn update_runtime_config(
        &self,
        r: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<cri::UpdateRuntimeConfigResponse>, Status> {
        self.do_update_runtime_config(r.into_inner()).await.map(Response::new)
    }
    async fn exec_sync(&self, r: Request<cri::ExecSyncRequest>) -> Result<Response<cri::ExecSyncResponse>, Status> {
        self.do_exec_sync(r.into_inner()).await.map(Response::new)
    }

    async fn container_stats(&self, r: Request<cri::ContainerStatsRequest>) -> Result<Response<cri::ContainerStatsResponse>, Status> {
        self.do_container_stats(r.into_inner()).await.map(Response::new)
    }
    async fn list_container_stats(
        &self,
        r: Request<cri::ListContainerStatsRequest>,
    ) -> Result<Response<cri::ListContainerStatsResponse>, Status> {
        self.do_list_container_stats(r.into_inner()).await.map(Response::new)
    }
    async fn pod_sandbox_stats(&self, r: Request<cri::PodSandboxStatsRequest>) -> Result<Response<cri::PodSandboxStatsResponse>, Status> {
        self.do_pod_sandbox_stats(r.into_inner()).await.map(Response::new)
    }
    async fn list_pod_sandbox_stats(
        &self,
        r: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Result<Response<cri::ListPodSandboxStatsResponse>, Status> {
        self.do_list_pod_sandbox_stats(r.into_inner()).await.map(Response::new)
    }

    async fn exec(&self, r: Request<cri::ExecRequest>) -> Result<Response<cri::ExecResponse>, Status> {
        self.do_exec(r.into_inner()).await.map(Response::new)
    }
    async fn attach(&self, r: Request<cri::AttachRequest>) -> Result<Response<cri::AttachResponse>, Status> {
        self.do_attach(r.into_inner()).await.map(Response::new)
    }
    async fn port_forward(&self, r: Request<cri::PortForwardRequest>) -> Result<Response<cri::PortForwardResponse>, Status> {
        self.do_port_forward(r.into_inner()).await.map(Response::new)
    }

    async fn list_metric_descriptors(
        &self,
        r: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Result<Response<cri::ListMetricDescriptorsResponse>, Status> {
        self.do_list_metric_descriptors(r.into_inner()).await.map(Response::new)
    }
    async fn list_pod_sandbox_metrics(
        &self,
        r: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Result<Response<cri::ListPodSandboxMetricsResponse>, Status> {
        self.do_list_pod_sandbox_metrics(r.into_inner()).await.map(Response::new)
    }

    async fn checkpoint_container(
        &self,
        r: Request<cri::CheckpointContainerRequest>,
    ) -> Result<Response<cri::CheckpointContainerResponse>, Status> {
        self.do_checkpoint_container(r.into_inner()).await.map(Response::new)
    }
}
