//! The `/metrics` HTTP endpoint (HTTP/1.1, plain text, no authentication — hence loopback
//! only, see `config`). Each GET renders the exposition text afresh.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics endpoint: cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// What a scrape answers: the exposition text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// OpenMetrics text, which `prometheus-client` writes and Prometheus reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn answer(req: &Request<hyper::body::Incoming>, render: &Render) -> Response<Full<Bytes>> {
    let (code, body, ctype) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, render(), CONTENT_TYPE),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_string(), "text/plain; charset=utf-8"),
        _ => (StatusCode::NOT_FOUND, "only /metrics is served here\n".to_string(), "text/plain; charset=utf-8"),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Binds `addr` and serves in the background; returns the bound address (port 0 picks one).
pub async fn start(addr: SocketAddr, render: Render) -> Result<SocketAddr, MetricsError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| MetricsError::Bind { addr, source })?;
    tokio::spawn(async move {
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // EMFILE and the like pass; retrying at once would spin.
                    tracing::warn!(error = %e, "metrics endpoint: accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let render = render.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let r = answer(&req, &render);
                    async move { Ok::<_, std::convert::Infallible>(r) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(tcp), svc);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "metrics endpoint: connection");
                }
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, line: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("{line}\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_the_text_at_metrics_only() {
        let render: Render = Arc::new(|| "berth_cri_x 1\n".to_string());
        let addr = start("127.0.0.1:0".parse().unwrap(), render).await.unwrap();
        let ok = get(addr, "GET /metrics HTTP/1.1").await;
        assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("application/openmetrics-text") && ok.ends_with("berth_cri_x 1\n"), "{ok}");
        assert!(get(addr, "GET / HTTP/1.1").await.starts_with("HTTP/1.1 404"));
        assert!(get(addr, "POST /metrics HTTP/1.1").await.starts_with("HTTP/1.1 405"));
    }
}
