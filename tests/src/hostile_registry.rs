//! A registry of the tests' own that misbehaves on purpose: a small HTTP/1.1 server on
//! 127.0.0.1 whose answers the test sets per path — huge or endless bodies (generated while
//! sent, never held in memory), trickles, stalls, auth challenges — and that records every
//! request and every connection the client closed, so tests wait on those events.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::registry::{compress, layer_tar, sha256, Comp, Entry};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Clone)]
pub enum Body {
    /// Sent with a Content-Length.
    Bytes(Vec<u8>),
    /// Sent with chunked transfer encoding (no length announced).
    Chunked(Vec<u8>),
    /// `len` copies of `byte`, generated while sent; announced with a Content-Length unless
    /// `chunked`.
    Fill { len: u64, byte: u8, chunked: bool },
    /// `data` (Content-Length announced), one byte per `every`.
    Trickle { data: Vec<u8>, every: Duration },
    /// The headers (announcing `len` bytes), then nothing until the client goes away.
    Stall { len: u64 },
    /// Not even the headers: the request is read and never answered.
    Silent,
}

#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: Body) -> Reply {
        Reply { status, headers: vec![("Content-Type".into(), content_type.into())], body }
    }
    pub fn ok(content_type: &str, data: Vec<u8>) -> Reply {
        Reply::new(200, content_type, Body::Bytes(data))
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

#[derive(Default)]
struct State {
    /// Answers per path, used in turn; the last one repeats.
    routes: Mutex<HashMap<String, (Vec<Reply>, usize)>>,
    /// `GET <path>` of every request, in order.
    requests: Mutex<Vec<String>>,
    /// Paths whose connection the client closed while being answered slowly.
    closed: Mutex<Vec<String>>,
    /// Guards `changed`; held while a waiter checks, so no event is missed.
    events: Mutex<()>,
    changed: Condvar,
    stop: AtomicBool,
}

pub struct HostileRegistry {
    pub port: u16,
    state: Arc<State>,
}

impl HostileRegistry {
    pub fn start() -> HostileRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let st = st.clone();
                    std::thread::spawn(move || serve(c, &st));
                }
            }
        });
        HostileRegistry { port, state }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Answers for `path`, in turn (the last one repeats).
    pub fn route(&self, path: &str, replies: Vec<Reply>) {
        self.state.routes.lock().unwrap().insert(path.into(), (replies, 0));
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until a request line containing `needle` arrived.
    pub fn wait_request(&self, needle: &str, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.requests.lock().unwrap().iter().any(|r| r.contains(needle)))
    }

    /// Waits until the client closed the connection answering `path` slowly.
    pub fn wait_closed(&self, path: &str, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.closed.lock().unwrap().iter().any(|p| p == path))
    }

    fn wait(&self, timeout: Duration, ok: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.state.events.lock().unwrap();
        loop {
            if ok(&self.state) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self.state.changed.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Serves `img` as `<repo>:<tag>` (and by digest).
    pub fn serve_image(&self, repo: &str, tag: &str, img: &TestImage) {
        let m = Reply::ok(OCI_MANIFEST, img.manifest.clone());
        self.route(&format!("/v2/{repo}/manifests/{tag}"), vec![m.clone()]);
        self.route(&format!("/v2/{repo}/manifests/{}", sha256(&img.manifest)), vec![m]);
        self.route(&format!("/v2/{repo}/blobs/{}", sha256(&img.config)), vec![Reply::ok("application/octet-stream", img.config.clone())]);
        for l in &img.layers {
            self.route(&format!("/v2/{repo}/blobs/{}", sha256(l)), vec![Reply::ok("application/octet-stream", l.clone())]);
        }
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn notify(st: &State) {
    let _g = st.events.lock().unwrap();
    st.changed.notify_all();
}

fn serve(conn: TcpStream, st: &State) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("").to_string();
        st.requests.lock().unwrap().push(format!("{method} {target}"));
        notify(st);
        let reply = {
            let mut routes = st.routes.lock().unwrap();
            match routes.get_mut(&path) {
                Some((replies, n)) => {
                    let r = replies[(*n).min(replies.len() - 1)].clone();
                    *n += 1;
                    r
                }
                None if path == "/v2/" => Reply::ok("application/json", b"{}".to_vec()),
                None => {
                    Reply::new(404, "application/json", Body::Bytes(br#"{"errors":[{"code":"NOT_FOUND","message":"not here"}]}"#.to_vec()))
                }
            }
        };
        if !answer(&mut conn, &mut reader, &reply, &path, st) {
            return;
        }
    }
}

/// Sends one reply; `false` when the connection is done.
fn answer(conn: &mut TcpStream, reader: &mut BufReader<TcpStream>, r: &Reply, path: &str, st: &State) -> bool {
    let closed = |st: &State| {
        st.closed.lock().unwrap().push(path.to_string());
        notify(st);
        false
    };
    let (len, chunked) = match &r.body {
        Body::Silent => {
            // Until the client gives up.
            let _ = reader.read(&mut [0u8; 1]);
            return closed(st);
        }
        Body::Bytes(d) => (Some(d.len() as u64), false),
        Body::Chunked(_) => (None, true),
        Body::Fill { len, chunked, .. } => (if *chunked { None } else { Some(*len) }, *chunked),
        Body::Trickle { data, .. } => (Some(data.len() as u64), false),
        Body::Stall { len } => (Some(*len), false),
    };
    let mut head = format!("HTTP/1.1 {} X\r\n", r.status);
    for (k, v) in &r.headers {
        head += &format!("{k}: {v}\r\n");
    }
    match len {
        Some(l) => head += &format!("Content-Length: {l}\r\n"),
        None if chunked => head += "Transfer-Encoding: chunked\r\n",
        None => {}
    }
    head += "\r\n";
    if conn.write_all(head.as_bytes()).is_err() {
        return closed(st);
    }
    let send = |conn: &mut TcpStream, data: &[u8]| -> bool {
        if chunked {
            conn.write_all(format!("{:x}\r\n", data.len()).as_bytes()).is_ok()
                && conn.write_all(data).is_ok()
                && conn.write_all(b"\r\n").is_ok()
        } else {
            conn.write_all(data).is_ok()
        }
    };
    match &r.body {
        Body::Bytes(d) | Body::Chunked(d) => {
            if !d.is_empty() && !send(conn, d) {
                return closed(st);
            }
        }
        Body::Fill { len, byte, .. } => {
            let buf = vec![*byte; 64 << 10];
            let mut left = *len;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                if !send(conn, &buf[..n]) {
                    return closed(st);
                }
                left -= n as u64;
            }
        }
        Body::Trickle { data, every } => {
            for b in data {
                if !send(conn, std::slice::from_ref(b)) {
                    return closed(st);
                }
                // Waiting for the next byte doubles as noticing the client leave.
                let _ = conn.set_read_timeout(Some(*every));
                let mut one = [0u8; 1];
                match reader.read(&mut one) {
                    Ok(0) => return closed(st),
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    _ => return closed(st),
                }
            }
            let _ = conn.set_read_timeout(None);
        }
        Body::Stall { .. } => {
            let _ = reader.read(&mut [0u8; 1]);
            return closed(st);
        }
        Body::Silent => unreachable!(),
    }
    if chunked && conn.write_all(b"0\r\n\r\n").is_err() {
        return closed(st);
    }
    let _ = conn.flush();
    true
}

/// A small valid single-layer image, and its parts.
#[derive(Clone)]
pub struct TestImage {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
}

impl TestImage {
    /// One gzip layer holding `file` with `content`.
    pub fn new(file: &'static str, content: &[u8]) -> TestImage {
        let tar = layer_tar(&[Entry::File(file, content.to_vec())]);
        let (blob, mt) = compress(&tar, Comp::Gzip);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
        }))
        .unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": mt, "digest": sha256(&blob), "size": blob.len()}],
        });
        TestImage { manifest: serde_json::to_vec(&manifest).unwrap(), config, layers: vec![blob] }
    }

    pub fn manifest_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.manifest).unwrap()
    }

    /// This image with its manifest replaced.
    pub fn with_manifest(&self, m: &serde_json::Value) -> TestImage {
        TestImage { manifest: serde_json::to_vec(m).unwrap(), ..self.clone() }
    }
}
