//! The CRI streaming server: `Exec`, `Attach` and `PortForward` return a URL on this server
//! (`http[s]://ADDRESS:PORT/{exec,attach,portforward}/TOKEN`, the token single-use and
//! expiring); the client upgrades the request to SPDY/3.1 or WebSocket and the session runs
//! over it (see docs/CRI.md, "Streaming").

mod backend;
pub mod portforward;
pub mod remotecommand;
mod session;
pub mod spdy;
pub mod token;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::config::StreamingConfig;
use crate::server::CriServer;
use remotecommand::Version;
use session::Timeouts;
use token::Pending;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("streaming server address {0:?} is not an IP address")]
    Address(String),
    #[error("streaming server: bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("streaming server TLS: {0}")]
    Tls(String),
}

/// The streaming state the CRI services share: configuration, tokens, the base URL.
pub struct Streaming {
    pub config: StreamingConfig,
    cache: token::Cache,
    base: OnceLock<String>,
}

impl Streaming {
    pub fn new(config: StreamingConfig) -> Streaming {
        let cache = token::Cache::new(Duration::from_secs(config.token_ttl.max(1)));
        Streaming { config, cache, base: OnceLock::new() }
    }

    /// A URL for `p` (a fresh token).
    pub fn url(&self, p: Pending) -> Result<String, tonic::Status> {
        let base = self.base.get().ok_or_else(|| tonic::Status::unavailable("the streaming server is not running"))?;
        let verb = p.verb();
        let t = self.cache.insert(p).map_err(|e| tonic::Status::resource_exhausted(e.to_string()))?;
        Ok(format!("{base}/{verb}/{t}"))
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            idle: Duration::from_secs(self.config.idle_timeout),
            creation: Duration::from_secs(self.config.stream_creation_timeout.max(1)),
        }
    }
}

fn tls_acceptor(c: &StreamingConfig) -> Result<Option<tokio_rustls::TlsAcceptor>, StreamError> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let e = |m: String| StreamError::Tls(m);
    let (cert, key) = match (&c.tls_cert, &c.tls_key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => return Ok(None),
        _ => return Err(e("tls_cert and tls_key must be set together".into())),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|x| e(format!("{}: {x}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|x| e(format!("{}: {x}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|x| e(format!("{}: {x}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|x| e(x.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|x| e(x.to_string()))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))))
}

/// Bind the configured address and serve in the background; the URLs are valid from now.
pub async fn start(srv: CriServer) -> Result<SocketAddr, StreamError> {
    let c = &srv.streaming.config;
    let ip: IpAddr = c.address.parse().map_err(|_| StreamError::Address(c.address.clone()))?;
    let addr = SocketAddr::new(ip, c.port);
    let tls = tls_acceptor(c)?;
    let listener = TcpListener::bind(addr).await.map_err(|source| StreamError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| StreamError::Bind { addr, source })?;
    // An unspecified address is reached through loopback (kubelet runs on the node).
    let host = match local.ip() {
        IpAddr::V4(v) if v.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(v) if v.is_unspecified() => "[::1]".to_string(),
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => format!("[{v}]"),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let _ = srv.streaming.base.set(format!("{scheme}://{host}:{}", local.port()));
    tracing::info!(address = %local, tls = tls.is_some(), "streaming server listening");
    tokio::spawn(async move {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "streaming server: accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (srv, tls) = (srv.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(acc) => match tokio::time::timeout(Duration::from_secs(30), acc.accept(tcp)).await {
                        Ok(Ok(s)) => serve_connection(srv, s).await,
                        _ => tracing::debug!("streaming server: TLS handshake failed"),
                    },
                    None => serve_connection(srv, tcp).await,
                }
            });
        }
    });
    Ok(local)
}

async fn serve_connection<IO>(srv: CriServer, io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let srv = srv.clone();
        async move { Ok::<_, std::convert::Infallible>(route(srv, req)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "streaming server: connection");
    }
}

fn reply(code: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{msg}\n"))));
    *r.status_mut() = code;
    r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn header_has(h: &HeaderMap, name: impl hyper::header::AsHeaderName, token: &str) -> bool {
    h.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|v| v.trim().eq_ignore_ascii_case(token))
}

fn header_values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

enum Transport {
    Spdy,
    WebSocket(String),
}

fn switching(upgrade: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut().insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    r.headers_mut().insert(UPGRADE, HeaderValue::from_static(upgrade));
    r
}

fn route(srv: CriServer, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (verb, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !matches!(verb, "exec" | "attach" | "portforward") || token.is_empty() || token.contains('/') {
        return reply(StatusCode::NOT_FOUND, "not found");
    }
    let h = req.headers();
    if !header_has(h, CONNECTION, "upgrade") {
        return reply(StatusCode::BAD_REQUEST, "a streaming request must upgrade the connection (SPDY/3.1 or websocket)");
    }
    let transport = if header_has(h, UPGRADE, "spdy/3.1") {
        Transport::Spdy
    } else if header_has(h, UPGRADE, "websocket") {
        let key = h.get("sec-websocket-key").and_then(|v| v.to_str().ok()).unwrap_or("");
        if key.is_empty() || h.get("sec-websocket-version").and_then(|v| v.to_str().ok()) != Some("13") {
            return reply(StatusCode::BAD_REQUEST, "websocket upgrade without Sec-WebSocket-Key or version 13");
        }
        Transport::WebSocket(derive_accept_key(key.as_bytes()))
    } else {
        return reply(StatusCode::BAD_REQUEST, "unsupported upgrade: SPDY/3.1 or websocket required");
    };
    let Some(pending) = srv.streaming.cache.consume(token) else {
        return reply(StatusCode::NOT_FOUND, "unknown or expired streaming token");
    };
    if pending.verb() != verb {
        return reply(StatusCode::NOT_FOUND, "unknown or expired streaming token");
    }
    let t = srv.streaming.timeouts();
    let is_pf = matches!(pending, Pending::PortForward(_));
    match transport {
        Transport::Spdy => {
            let offered = header_values(req.headers(), "x-stream-protocol-version");
            let ours: &[&str] = if is_pf { &[portforward::SPDY_PROTOCOL] } else { remotecommand::SPDY_PROTOCOLS };
            let chosen = match remotecommand::negotiate(&offered, ours) {
                Some(c) => Some(c),
                // Clients before protocol negotiation spoke v1.
                None if offered.is_empty() && !is_pf => None,
                None => {
                    let mut r = reply(
                        StatusCode::FORBIDDEN,
                        &format!("unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {ours:?}"),
                    );
                    for p in ours {
                        r.headers_mut().append("x-accepted-stream-protocol-versions", HeaderValue::from_static(p));
                    }
                    return r;
                }
            };
            let mut resp = switching("SPDY/3.1");
            if let Some(c) = chosen {
                resp.headers_mut().insert("x-stream-protocol-version", HeaderValue::from_static(c));
            }
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let io = match upgrade.await {
                    Ok(u) => TokioIo::new(u),
                    Err(e) => return tracing::debug!(error = %e, "streaming: upgrade"),
                };
                match pending {
                    Pending::PortForward(r) => match srv.forward_target(&r.pod_sandbox_id) {
                        Ok(target) => portforward::serve_spdy(target, r.port, io, t.idle).await,
                        Err(e) => tracing::info!(error = %e, "PortForward"),
                    },
                    p => {
                        let v = chosen.and_then(Version::of).unwrap_or(Version(1));
                        session::serve_spdy(srv, io, v, p, t).await
                    }
                }
            });
            resp
        }
        Transport::WebSocket(accept) => {
            let offered = header_values(req.headers(), "sec-websocket-protocol");
            let mut ports = Vec::new();
            let chosen: Option<&'static str> = if is_pf {
                if offered.iter().any(|p| p == portforward::WS_TUNNEL_PROTOCOL) {
                    Some(portforward::WS_TUNNEL_PROTOCOL)
                } else {
                    match portforward::query_ports(req.uri().query()) {
                        Ok(p) => ports = p,
                        Err(e) => return reply(StatusCode::BAD_REQUEST, &e),
                    }
                    remotecommand::negotiate(&offered, portforward::WS_PROTOCOLS)
                }
            } else {
                remotecommand::negotiate(&offered, remotecommand::WS_PROTOCOLS)
            };
            if chosen.is_none() && !offered.is_empty() {
                return reply(StatusCode::BAD_REQUEST, &format!("unable to negotiate a websocket protocol: client supports {offered:?}"));
            }
            let mut resp = switching("websocket");
            match HeaderValue::from_str(&accept) {
                Ok(v) => resp.headers_mut().insert("sec-websocket-accept", v),
                Err(_) => return reply(StatusCode::BAD_REQUEST, "bad websocket key"),
            };
            if let Some(c) = chosen {
                resp.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(c));
            }
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let io = match upgrade.await {
                    Ok(u) => TokioIo::new(u),
                    Err(e) => return tracing::debug!(error = %e, "streaming: upgrade"),
                };
                let mut cfg = WebSocketConfig::default();
                cfg.max_message_size = Some(16 << 20);
                cfg.max_frame_size = Some(16 << 20);
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(cfg)).await;
                match pending {
                    Pending::PortForward(r) => match srv.forward_target(&r.pod_sandbox_id) {
                        Ok(target) if chosen == Some(portforward::WS_TUNNEL_PROTOCOL) => {
                            portforward::serve_ws_tunnel(target, r.port, ws, t.idle).await
                        }
                        Ok(target) => portforward::serve_ws_channels(target, ports, ws, t.idle).await,
                        Err(e) => tracing::info!(error = %e, "PortForward"),
                    },
                    p => {
                        let v = chosen.and_then(Version::of).unwrap_or(Version(1));
                        session::serve_ws(srv, ws, v, p, t).await
                    }
                }
            });
            resp
        }
    }
}
