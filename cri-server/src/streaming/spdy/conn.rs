//! The server side of one SPDY/3.1 session over an upgraded connection: a reader task that
//! turns the client's frames into new streams (with their data as a channel that closes at
//! the client's FIN or reset) and answers pings, and a writer task that owns the header
//! compressor and puts replies, data and resets on the wire in order.
//!
//! Flow control: Kubernetes' SPDY peers (moby/spdystream) neither send nor honour
//! WINDOW_UPDATE, so none is enforced here either; back-pressure comes from TCP and from
//! bounded channels (a slow consumer of one stream pauses the reading of the session).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::frame::{self, Frame};
use super::headers::{Compressor, Decompressor, Headers};

/// A stream the client opened.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    /// The stream's data; closes at the client's FIN, its reset, or the session's end.
    pub data: mpsc::Receiver<Bytes>,
}

#[derive(Debug, thiserror::Error)]
#[error("the SPDY session is closed")]
pub struct Closed;

enum Cmd {
    Reply(u32),
    Data(u32, Bytes, bool),
    Reset(u32, u32),
    Ping(u32),
    GoAway(u32),
}

/// Last time anything moved, for the idle timeout.
pub struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity { base: Instant::now(), last_ms: AtomicU64::new(0) })
    }
    pub fn touch(&self) {
        self.last_ms.store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    /// When the session goes idle (`idle` zero: never).
    pub fn deadline(&self, idle: Duration) -> Option<tokio::time::Instant> {
        if idle.is_zero() {
            return None;
        }
        let last = self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(tokio::time::Instant::from_std(last + idle))
    }
}

/// Wait until `activity` has been idle for `idle` (forever when zero).
pub async fn idle_expired(activity: &Activity, idle: Duration) {
    loop {
        match activity.deadline(idle) {
            None => std::future::pending::<()>().await,
            Some(d) if d <= tokio::time::Instant::now() => return,
            Some(d) => tokio::time::sleep_until(d).await,
        }
    }
}

#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Cmd>,
}

impl Handle {
    async fn cmd(&self, c: Cmd) -> Result<(), Closed> {
        self.tx.send(c).await.map_err(|_| Closed)
    }
    /// Accept stream `id` (an empty SYN_REPLY).
    pub async fn reply(&self, id: u32) -> Result<(), Closed> {
        self.cmd(Cmd::Reply(id)).await
    }
    pub async fn data(&self, id: u32, mut data: Bytes) -> Result<(), Closed> {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(frame::MAX_DATA));
            self.cmd(Cmd::Data(id, chunk, false)).await?;
        }
        Ok(())
    }
    /// Our half of stream `id` is done (an empty data frame with FIN).
    pub async fn close(&self, id: u32) -> Result<(), Closed> {
        self.cmd(Cmd::Data(id, Bytes::new(), true)).await
    }
    pub async fn reset(&self, id: u32, status: u32) -> Result<(), Closed> {
        self.cmd(Cmd::Reset(id, status)).await
    }
    /// End the session: GOAWAY, then the connection is shut down (after what was queued).
    pub async fn go_away(&self) {
        let _ = self.cmd(Cmd::GoAway(frame::GOAWAY_OK)).await;
    }
}

/// Start serving `io`; the receiver yields the streams the client opens and closes when the
/// client is gone (end of connection, GOAWAY, a protocol error, or `idle` without traffic).
pub fn start<IO>(io: IO, idle: Duration) -> (Handle, mpsc::Receiver<Stream>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (tx, rx) = mpsc::channel(256);
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let activity = Activity::new();
    activity.touch();
    let handle = Handle { tx };
    let reader = tokio::spawn(read_loop(rd, handle.clone(), ev_tx, activity.clone(), idle));
    tokio::spawn(write_loop(wr, rx, activity, reader));
    (handle, ev_rx)
}

async fn read_loop<R: AsyncRead + Unpin + Send>(
    mut rd: R,
    h: Handle,
    events: mpsc::Sender<Stream>,
    activity: Arc<Activity>,
    idle: Duration,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut streams: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut dec = Decompressor::default();
    let mut last_seen = 0u32;
    'outer: loop {
        loop {
            let f = match frame::parse(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY: bad frame, closing the session");
                    let _ = h.tx.send(Cmd::GoAway(frame::GOAWAY_PROTOCOL_ERROR)).await;
                    break 'outer;
                }
            };
            activity.touch();
            match f {
                Frame::SynStream { stream, flags, block, .. } => {
                    let headers = match dec.decompress(&block) {
                        Ok(hd) => hd,
                        Err(e) => {
                            tracing::debug!(error = %e, "SPDY: bad header block, closing the session");
                            let _ = h.tx.send(Cmd::GoAway(frame::GOAWAY_PROTOCOL_ERROR)).await;
                            break 'outer;
                        }
                    };
                    // Client streams are odd and increasing.
                    if stream % 2 == 0 || stream <= last_seen {
                        let _ = h.reset(stream, frame::RST_PROTOCOL_ERROR).await;
                        continue;
                    }
                    last_seen = stream;
                    let (dtx, drx) = mpsc::channel(64);
                    if flags & frame::FLAG_FIN == 0 {
                        streams.insert(stream, dtx);
                    }
                    if events.send(Stream { id: stream, headers, data: drx }).await.is_err() {
                        // Nobody takes new streams any more.
                        streams.remove(&stream);
                        let _ = h.reset(stream, frame::RST_REFUSED_STREAM).await;
                    }
                }
                Frame::Data { stream, flags, data } => {
                    if let Some(tx) = streams.get(&stream) {
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            streams.remove(&stream);
                        }
                    }
                    if flags & frame::FLAG_FIN != 0 {
                        streams.remove(&stream);
                    }
                }
                Frame::RstStream { stream, .. } => {
                    streams.remove(&stream);
                }
                Frame::Ping { id } => {
                    // Only the client's (odd) pings are answered; ours would be even.
                    if id % 2 == 1 {
                        let _ = h.tx.send(Cmd::Ping(id)).await;
                    }
                }
                Frame::SynReply { block, .. } | Frame::Headers { block, .. } => {
                    // Inflated only to keep the zlib stream in step.
                    if dec.decompress(&block).is_err() {
                        let _ = h.tx.send(Cmd::GoAway(frame::GOAWAY_PROTOCOL_ERROR)).await;
                        break 'outer;
                    }
                }
                Frame::GoAway { .. } => break 'outer,
                Frame::Settings { .. } | Frame::WindowUpdate { .. } | Frame::Unknown { .. } => {}
            }
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = idle_expired(&activity, idle) => {
                tracing::debug!("SPDY: idle timeout");
                let _ = h.tx.send(Cmd::GoAway(frame::GOAWAY_OK)).await;
                break;
            }
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin + Send>(
    mut wr: W,
    mut rx: mpsc::Receiver<Cmd>,
    activity: Arc<Activity>,
    reader: tokio::task::JoinHandle<()>,
) {
    let mut comp = match Compressor::new() {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut ending = false;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Batch what is queued into one write.
        while let Some(c) = next.take() {
            match c {
                Cmd::Reply(id) => match comp.compress(&Vec::new()) {
                    Ok(block) => frame::encode(&Frame::SynReply { stream: id, flags: 0, block }, &mut out),
                    Err(_) => ending = true,
                },
                Cmd::Data(id, data, fin) => {
                    let flags = if fin { frame::FLAG_FIN } else { 0 };
                    frame::encode(&Frame::Data { stream: id, flags, data }, &mut out)
                }
                Cmd::Reset(id, status) => frame::encode(&Frame::RstStream { stream: id, status }, &mut out),
                Cmd::Ping(id) => frame::encode(&Frame::Ping { id }, &mut out),
                Cmd::GoAway(status) => {
                    frame::encode(&Frame::GoAway { last_good: 0, status }, &mut out);
                    ending = true;
                }
            }
            if ending || out.len() >= 256 * 1024 {
                break;
            }
            next = rx.try_recv().ok();
        }
        if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
            break;
        }
        activity.touch();
        out.clear();
        if ending {
            break;
        }
    }
    let _ = wr.shutdown().await;
    // Nothing the client sends after our GOAWAY matters.
    reader.abort();
}
