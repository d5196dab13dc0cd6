//! The tower layer around both CRI services that records every call in `DaemonMetrics`:
//! one place instead of a line in each RPC.
//!
//! The code is read from the response headers: tonic answers an error as a trailers-only
//! response (`grpc-status` in the headers), and a success with headers that have none (the
//! OK comes in the trailers). The time is until the headers, which for a unary call is the
//! whole handling; for GetContainerEvents' stream it is the time to open it.

use super::daemon::{operation, DaemonMetrics};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::http;

#[derive(Clone)]
pub struct RpcMetricsLayer {
    metrics: Arc<DaemonMetrics>,
}

impl RpcMetricsLayer {
    pub fn new(metrics: Arc<DaemonMetrics>) -> Self {
        RpcMetricsLayer { metrics }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    metrics: Arc<DaemonMetrics>,
}

/// The gRPC code of a response: `None` when its headers carry no status (a success).
pub fn code_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    tonic::Status::from_header_map(headers).map(|s| s.code())
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let op = operation(req.uri().path());
        let start = Instant::now();
        let fut = self.inner.call(req);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let res = fut.await;
            let code = match &res {
                Ok(r) => code_of(r.headers()),
                // The transport failed under the service: the client saw no answer.
                Err(_) => Some(tonic::Code::Unavailable),
            };
            metrics.rpc(op, code, start.elapsed());
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_comes_from_the_headers() {
        let mut h = http::HeaderMap::new();
        assert_eq!(code_of(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(code_of(&h), Some(tonic::Code::NotFound));
        h.insert("grpc-status", http::HeaderValue::from_static("0"));
        assert_eq!(code_of(&h), Some(tonic::Code::Ok));
    }

    #[tokio::test]
    async fn a_call_through_the_layer_is_counted() {
        use tower::{Layer, ServiceExt};
        let m = Arc::new(DaemonMetrics::new());
        let svc = tower::service_fn(|_req: http::Request<()>| async {
            let mut r = http::Response::new(());
            r.headers_mut().insert("grpc-status", http::HeaderValue::from_static("5"));
            Ok::<_, std::convert::Infallible>(r)
        });
        let svc = RpcMetricsLayer::new(m.clone()).layer(svc);
        let req = http::Request::builder().uri("/runtime.v1.RuntimeService/ContainerStatus").body(()).unwrap();
        svc.oneshot(req).await.unwrap();
        let t = m.encode();
        assert!(t.contains(r#"berth_cri_operation_errors_total{operation="ContainerStatus",code="NotFound"} 1"#), "{t}");
    }
}
