//! Kubernetes' remotecommand protocol (exec and attach), transport-neutral parts: the
//! protocol versions, the terminal-size messages of the resize stream, and what the error
//! stream carries at the end (v4 and later: a `metav1.Status` object with the exit code;
//! earlier versions: the error text alone, nothing on success).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// SPDY protocols, best first (`X-Stream-Protocol-Version`).
pub const SPDY_PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
/// WebSocket subprotocols (`Sec-WebSocket-Protocol`), best first.
pub const WS_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];

/// A negotiated protocol version: 1 (`channel.k8s.io`) to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u8);

impl Version {
    pub fn of(name: &str) -> Option<Version> {
        match name {
            "channel.k8s.io" | "" => Some(Version(1)),
            "v2.channel.k8s.io" => Some(Version(2)),
            "v3.channel.k8s.io" => Some(Version(3)),
            "v4.channel.k8s.io" => Some(Version(4)),
            "v5.channel.k8s.io" => Some(Version(5)),
            _ => None,
        }
    }
    /// Whether a resize stream exists (v3 and later).
    pub fn resizes(self) -> bool {
        self.0 >= 3
    }
}

/// The first of the client's protocols (in its order of preference) that we speak.
pub fn negotiate<'a>(client: &[String], ours: &[&'a str]) -> Option<&'a str> {
    client.iter().flat_map(|c| c.split(',')).map(str::trim).find_map(|c| ours.iter().find(|o| **o == c).copied())
}

/// One message of the resize stream (Go's json matches field names without case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct TermSize {
    #[serde(rename = "Width", alias = "width", default)]
    pub width: u16,
    #[serde(rename = "Height", alias = "height", default)]
    pub height: u16,
}

/// Splits the resize stream (JSON objects one after another, in chunks as they come) into
/// sizes; garbage ends the stream.
#[derive(Default)]
pub struct ResizeDecoder {
    buf: Vec<u8>,
}

impl ResizeDecoder {
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<TermSize>, serde_json::Error> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<TermSize>();
        let mut used = 0;
        loop {
            match it.next() {
                Some(Ok(s)) => {
                    out.push(s);
                    used = it.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(e),
                None => {
                    used = it.byte_offset();
                    break;
                }
            }
        }
        self.buf.drain(..used);
        if self.buf.len() > 4096 {
            self.buf.clear();
        }
        Ok(out)
    }
}

/// Output of the process, as the transport should deliver it.
#[derive(Debug)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// What a backend (exec, attach) is given: client input, and where output goes.
pub struct SessionIo {
    /// The client's stdin; the channel closes when the client closes its stdin.
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub resize: Option<mpsc::Receiver<TermSize>>,
    pub out: mpsc::Sender<Output>,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The exec'd process exited with this code.
    Exited(i32),
    /// The attached container's output ended (it exited).
    Ended,
    /// The session could not run.
    Failed(String),
}

/// What the error stream carries for `o` under `v`; None: nothing (pre-v4 success).
pub fn status_message(o: &Outcome, v: Version) -> Option<Vec<u8>> {
    let status = match o {
        Outcome::Exited(0) | Outcome::Ended => {
            if v.0 < 4 {
                return None;
            }
            serde_json::json!({"metadata": {}, "status": "Success"})
        }
        Outcome::Exited(code) => {
            let message = format!("command terminated with non-zero exit code: exit status {code}");
            if v.0 < 4 {
                return Some(message.into_bytes());
            }
            serde_json::json!({
                "metadata": {}, "status": "Failure", "message": message, "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
            })
        }
        Outcome::Failed(m) => {
            let message = format!("error executing command in container: {m}");
            if v.0 < 4 {
                return Some(message.into_bytes());
            }
            serde_json::json!({
                "metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
                "details": {"causes": [{"message": message}]}, "code": 500
            })
        }
    };
    Some(status.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_client() {
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(negotiate(&c(&["v3.channel.k8s.io", "v4.channel.k8s.io"]), SPDY_PROTOCOLS), Some("v3.channel.k8s.io"));
        assert_eq!(negotiate(&c(&["v9.channel.k8s.io, v4.channel.k8s.io"]), SPDY_PROTOCOLS), Some("v4.channel.k8s.io"));
        assert_eq!(negotiate(&c(&["foo"]), SPDY_PROTOCOLS), None);
        assert_eq!(negotiate(&c(&["v5.channel.k8s.io"]), WS_PROTOCOLS), Some("v5.channel.k8s.io"));
        assert_eq!(Version::of("v2.channel.k8s.io"), Some(Version(2)));
        assert!(!Version(2).resizes() && Version(3).resizes());
    }

    #[test]
    fn resize_messages_in_pieces() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.push(br#"{"Width":80,"Hei"#).unwrap(), vec![]);
        assert_eq!(
            d.push(br#"ght":24}{"width":100,"height":40}"#).unwrap(),
            vec![TermSize { width: 80, height: 24 }, TermSize { width: 100, height: 40 }]
        );
        assert!(d.push(b"]]").is_err());
    }

    #[test]
    fn statuses() {
        let v: serde_json::Value = serde_json::from_slice(&status_message(&Outcome::Exited(3), Version(4)).unwrap()).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let ok: serde_json::Value = serde_json::from_slice(&status_message(&Outcome::Exited(0), Version(5)).unwrap()).unwrap();
        assert_eq!(ok["status"], "Success");
        assert_eq!(status_message(&Outcome::Ended, Version(2)), None);
        assert!(String::from_utf8(status_message(&Outcome::Exited(3), Version(1)).unwrap()).unwrap().contains("exit status 3"));
    }
}
