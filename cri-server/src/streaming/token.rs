//! Single-use, expiring tokens for the streaming URLs. A token is 32 random bytes
//! (base64url), bound to the request it was made for (verb, container or pod, options):
//! taking it out of the cache consumes it, whatever path it was presented on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_cri::v1 as cri;

/// The most requests waiting for their client at once (kubelet's cache holds as many).
pub const MAX_IN_FLIGHT: usize = 1000;

/// What a token was issued for.
#[derive(Debug, Clone)]
pub enum Pending {
    Exec(cri::ExecRequest),
    Attach(cri::AttachRequest),
    PortForward(cri::PortForwardRequest),
}

impl Pending {
    pub fn verb(&self) -> &'static str {
        match self {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("too many streaming requests are waiting for their client ({MAX_IN_FLIGHT})")]
    Full,
    #[error("the system's random source failed")]
    Random,
}

pub struct Cache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Pending, Instant)>>,
}

impl Cache {
    pub fn new(ttl: Duration) -> Cache {
        Cache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// A fresh token for `p`.
    pub fn insert(&self, p: Pending) -> Result<String, TokenError> {
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw).map_err(|_| TokenError::Random)?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (_, exp)| *exp > now);
        if m.len() >= MAX_IN_FLIGHT {
            return Err(TokenError::Full);
        }
        m.insert(token.clone(), (p, now + self.ttl));
        Ok(token)
    }

    /// The request of `token` if it exists and has not expired; it is gone afterwards.
    pub fn consume(&self, token: &str) -> Option<Pending> {
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (p, exp) = m.remove(token)?;
        (exp > Instant::now()).then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf() -> Pending {
        Pending::PortForward(cri::PortForwardRequest { pod_sandbox_id: "p".into(), port: vec![80] })
    }

    #[test]
    fn single_use() {
        let c = Cache::new(Duration::from_secs(60));
        let t = c.insert(pf()).unwrap();
        assert_eq!(t.len(), 43);
        assert_ne!(t, c.insert(pf()).unwrap());
        assert!(matches!(c.consume(&t), Some(Pending::PortForward(_))));
        assert!(c.consume(&t).is_none());
        assert!(c.consume("nope").is_none());
    }

    #[test]
    fn expires() {
        let c = Cache::new(Duration::from_millis(1));
        let t = c.insert(pf()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.consume(&t).is_none());
    }

    #[test]
    fn bounded() {
        let c = Cache::new(Duration::from_secs(60));
        for _ in 0..MAX_IN_FLIGHT {
            c.insert(pf()).unwrap();
        }
        assert_eq!(c.insert(pf()).unwrap_err(), TokenError::Full);
    }
}
