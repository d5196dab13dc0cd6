//! ListMetricDescriptors: the fixed set of `metrics::descriptors`, so kubelet can build its
//! Prometheus descriptions once before the first ListPodSandboxMetrics.

use super::CriServer;
use crate::metrics::descriptors;
use k8s_cri::v1 as cri;
use tonic::Status;

impl CriServer {
    pub(crate) async fn do_list_metric_descriptors(
        &self,
        _r: cri::ListMetricDescriptorsRequest,
    ) -> Result<cri::ListMetricDescriptorsResponse, Status> {
        Ok(cri::ListMetricDescriptorsResponse { descriptors: descriptors::list() })
    }
}
