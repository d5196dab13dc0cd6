//! Port forwarding: each forwarded connection is a TCP connection to 127.0.0.1:PORT inside
//! the pod's network namespace (opened by a short-lived OS thread that enters the pinned
//! netns, connects, and hands the socket back), or on the host for host-network pods.
//!
//! Over SPDY (`portforward.k8s.io`) the client opens a data and an error stream per request
//! id; over WebSocket (`v4.channel.k8s.io` channel framing) each port of the URL's `port`
//! query gets a data and an error channel whose first message is the port (2 bytes, little
//! endian). The SPDY protocol tunnelled in WebSocket messages (`SPDY/3.1+portforward.k8s.io`,
//! what newer clients use) is the SPDY one over the tunnel.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::spdy::conn::{self, Stream};
use super::spdy::frame::RST_PROTOCOL_ERROR;
use super::spdy::headers::get;
use crate::server::CriServer;

pub const SPDY_PROTOCOL: &str = "portforward.k8s.io";
pub const WS_TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
pub const WS_PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "portforward.k8s.io"];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a pod's ports are: its network namespace, or the host's (None).
#[derive(Debug, Clone)]
pub struct Target {
    pub netns: Option<PathBuf>,
}

impl CriServer {
    /// The forwarding target of a ready pod.
    pub(crate) fn forward_target(&self, pod: &str) -> Result<Target, String> {
        let id = self
            .lookup(crate::registry::Kind::Sandbox, pod, "PortForward")
            .map_err(|s| s.message().to_string())?
            .ok_or_else(|| format!("pod sandbox {pod} not found"))?;
        let s = self.registry.sandbox(&id).ok_or_else(|| format!("pod sandbox {id} not found"))?;
        if s.record.host_network {
            return Ok(Target { netns: None });
        }
        match &s.record.netns {
            Some(p) => Ok(Target { netns: Some(p.clone()) }),
            None => Err(format!("pod sandbox {id} has no network namespace")),
        }
    }
}

fn connect_here(port: u16) -> std::io::Result<std::net::TcpStream> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => Ok(s),
        Err(e) => std::net::TcpStream::connect_timeout(&SocketAddr::from((Ipv6Addr::LOCALHOST, port)), CONNECT_TIMEOUT).map_err(|_| e),
    }
}

/// A connection to `port` on the target's loopback.
pub async fn connect(t: &Target, port: u16) -> std::io::Result<TcpStream> {
    let Some(ns) = t.netns.clone() else {
        return TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    // setns changes the calling thread only: a thread of its own, which ends right after.
    std::thread::Builder::new().name("berth-portfwd".into()).spawn(move || {
        let r = (|| {
            let f = std::fs::File::open(&ns)?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            connect_here(port)
        })();
        let _ = tx.send(r);
    })?;
    let s = rx.await.map_err(|_| std::io::Error::other("the connecting thread died"))??;
    s.set_nonblocking(true)?;
    TcpStream::from_std(s)
}

/// Copy between a TCP connection and the client until both directions are done.
/// `from_client` closes at the client's end of data; `to_client` sends (None = end).
async fn pump(tcp: TcpStream, mut from_client: mpsc::Receiver<Bytes>, to_client: mpsc::Sender<Option<Bytes>>) {
    let (mut rd, mut wr) = tcp.into_split();
    let up = async move {
        while let Some(d) = from_client.recv().await {
            if wr.write_all(&d).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_client.send(Some(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = to_client.send(None).await;
    };
    // The client ending its data does not end ours, nor the other way round; the session
    // ends when the pod's side is done too.
    let up = tokio::spawn(up);
    down.await;
    let _ = tokio::time::timeout(Duration::from_secs(1), up).await;
}

#[derive(Default)]
struct Pair {
    port: u16,
    data: Option<Stream>,
    error: Option<Stream>,
}

/// Port forwarding over a SPDY session (also the WebSocket tunnel's inner protocol).
pub async fn serve_spdy<IO>(target: Target, allowed: Vec<i32>, io: IO, idle: Duration)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (h, mut streams) = conn::start(io, idle);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    while let Some(s) = streams.recv().await {
        let kind = get(&s.headers, "streamtype").unwrap_or("").to_string();
        let port = get(&s.headers, "port").and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
        let req = get(&s.headers, "requestid").map(str::to_string).unwrap_or_else(|| s.id.to_string());
        let Some(port) = port else {
            let _ = h.reset(s.id, RST_PROTOCOL_ERROR).await;
            continue;
        };
        if !matches!(kind.as_str(), "data" | "error") {
            let _ = h.reset(s.id, RST_PROTOCOL_ERROR).await;
            continue;
        }
        if h.reply(s.id).await.is_err() {
            break;
        }
        let p = pairs.entry(req.clone()).or_default();
        p.port = port;
        if kind == "data" {
            p.data = Some(s);
        } else {
            p.error = Some(s);
        }
        if p.data.is_some() && p.error.is_some() {
            let p = pairs.remove(&req).unwrap_or_default();
            let (h, target, allowed) = (h.clone(), target.clone(), allowed.clone());
            tokio::spawn(async move {
                let (data, error) = (p.data.unwrap(), p.error.unwrap());
                let (data_id, error_id) = (data.id, error.id);
                let tcp = if !allowed.is_empty() && !allowed.contains(&(p.port as i32)) {
                    Err(std::io::Error::other(format!("port {} was not requested", p.port)))
                } else {
                    connect(&target, p.port).await
                };
                match tcp {
                    Err(e) => {
                        let msg = format!("error forwarding port {} to pod: {e}", p.port);
                        let _ = h.data(error_id, msg.into()).await;
                    }
                    Ok(tcp) => {
                        let (tx, mut rx) = mpsc::channel::<Option<Bytes>>(16);
                        let hh = h.clone();
                        let sender = tokio::spawn(async move {
                            while let Some(Some(d)) = rx.recv().await {
                                if hh.data(data_id, d).await.is_err() {
                                    break;
                                }
                            }
                        });
                        pump(tcp, data.data, tx).await;
                        let _ = sender.await;
                    }
                }
                let _ = h.close(data_id).await;
                let _ = h.close(error_id).await;
            });
        }
    }
    h.go_away().await;
}

/// The ports of a WebSocket port-forward URL (`?port=80&port=8080` or `?ports=80,8080`).
pub fn query_ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for kv in query.unwrap_or("").split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if k == "port" || k == "ports" {
            for p in v.split([',', '+']).filter(|p| !p.is_empty()) {
                out.push(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid port {p:?}"))?);
            }
        }
    }
    if out.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(out)
}

fn chan(ch: u8, data: &[u8]) -> Message {
    let mut b = BytesMut::with_capacity(data.len() + 1);
    b.put_u8(ch);
    b.put_slice(data);
    Message::Binary(b.freeze())
}

/// Port forwarding with WebSocket channels: 2i data, 2i+1 error for the i-th port.
pub async fn serve_ws_channels<IO>(target: Target, ports: Vec<u16>, ws: WebSocketStream<IO>, idle: Duration)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let mut inputs = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        for ch in [data_ch, err_ch] {
            if sink.send(chan(ch, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
        let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
        inputs.push(in_tx);
        let (out, target) = (out_tx.clone(), target.clone());
        tokio::spawn(async move {
            match connect(&target, port).await {
                Err(e) => {
                    let _ = out.send(chan(err_ch, format!("error forwarding port {port} to pod: {e}").as_bytes())).await;
                }
                Ok(tcp) => {
                    let (tx, mut rx) = mpsc::channel::<Option<Bytes>>(16);
                    let o = out.clone();
                    let fwd = tokio::spawn(async move {
                        while let Some(Some(d)) = rx.recv().await {
                            if o.send(chan(data_ch, &d)).await.is_err() {
                                break;
                            }
                        }
                    });
                    pump(tcp, in_rx, tx).await;
                    let _ = fwd.await;
                }
            }
        });
    }
    drop(out_tx);
    let activity = conn::Activity::new();
    activity.touch();
    let mut inputs: Vec<Option<mpsc::Sender<Bytes>>> = inputs.into_iter().map(Some).collect();
    loop {
        tokio::select! {
            m = stream.next() => {
                activity.touch();
                let data = match m {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                let Some((&ch, rest)) = data.split_first() else { continue };
                // Only data channels carry client bytes; the first message of each is the port.
                if ch % 2 == 0 {
                    if let Some(Some(tx)) = inputs.get((ch / 2) as usize) {
                        if !rest.is_empty() && tx.send(Bytes::copy_from_slice(rest)).await.is_err() {
                            inputs[(ch / 2) as usize] = None;
                        }
                    }
                }
            }
            o = out_rx.recv() => match o {
                Some(m) => {
                    activity.touch();
                    if sink.send(m).await.is_err() {
                        break;
                    }
                }
                // Every port's connection is done.
                None => break,
            },
            _ = conn::idle_expired(&activity, idle) => break,
        }
    }
    let _ = sink.close().await;
}

/// The WebSocket tunnel: the binary messages are a byte stream carrying SPDY.
pub async fn serve_ws_tunnel<IO>(target: Target, allowed: Vec<i32>, ws: WebSocketStream<IO>, idle: Duration)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (inner, outer) = tokio::io::duplex(256 * 1024);
    let (mut sink, mut stream) = ws.split();
    let (mut ord, mut owr) = tokio::io::split(outer);
    let to_ws = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match ord.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    let from_ws = async move {
        while let Some(Ok(m)) = stream.next().await {
            match m {
                Message::Binary(b) if owr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = owr.shutdown().await;
    };
    let session = tokio::spawn(serve_spdy(target, allowed, inner, idle));
    let from = tokio::spawn(from_ws);
    to_ws.await;
    from.abort();
    let _ = session.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_the_query() {
        assert_eq!(query_ports(Some("port=80&port=8080")).unwrap(), vec![80, 8080]);
        assert_eq!(query_ports(Some("ports=80,443")).unwrap(), vec![80, 443]);
        assert!(query_ports(Some("port=0")).is_err());
        assert!(query_ports(Some("port=x")).is_err());
        assert!(query_ports(None).is_err());
    }
}
