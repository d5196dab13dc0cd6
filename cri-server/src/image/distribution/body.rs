//! Reading registry response bodies: bounded before they are buffered, every wait for data
//! bounded by the idle-read timeout, and at most a short excerpt of a body ever quoted in an
//! error or the log.

use std::future::Future;
use std::time::Duration;

/// Longest excerpt of a registry's body quoted in an error message (and so in the log).
pub const EXCERPT: usize = 200;

/// A body being buffered that may not grow past `limit` bytes.
#[derive(Debug)]
pub struct Bounded {
    buf: Vec<u8>,
    limit: u64,
}

/// The body is (or announces to be) larger than the limit.
#[derive(Debug, PartialEq, Eq)]
pub struct Exceeded;

impl Bounded {
    /// Refuses at once a body whose Content-Length already exceeds the limit. The length is
    /// not trusted for allocation beyond a small start.
    pub fn new(limit: u64, content_length: Option<u64>) -> Result<Bounded, Exceeded> {
        if content_length.is_some_and(|l| l > limit) {
            return Err(Exceeded);
        }
        let start = content_length.unwrap_or(0).min(limit).min(64 << 10);
        Ok(Bounded { buf: Vec::with_capacity(start as usize), limit })
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Exceeded> {
        if self.buf.len() as u64 + chunk.len() as u64 > self.limit {
            return Err(Exceeded);
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

/// Waiting for the registry took longer than the idle-read timeout.
#[derive(Debug)]
pub struct Idle;

/// Awaits `f`, giving up after `idle` (no limit when `None`).
pub async fn within<T>(idle: Option<Duration>, f: impl Future<Output = T>) -> Result<T, Idle> {
    match idle {
        Some(d) => tokio::time::timeout(d, f).await.map_err(|_| Idle),
        None => Ok(f.await),
    }
}

/// The first bytes of a body as printable text: control characters escaped, cut at
/// `EXCERPT` bytes with the full length noted.
pub fn excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(EXCERPT)];
    let mut s: String = String::from_utf8_lossy(head)
        .chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect();
    if body.len() > EXCERPT {
        s.push_str(&format!("… ({} bytes)", body.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_refuses_past_the_limit() {
        let mut b = Bounded::new(10, None).unwrap();
        b.push(b"0123456789").unwrap();
        assert_eq!(b.push(b"x"), Err(Exceeded));
        assert_eq!(b.into_inner(), b"0123456789");
        let mut b = Bounded::new(10, Some(4)).unwrap();
        b.push(b"abcd").unwrap();
        assert_eq!(b.push(b"0123456789"), Err(Exceeded), "a single large chunk is refused too");
    }

    #[test]
    fn bounded_refuses_a_large_content_length_before_reading() {
        assert_eq!(Bounded::new(10, Some(11)).unwrap_err(), Exceeded);
        // A huge announced length never becomes an allocation.
        let b = Bounded::new(u64::MAX, Some(u64::MAX)).unwrap();
        assert!(b.buf.capacity() <= 64 << 10);
    }

    #[test]
    fn excerpt_is_short_and_printable() {
        assert_eq!(excerpt(b"not found\n"), "not found\\n");
        let long = vec![b'a'; 10_000];
        let e = excerpt(&long);
        assert!(e.len() < EXCERPT + 40, "{e}");
        assert!(e.ends_with("(10000 bytes)"), "{e}");
        assert_eq!(excerpt(b"\x1b[2Jx"), "\\u{1b}[2Jx");
    }

    #[tokio::test]
    async fn within_times_out() {
        let r = within(Some(Duration::from_millis(10)), std::future::pending::<()>()).await;
        assert!(r.is_err());
        assert_eq!(within(None, async { 5 }).await.unwrap(), 5);
        assert_eq!(within(Some(Duration::from_secs(5)), async { 6 }).await.unwrap(), 6);
    }
}
