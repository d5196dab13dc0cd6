//! berth-cri's own metrics, in the Prometheus/OpenMetrics text format (`prometheus-client`):
//! CRI calls per operation (count, latency, errors by gRPC code), image pulls, and the
//! containers and pods the registry holds. The RPC numbers are recorded in one place, the
//! tower layer in `layer.rs`; pulls by `server/image_pull.rs`; the object counts are taken
//! at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Every CRI v1 RPC: operation labels come only from this list, so a client calling made-up
/// method names cannot grow the label set without bound.
pub const OPERATIONS: &[&str] = &[
    "Version",
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "PodSandboxStatus",
    "ListPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "ListContainers",
    "ContainerStatus",
    "UpdateContainerResources",
    "ReopenContainerLog",
    "ExecSync",
    "Exec",
    "Attach",
    "PortForward",
    "ContainerStats",
    "ListContainerStats",
    "PodSandboxStats",
    "ListPodSandboxStats",
    "UpdateRuntimeConfig",
    "Status",
    "CheckpointContainer",
    "GetContainerEvents",
    "ListMetricDescriptors",
    "ListPodSandboxMetrics",
    "RuntimeConfig",
    "ListImages",
    "ImageStatus",
    "PullImage",
    "RemoveImage",
    "ImageFsInfo",
];

/// The operation label of a gRPC path (`/runtime.v1.RuntimeService/Version` → `Version`);
/// anything else is `unknown`.
pub fn operation(path: &str) -> &'static str {
    let method = path.strip_prefix("/runtime.v1.RuntimeService/").or_else(|| path.strip_prefix("/runtime.v1.ImageService/"));
    method.and_then(|m| OPERATIONS.iter().find(|o| **o == m).copied()).unwrap_or("unknown")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Op {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpCode {
    operation: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: String,
}

type Latency = Family<Op, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … about 60 s: a status call takes a millisecond, a pull or a stop with a grace
    // period tens of seconds.
    Histogram::new(exponential_buckets(0.001, 2.5, 13))
}

pub struct DaemonMetrics {
    registry: Registry,
    operations: Family<Op, Counter>,
    errors: Family<OpCode, Counter>,
    latency: Latency,
    pulls: Counter,
    pull_failures: Counter,
    pulled_bytes: Counter,
    containers: Family<State, Gauge>,
    pods: Family<State, Gauge>,
}

impl Default for DaemonMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl DaemonMetrics {
    pub fn new() -> DaemonMetrics {
        let mut registry = Registry::with_prefix("berth_cri");
        let operations = Family::<Op, Counter>::default();
        let errors = Family::<OpCode, Counter>::default();
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        let (pulls, pull_failures, pulled_bytes) = (Counter::default(), Counter::default(), Counter::default());
        let containers = Family::<State, Gauge>::default();
        let pods = Family::<State, Gauge>::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register("operations", "CRI calls, by operation", operations.clone());
        registry.register("operation_errors", "CRI calls that failed, by operation and gRPC code", errors.clone());
        registry.register("operation_duration_seconds", "Time to answer a CRI call, by operation", latency.clone());
        registry.register("image_pulls", "PullImage calls that stored an image", pulls.clone());
        registry.register("image_pull_failures", "PullImage calls that failed", pull_failures.clone());
        registry.register("image_pulled_bytes", "Uncompressed size of the images PullImage stored", pulled_bytes.clone());
        registry.register("containers", "Containers known to the daemon, by state", containers.clone());
        registry.register("pods", "Pod sandboxes known to the daemon, by state", pods.clone());
        DaemonMetrics { registry, operations, errors, latency, pulls, pull_failures, pulled_bytes, containers, pods }
    }

    /// One answered CRI call; `code` is `None` for success.
    pub fn rpc(&self, operation: &str, code: Option<tonic::Code>, took: Duration) {
        let op = Op { operation: operation.to_string() };
        self.operations.get_or_create(&op).inc();
        self.latency.get_or_create(&op).observe(took.as_secs_f64());
        if let Some(c) = code.filter(|c| *c != tonic::Code::Ok) {
            self.errors.get_or_create(&OpCode { operation: op.operation, code: code_name(c).to_string() }).inc();
        }
    }

    pub fn pull_succeeded(&self, bytes: u64) {
        self.pulls.inc();
        self.pulled_bytes.inc_by(bytes);
    }

    pub fn pull_failed(&self) {
        self.pull_failures.inc();
    }

    /// Sets the object gauges; every state is written, so a state emptied since the last
    /// scrape shows 0 rather than its old count.
    pub fn set_objects(&self, containers: &[(&str, i64)], pods: &[(&str, i64)]) {
        for (family, counts) in [(&self.containers, containers), (&self.pods, pods)] {
            for (state, n) in counts {
                family.get_or_create(&State { state: state.to_string() }).set(*n);
            }
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would leave a partial text,
        // which is still what there is to show.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The gRPC code's name as in its specification (`NotFound`), a stable label value.
pub fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_come_from_the_cri_only() {
        assert_eq!(operation("/runtime.v1.RuntimeService/ContainerStatus"), "ContainerStatus");
        assert_eq!(operation("/runtime.v1.ImageService/PullImage"), "PullImage");
        assert_eq!(operation("/runtime.v1.RuntimeService/MadeUp"), "unknown");
        assert_eq!(operation("/runtime.v1.ImageService/Version/x"), "unknown");
        assert_eq!(operation(""), "unknown");
    }

    #[test]
    fn calls_errors_and_pulls_are_exposed() {
        let m = DaemonMetrics::new();
        m.rpc("Version", None, Duration::from_millis(2));
        m.rpc("Version", Some(tonic::Code::Ok), Duration::from_millis(2));
        m.rpc("ContainerStatus", Some(tonic::Code::NotFound), Duration::from_millis(1));
        m.pull_succeeded(1000);
        m.pull_failed();
        m.set_objects(&[("running", 2), ("exited", 0)], &[("ready", 1)]);
        let t = m.encode();
        for line in [
            r#"berth_cri_operations_total{operation="Version"} 2"#,
            r#"berth_cri_operations_total{operation="ContainerStatus"} 1"#,
            r#"berth_cri_operation_errors_total{operation="ContainerStatus",code="NotFound"} 1"#,
            r#"berth_cri_operation_duration_seconds_count{operation="Version"} 2"#,
            "berth_cri_image_pulls_total 1",
            "berth_cri_image_pull_failures_total 1",
            "berth_cri_image_pulled_bytes_total 1000",
            r#"berth_cri_containers{state="running"} 2"#,
            r#"berth_cri_containers{state="exited"} 0"#,
            r#"berth_cri_pods{state="ready"} 1"#,
        ] {
            assert!(t.lines().any(|l| l == line), "{line} missing in:\n{t}");
        }
        // A success is no error.
        assert!(!t.contains(r#"berth_cri_operation_errors_total{operation="Version""#), "{t}");
        assert!(t.contains("# TYPE berth_cri_operation_duration_seconds histogram"), "{t}");
    }
}
