//! A small synchronous D-Bus client: just what the systemd driver needs (SASL EXTERNAL,
//! method calls whose arguments are strings, booleans and `a(sv)` property lists, replies,
//! errors and systemd's `JobRemoved` signal).
//!
//! Why not a crate: `zbus` runs its own executor thread even behind its blocking API, and
//! berth's create path forks right after talking to systemd (a second thread there is a
//! hazard, and a cost on every create); `rustbus` is synchronous but pulls a second,
//! older `nix` and a proc-macro crate into the build. The protocol subset used here is
//! small and fixed, and every byte of it is covered by the unit tests below.
//!
//! Messages are written little-endian; replies are read in either byte order.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// systemd's own socket: only root may connect, and it works without a bus daemon (the VM
/// bed has none, minimal nodes may not either). Signals reach every client unconditionally.
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";
pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
const DEST: &str = "org.freedesktop.systemd1";
/// The spec's limit for one message.
const MAX_MESSAGE: usize = 128 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("cannot connect to systemd ({private}: {p}; {bus}: {b})", private = PRIVATE_SOCKET, bus = SYSTEM_BUS)]
    Connect { p: std::io::Error, b: std::io::Error },
    #[error("d-bus authentication failed: server said {0:?}")]
    Auth(String),
    #[error("d-bus i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("d-bus protocol: {0}")]
    Protocol(String),
    /// An error reply: `name` is the D-Bus error name (e.g. org.freedesktop.systemd1.UnitExists).
    #[error("{method}: {message} ({name})")]
    Remote { method: String, name: String, message: String },
    #[error("no answer from systemd within {0}s")]
    Timeout(u64),
}

type Result<T> = std::result::Result<T, DbusError>;

/// A property value (the `v` of `a(sv)`), in the types systemd's properties use.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    U64(u64),
    Str(String),
    Strs(Vec<String>),
    U32s(Vec<u32>),
    Bytes(Vec<u8>),
}

impl Value {
    fn signature(&self) -> &'static str {
        match self {
            Value::Bool(_) => "b",
            Value::U64(_) => "t",
            Value::Str(_) => "s",
            Value::Strs(_) => "as",
            Value::U32s(_) => "au",
            Value::Bytes(_) => "ay",
        }
    }
}

pub type Props = Vec<(String, Value)>;

/// Marshalling buffer; offsets count from the message start (the body starts 8-aligned,
/// so a body built on its own aligns the same).
#[derive(Default)]
pub struct Buf(pub Vec<u8>);

impl Buf {
    fn pad(&mut self, align: usize) {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.pad(4);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.pad(8);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bool(&mut self, v: bool) {
        self.u32(v as u32);
    }
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    /// An array: the length excludes the padding between it and the first element.
    fn array(&mut self, elem_align: usize, f: impl FnOnce(&mut Self)) {
        self.pad(4);
        let at = self.0.len();
        self.u32(0);
        self.pad(elem_align);
        let start = self.0.len();
        f(self);
        let n = (self.0.len() - start) as u32;
        self.0[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }
    fn value(&mut self, v: &Value) {
        self.sig(v.signature());
        match v {
            Value::Bool(b) => self.bool(*b),
            Value::U64(n) => self.u64(*n),
            Value::Str(s) => self.str(s),
            Value::Strs(l) => self.array(4, |b| l.iter().for_each(|s| b.str(s))),
            Value::U32s(l) => self.array(4, |b| l.iter().for_each(|n| b.u32(*n))),
            Value::Bytes(l) => self.array(1, |b| b.0.extend_from_slice(l)),
        }
    }
    /// `a(sv)`
    pub fn props(&mut self, props: &[(String, Value)]) {
        self.array(8, |b| {
            for (k, v) in props {
                b.pad(8);
                b.str(k);
                b.value(v);
            }
        });
    }
    /// An empty array of structs (`a(sa(sv))`'s aux units, say).
    pub fn empty_struct_array(&mut self) {
        self.array(8, |_| {});
    }
}

/// Reader over one message's bytes.
struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
    big: bool,
}

impl<'a> Rd<'a> {
    fn need(&self, n: usize) -> Result<()> {
        if self.pos + n > self.b.len() {
            return Err(DbusError::Protocol("message truncated".into()));
        }
        Ok(())
    }
    fn align(&mut self, a: usize) -> Result<()> {
        let p = self.pos.div_ceil(a) * a;
        self.need(p - self.pos)?;
        self.pos = p;
        Ok(())
    }
    fn u8(&mut self) -> Result<u8> {
        self.need(1)?;
        self.pos += 1;
        Ok(self.b[self.pos - 1])
    }
    fn u32(&mut self) -> Result<u32> {
        self.align(4)?;
        self.need(4)?;
        let raw: [u8; 4] = self.b[self.pos..self.pos + 4].try_into().expect("4 bytes");
        self.pos += 4;
        Ok(if self.big { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) })
    }
    fn bytes_nul(&mut self, n: usize) -> Result<String> {
        self.need(n + 1)?;
        let s = String::from_utf8_lossy(&self.b[self.pos..self.pos + n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
    fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        self.bytes_nul(n)
    }
    fn sig(&mut self) -> Result<String> {
        let n = self.u8()? as usize;
        self.bytes_nul(n)
    }
}

/// A received message (only the parts the driver looks at).
#[derive(Debug, Default)]
pub struct Msg {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub path: String,
    pub interface: String,
    pub member: String,
    pub error_name: String,
    pub signature: String,
    pub body: Vec<u8>,
    big: bool,
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

impl Msg {
    /// The leading strings/object paths/uint32s of the body, as strings ("uoss" → 4 items).
    pub fn args(&self) -> Result<Vec<String>> {
        let mut r = Rd { b: &self.body, pos: 0, big: self.big };
        let mut out = Vec::new();
        for c in self.signature.chars() {
            match c {
                's' | 'o' => out.push(r.str()?),
                'g' => out.push(r.sig()?),
                'u' => out.push(r.u32()?.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    fn parse(b: &[u8]) -> Result<Msg> {
        let big = match b.first() {
            Some(b'l') => false,
            Some(b'B') => true,
            _ => return Err(DbusError::Protocol("bad byte-order mark".into())),
        };
        let mut r = Rd { b, pos: 1, big };
        let mut m = Msg { kind: r.u8()?, big, ..Default::default() };
        r.pos = 4;
        let body_len = r.u32()? as usize;
        let _serial = r.u32()?;
        let fields_len = r.u32()? as usize;
        let end = r.pos + fields_len;
        while r.pos < end {
            r.align(8)?;
            let code = r.u8()?;
            let sig = r.sig()?;
            let v = match sig.as_str() {
                "s" | "o" => r.str()?,
                "g" => r.sig()?,
                "u" => r.u32()?.to_string(),
                other => return Err(DbusError::Protocol(format!("header field {code} of type {other:?}"))),
            };
            match code {
                1 => m.path = v,
                2 => m.interface = v,
                3 => m.member = v,
                4 => m.error_name = v,
                5 => m.reply_serial = v.parse().ok(),
                8 => m.signature = v,
                _ => {}
            }
        }
        r.align(8)?;
        r.need(body_len)?;
        m.body = b[r.pos..r.pos + body_len].to_vec();
        Ok(m)
    }
}

/// One method call's whole message.
fn call_message(serial: u32, dest: Option<&str>, path: &str, iface: &str, member: &str, sig: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Buf::default();
    m.0.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    m.u32(body.len() as u32);
    m.u32(serial);
    let field = |m: &mut Buf, code: u8, sig: &str, v: &str| {
        m.pad(8);
        m.u8(code);
        m.sig(sig);
        if sig == "g" {
            m.sig(v)
        } else {
            m.str(v)
        }
    };
    m.array(8, |m| {
        field(m, 1, "o", path);
        field(m, 2, "s", iface);
        field(m, 3, "s", member);
        if let Some(d) = dest {
            field(m, 6, "s", d);
        }
        if !sig.is_empty() {
            field(m, 8, "g", sig);
        }
    });
    m.pad(8);
    m.0.extend_from_slice(body);
    m.0
}

/// A connection to systemd's manager.
pub struct Conn {
    sock: UnixStream,
    serial: u32,
    /// Through dbus-daemon (messages need a destination) rather than systemd's own socket.
    via_bus: bool,
    /// Signals that arrived while waiting for a reply.
    signals: VecDeque<Msg>,
}

/// How long one method call may take (D-Bus's customary default).
const CALL_TIMEOUT: Duration = Duration::from_secs(25);

impl Conn {
    /// Connects to systemd's private socket, else to the system bus.
    pub fn connect() -> Result<Conn> {
        match UnixStream::connect(PRIVATE_SOCKET) {
            Ok(s) => Conn::open(s, false),
            Err(p) => match UnixStream::connect(SYSTEM_BUS) {
                Ok(s) => Conn::open(s, true),
                Err(b) => Err(DbusError::Connect { p, b }),
            },
        }
    }

    fn open(sock: UnixStream, via_bus: bool) -> Result<Conn> {
        sock.set_read_timeout(Some(CALL_TIMEOUT))?;
        let mut c = Conn { sock, serial: 0, via_bus, signals: VecDeque::new() };
        c.auth()?;
        if via_bus {
            c.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "", &[], Some("org.freedesktop.DBus"))?;
            // Subscribe before any job is queued, so its JobRemoved cannot be missed.
            let rule = "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1.Manager',member='JobRemoved'";
            let mut b = Buf::default();
            b.str(rule);
            c.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", &b.0, Some("org.freedesktop.DBus"))?;
        }
        Ok(c)
    }

    /// SASL EXTERNAL with our uid (the kernel vouches for it through SO_PEERCRED).
    fn auth(&mut self) -> Result<()> {
        let uid: String = nix::unistd::geteuid().to_string().bytes().map(|b| format!("{b:02x}")).collect();
        self.sock.write_all(format!("\0AUTH EXTERNAL {uid}\r\n").as_bytes())?;
        // Byte by byte: nothing past the line may be consumed (there is nothing, but the
        // stream is ours to frame).
        let mut line = Vec::new();
        let mut c = [0u8; 1];
        while !line.ends_with(b"\r\n") && line.len() < 512 {
            if self.sock.read(&mut c)? == 0 {
                break;
            }
            line.push(c[0]);
        }
        let line = String::from_utf8_lossy(&line).trim().to_string();
        if !line.starts_with("OK ") {
            return Err(DbusError::Auth(line));
        }
        self.sock.write_all(b"BEGIN\r\n")?;
        Ok(())
    }

    fn read_msg(&mut self, deadline: Instant) -> Result<Msg> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DbusError::Timeout(CALL_TIMEOUT.as_secs()));
        }
        self.sock.set_read_timeout(Some(left))?;
        let mut head = [0u8; 16];
        self.read_exact(&mut head, deadline)?;
        let big = head[0] == b'B';
        let word = |i: usize| {
            let raw: [u8; 4] = head[i..i + 4].try_into().expect("4 bytes");
            (if big { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) }) as usize
        };
        let (body, fields) = (word(4), word(12));
        let total = (16 + fields).div_ceil(8) * 8 + body;
        if total > MAX_MESSAGE {
            return Err(DbusError::Protocol(format!("message of {total} bytes")));
        }
        let mut all = head.to_vec();
        all.resize(total, 0);
        self.read_exact(&mut all[16..], deadline)?;
        Msg::parse(&all)
    }

    fn read_exact(&mut self, buf: &mut [u8], deadline: Instant) -> Result<()> {
        match self.sock.read_exact(buf) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) || Instant::now() >= deadline => {
                Err(DbusError::Timeout(CALL_TIMEOUT.as_secs()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Calls a method; returns the reply, or the error reply as [`DbusError::Remote`].
    pub fn call(&mut self, path: &str, iface: &str, member: &str, sig: &str, body: &[u8], dest: Option<&str>) -> Result<Msg> {
        self.serial += 1;
        let serial = self.serial;
        let dest = dest.or(self.via_bus.then_some(DEST));
        self.sock.write_all(&call_message(serial, dest, path, iface, member, sig, body))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let m = self.read_msg(deadline)?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m),
                ERROR if m.reply_serial == Some(serial) => {
                    let message = m.args().ok().and_then(|a| a.into_iter().next()).unwrap_or_default();
                    return Err(DbusError::Remote { method: member.into(), name: m.error_name, message });
                }
                SIGNAL => self.signals.push_back(m),
                _ => {}
            }
        }
    }

    /// Calls a method of systemd's manager object.
    pub fn manager(&mut self, member: &str, sig: &str, body: &[u8]) -> Result<Msg> {
        self.call("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", member, sig, body, None)
    }

    /// Waits for `JobRemoved` of `job` (an object path); returns its result ("done",
    /// "failed", "canceled", "timeout", "dependency", "skipped"), or None after `timeout`.
    pub fn wait_job(&mut self, job: &str, timeout: Duration) -> Result<Option<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = match self.signals.pop_front() {
                Some(m) => m,
                None => match self.read_msg(deadline) {
                    Ok(m) => m,
                    Err(DbusError::Timeout(_)) => return Ok(None),
                    Err(e) => return Err(e),
                },
            };
            if m.kind == SIGNAL && m.member == "JobRemoved" && m.signature == "uoss" {
                let a = m.args()?;
                if a.get(1).map(String::as_str) == Some(job) {
                    return Ok(a.get(3).cloned());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marshals_properties() {
        let mut b = Buf::default();
        b.str("a.scope");
        b.props(&[("Delegate".into(), Value::Bool(true)), ("PIDs".into(), Value::U32s(vec![7]))]);
        let want: Vec<u8> = [
            &[7, 0, 0, 0][..],
            b"a.scope\0",  // s (ends at 12)
            &[0, 0, 0, 0], // array length at 12 (patched below)
            // struct 1 at 16
            &[8, 0, 0, 0],
            b"Delegate\0",
            &[1],
            b"b\0",
            &[1, 0, 0, 0],
            &[0, 0, 0, 0],
            // struct 2 at 40: the au's length is 4-aligned at 56
            &[4, 0, 0, 0],
            b"PIDs\0",
            &[2],
            b"au\0",
            &[0, 0, 0],
            &[4, 0, 0, 0],
            &[7, 0, 0, 0],
        ]
        .concat();
        let mut want = want;
        let len = (want.len() - 16) as u32;
        want[12..16].copy_from_slice(&len.to_le_bytes());
        assert_eq!(b.0, want);
    }

    #[test]
    fn bytes_and_u64_align() {
        let mut b = Buf::default();
        b.props(&[("AllowedCPUs".into(), Value::Bytes(vec![3])), ("MemoryMax".into(), Value::U64(1 << 20))]);
        let mut r = Rd { b: &b.0, pos: 0, big: false };
        let _len = r.u32().unwrap();
        r.align(8).unwrap();
        assert_eq!(r.str().unwrap(), "AllowedCPUs");
        assert_eq!(r.sig().unwrap(), "ay");
        assert_eq!(r.u32().unwrap(), 1);
        assert_eq!(r.u8().unwrap(), 3);
        r.align(8).unwrap();
        assert_eq!(r.str().unwrap(), "MemoryMax");
        assert_eq!(r.sig().unwrap(), "t");
        r.align(8).unwrap();
        assert_eq!(u64::from_le_bytes(b.0[r.pos..r.pos + 8].try_into().unwrap()), 1 << 20);
    }

    #[test]
    fn parses_a_signal() {
        // A JobRemoved signal as systemd would send it, built with the call marshaller and
        // the type patched to a signal.
        let mut body = Buf::default();
        body.u32(42);
        body.str("/org/freedesktop/systemd1/job/42");
        body.str("x.scope");
        body.str("done");
        let mut m = call_message(9, None, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "JobRemoved", "uoss", &body.0);
        m[1] = SIGNAL;
        let msg = Msg::parse(&m).unwrap();
        assert_eq!(msg.member, "JobRemoved");
        assert_eq!(msg.args().unwrap(), vec!["42", "/org/freedesktop/systemd1/job/42", "x.scope", "done"]);
        assert!(Msg::parse(&m[..m.len() - 1]).is_err());
    }
}
