//! A SPDY/3.1 client of the tests' own, just enough for remotecommand and port forwarding:
//! SYN_STREAMs whose header blocks are zlib (one stream for the session, sync-flushed; a
//! dictionary is not needed to be understood), data frames, and the server's frames read
//! back. It speaks over a plain upgraded TCP connection, or tunnelled in WebSocket binary
//! messages (`SPDY/3.1+portforward.k8s.io`, what crictl's `--transport websocket`
//! port-forward uses).

use flate2::{Compress, Compression, FlushCompress};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};

pub trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

pub struct Client {
    s: Box<dyn Io>,
    z: Compress,
    /// Data received per stream id.
    pub data: HashMap<u32, Vec<u8>>,
    /// Streams the server finished (FIN on data or reply) or reset.
    pub closed: Vec<u32>,
    pub goaway: bool,
}

/// `http://host:port/path` → (host:port, /path).
fn split(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("http://");
    let (hostport, path) = rest.split_once('/').unwrap();
    (hostport.to_string(), format!("/{path}"))
}

/// A WebSocket connection as a byte stream: each write one binary message, reads from the
/// messages as they come.
struct WsIo {
    ws: tungstenite::WebSocket<TcpStream>,
    pending: Vec<u8>,
}

impl Read for WsIo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            match self.ws.read() {
                Ok(Message::Binary(b)) => self.pending.extend_from_slice(&b),
                Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => return Ok(0),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) => return Err(e),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        let k = buf.len().min(self.pending.len());
        buf[..k].copy_from_slice(&self.pending[..k]);
        self.pending.drain(..k);
        Ok(k)
    }
}

impl Write for WsIo {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.ws.send(Message::Binary(buf.to_vec().into())).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.ws.flush().map_err(|e| std::io::Error::other(e.to_string()))
    }
}

impl Client {
    fn new(s: Box<dyn Io>) -> Client {
        Client { s, z: Compress::new(Compression::default(), true), data: HashMap::new(), closed: Vec::new(), goaway: false }
    }

    /// Upgrade `url` with the given protocol; the status line and headers of the answer.
    pub fn connect(url: &str, proto: &str) -> (Client, String) {
        let (hostport, path) = split(url);
        let mut s = TcpStream::connect(&hostport).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {proto}\r\n\r\n").unwrap();
        // The response head, byte by byte up to the blank line (frames may follow).
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).unwrap_or(0) == 0 {
                break;
            }
            head.push(b[0]);
        }
        (Client::new(Box::new(s)), String::from_utf8_lossy(&head).into_owned())
    }

    /// A remotecommand session: the upgrade (which must be accepted) and one stream per type,
    /// with ids 1, 3, 5, ... in the order given.
    pub fn session(url: &str, proto: &str, streams: &[&str]) -> Client {
        let (mut c, head) = Client::connect(url, proto);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        for (i, t) in streams.iter().enumerate() {
            c.syn_stream(1 + 2 * i as u32, &[("streamtype", t)]);
        }
        c
    }

    /// SPDY tunnelled in a WebSocket upgrade with subprotocol `proto`; Err with the handshake
    /// error when the server refuses it.
    pub fn connect_ws_tunnel(url: &str, proto: &str) -> Result<Client, String> {
        let (hostport, _) = split(url);
        let s = TcpStream::connect(&hostport).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req = url.replace("http://", "ws://").into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", proto.parse().unwrap());
        let (ws, resp) = tungstenite::client(req, s).map_err(|e| e.to_string())?;
        let chosen = resp.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()).unwrap_or("");
        if chosen != proto {
            return Err(format!("server chose subprotocol {chosen:?}"));
        }
        Ok(Client::new(Box::new(WsIo { ws, pending: Vec::new() })))
    }

    pub fn syn_stream(&mut self, id: u32, headers: &[(&str, &str)]) {
        let mut raw = (headers.len() as u32).to_be_bytes().to_vec();
        for (n, v) in headers {
            raw.extend((n.len() as u32).to_be_bytes());
            raw.extend(n.as_bytes());
            raw.extend((v.len() as u32).to_be_bytes());
            raw.extend(v.as_bytes());
        }
        let mut block = Vec::with_capacity(raw.len() + 128);
        self.z.compress_vec(&raw, &mut block, FlushCompress::Sync).unwrap();
        let mut p = id.to_be_bytes().to_vec();
        p.extend([0, 0, 0, 0, 0, 0]);
        p.extend(block);
        let mut f = vec![0x80, 3, 0, 1];
        f.extend(((p.len() as u32) & 0xff_ffff).to_be_bytes());
        f.extend(p);
        self.s.write_all(&f).unwrap();
        self.s.flush().unwrap();
    }

    pub fn data(&mut self, id: u32, data: &[u8], fin: bool) {
        let mut f = id.to_be_bytes().to_vec();
        f.extend((((fin as u32) << 24) | data.len() as u32).to_be_bytes());
        f.extend(data);
        self.s.write_all(&f).unwrap();
        self.s.flush().unwrap();
    }

    /// One frame from the server into `data`/`closed`/`goaway`; false at the end of the
    /// connection.
    fn read_frame(&mut self) -> bool {
        let mut h = [0u8; 8];
        if self.s.read_exact(&mut h).is_err() {
            return false;
        }
        let flags = h[4];
        let len = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
        let mut p = vec![0u8; len];
        if self.s.read_exact(&mut p).is_err() {
            return false;
        }
        if h[0] & 0x80 == 0 {
            let id = u32::from_be_bytes([h[0] & 0x7f, h[1], h[2], h[3]]);
            self.data.entry(id).or_default().extend(p);
            if flags & 1 != 0 {
                self.closed.push(id);
            }
            return true;
        }
        let typ = u16::from_be_bytes([h[2], h[3]]);
        let stream = || u32::from_be_bytes([p[0] & 0x7f, p[1], p[2], p[3]]);
        match typ {
            // SYN_REPLY with FIN, RST_STREAM
            2 if flags & 1 != 0 && p.len() >= 4 => self.closed.push(stream()),
            3 if p.len() >= 4 => self.closed.push(stream()),
            7 => {
                self.goaway = true;
                return false;
            }
            _ => {}
        }
        true
    }

    /// Frames until `done` holds (true) or the session ends or `within` passes (false).
    pub fn read_until(&mut self, within: Duration, mut done: impl FnMut(&Client) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while !done(self) {
            if Instant::now() > deadline || !self.read_frame() {
                return done(self);
            }
        }
        true
    }

    /// Data per stream until the session ends (GOAWAY or EOF).
    pub fn read_all(&mut self) -> HashMap<u32, Vec<u8>> {
        while self.read_frame() {}
        std::mem::take(&mut self.data)
    }

    pub fn text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.data.get(&id).map(Vec::as_slice).unwrap_or(&[])).into_owned()
    }
}
