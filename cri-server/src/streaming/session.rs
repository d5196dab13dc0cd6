//! Exec and attach sessions over the two transports: collect the client's streams (SPDY) or
//! channels (WebSocket), run the backend, move the output, write the status, close.

use std::pin::pin;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::remotecommand::{status_message, Outcome, Output, ResizeDecoder, SessionIo, TermSize, Version};
use super::spdy::conn::{self, Activity};
use super::spdy::frame::RST_PROTOCOL_ERROR;
use super::spdy::headers::get;
use super::token::Pending;
use crate::server::CriServer;

/// The streams a request asks for.
#[derive(Debug, Clone, Copy)]
pub struct Wants {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Wants {
    pub fn of(p: &Pending) -> Wants {
        match p {
            Pending::Exec(r) => Wants { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, tty: r.tty },
            Pending::Attach(r) => Wants { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, tty: r.tty },
            Pending::PortForward(_) => Wants { stdin: false, stdout: false, stderr: false, tty: false },
        }
    }
}

pub struct Timeouts {
    pub idle: Duration,
    pub creation: Duration,
}

async fn run_backend(srv: CriServer, p: Pending, io: SessionIo) -> Outcome {
    match p {
        Pending::Exec(r) => srv.stream_exec(r, io).await,
        Pending::Attach(r) => srv.stream_attach(r, io).await,
        Pending::PortForward(_) => Outcome::Failed("not a remote command".into()),
    }
}

fn resize_channel(mut data: mpsc::Receiver<Bytes>) -> mpsc::Receiver<TermSize> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut d = ResizeDecoder::default();
        while let Some(chunk) = data.recv().await {
            let Ok(sizes) = d.push(&chunk) else { return };
            for s in sizes {
                if tx.send(s).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// remotecommand over SPDY.
pub async fn serve_spdy<IO>(srv: CriServer, io: IO, v: Version, p: Pending, t: Timeouts)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let w = Wants::of(&p);
    let (h, mut streams) = conn::start(io, t.idle);
    let expected = 1 + w.stdin as usize + w.stdout as usize + w.stderr as usize + (w.tty && v.resizes()) as usize;
    let (mut err_id, mut out_id, mut errout_id) = (None, None, None);
    let (mut stdin, mut resize) = (None, None);
    let deadline = tokio::time::sleep(t.creation);
    let mut deadline = pin!(deadline);
    let mut got = 0;
    while got < expected {
        let s = tokio::select! {
            s = streams.recv() => match s {
                Some(s) => s,
                None => return,
            },
            _ = &mut deadline => {
                tracing::debug!("streaming: the client did not open its streams in time");
                h.go_away().await;
                return;
            }
        };
        match get(&s.headers, "streamtype").unwrap_or("") {
            "error" => err_id = Some(s.id),
            "stdin" => stdin = Some(s.data),
            "stdout" => out_id = Some(s.id),
            "stderr" => errout_id = Some(s.id),
            "resize" => resize = Some(resize_channel(s.data)),
            other => {
                tracing::debug!(streamtype = other, "streaming: unexpected stream");
                let _ = h.reset(s.id, RST_PROTOCOL_ERROR).await;
                continue;
            }
        }
        if h.reply(s.id).await.is_err() {
            return;
        }
        got += 1;
    }
    let (out_tx, mut out_rx) = mpsc::channel(64);
    let io = SessionIo { stdin: if w.stdin { stdin } else { None }, resize, out: out_tx };
    let mut backend = pin!(run_backend(srv, p, io));
    let mut out_open = true;
    let outcome = loop {
        tokio::select! {
            o = &mut backend => break o,
            o = out_rx.recv(), if out_open => match o {
                Some(o) => send_spdy(&h, o, out_id, errout_id).await,
                None => out_open = false,
            },
            s = streams.recv() => match s {
                // The client is gone: dropping the backend ends the process.
                None => {
                    h.go_away().await;
                    return;
                }
                Some(s) => {
                    let _ = h.reset(s.id, RST_PROTOCOL_ERROR).await;
                }
            },
        }
    };
    while let Some(o) = out_rx.recv().await {
        send_spdy(&h, o, out_id, errout_id).await;
    }
    for id in [out_id, errout_id].into_iter().flatten() {
        let _ = h.close(id).await;
    }
    if let Some(id) = err_id {
        if let Some(m) = status_message(&outcome, v) {
            let _ = h.data(id, m.into()).await;
        }
        let _ = h.close(id).await;
    }
    h.go_away().await;
}

async fn send_spdy(h: &conn::Handle, o: Output, out: Option<u32>, err: Option<u32>) {
    let (id, data) = match o {
        Output::Stdout(d) => (out, d),
        Output::Stderr(d) => (err.or(out), d),
    };
    if let Some(id) = id {
        let _ = h.data(id, data).await;
    }
}

/// WebSocket channel numbers of remotecommand.
const CH_STDIN: u8 = 0;
const CH_STDOUT: u8 = 1;
const CH_STDERR: u8 = 2;
const CH_ERROR: u8 = 3;
const CH_RESIZE: u8 = 4;
/// v5: `[255, channel]` closes the client's side of a channel.
const CH_CLOSE: u8 = 255;

fn chan(ch: u8, data: &[u8]) -> Message {
    let mut b = BytesMut::with_capacity(data.len() + 1);
    b.put_u8(ch);
    b.put_slice(data);
    Message::Binary(b.freeze())
}

/// remotecommand over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`, `channel.k8s.io`).
pub async fn serve_ws<IO>(srv: CriServer, ws: WebSocketStream<IO>, v: Version, p: Pending, t: Timeouts)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let w = Wants::of(&p);
    let (mut sink, mut stream) = ws.split();
    // Tell the client the session is up: an empty message on the lowest channel it reads.
    let first = if w.stdout {
        CH_STDOUT
    } else if w.stderr {
        CH_STDERR
    } else {
        CH_ERROR
    };
    if sink.send(chan(first, &[])).await.is_err() {
        return;
    }
    let activity = Activity::new();
    activity.touch();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(64);
    let (size_tx, size_rx) = mpsc::channel::<TermSize>(16);
    let (gone_tx, mut gone_rx) = tokio::sync::oneshot::channel::<()>();
    // Client messages are read apart from the output, so that a stalled stdin can never
    // hold the output back.
    let reader_activity = activity.clone();
    let reader = tokio::spawn(async move {
        let mut stdin_tx = Some(stdin_tx);
        while let Some(m) = stream.next().await {
            reader_activity.touch();
            let data = match m {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            let Some((&ch, rest)) = data.split_first() else { continue };
            match ch {
                CH_STDIN => {
                    if let Some(tx) = &stdin_tx {
                        if !rest.is_empty() && tx.send(Bytes::copy_from_slice(rest)).await.is_err() {
                            stdin_tx = None;
                        }
                    }
                }
                CH_RESIZE => {
                    if let Ok(s) = serde_json::from_slice::<TermSize>(rest) {
                        let _ = size_tx.send(s).await;
                    }
                }
                CH_CLOSE if v.0 >= 5 && rest.first() == Some(&CH_STDIN) => stdin_tx = None,
                _ => {}
            }
        }
        let _ = gone_tx.send(());
    });
    let (out_tx, mut out_rx) = mpsc::channel(64);
    let io = SessionIo { stdin: w.stdin.then_some(stdin_rx), resize: (w.tty && v.resizes()).then_some(size_rx), out: out_tx };
    let mut backend = pin!(run_backend(srv, p, io));
    let mut out_open = true;
    let outcome = loop {
        tokio::select! {
            o = &mut backend => break o,
            o = out_rx.recv(), if out_open => match o {
                Some(o) => {
                    activity.touch();
                    if sink.send(ws_output(o)).await.is_err() {
                        reader.abort();
                        return;
                    }
                }
                None => out_open = false,
            },
            _ = &mut gone_rx => {
                let _ = sink.close().await;
                return;
            }
            _ = conn::idle_expired(&activity, t.idle) => {
                tracing::debug!("streaming: idle timeout");
                reader.abort();
                let _ = sink.close().await;
                return;
            }
        }
    };
    while let Some(o) = out_rx.recv().await {
        if sink.send(ws_output(o)).await.is_err() {
            reader.abort();
            return;
        }
    }
    if let Some(m) = status_message(&outcome, v) {
        let _ = sink.send(chan(CH_ERROR, &m)).await;
    }
    let _ = sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
    let _ = sink.close().await;
    // Give the client a moment to answer the close, then stop reading.
    let _ = tokio::time::timeout(Duration::from_secs(2), gone_rx).await;
    reader.abort();
}

fn ws_output(o: Output) -> Message {
    match o {
        Output::Stdout(d) => chan(CH_STDOUT, &d),
        Output::Stderr(d) => chan(CH_STDERR, &d),
    }
}
