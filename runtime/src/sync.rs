//! The typed channel between `berth create` (the parent) and the processes it clones.
//!
//! A SOCK_SEQPACKET pair: one message a datagram, and EOF when the other side dies, so
//! neither side can wait forever on a dead peer. The parent drives a fixed order:
//! `CgroupJoined` → (`MapIds` ↔ `IdsMapped`) → `InitPid`? → `RunHooks` ↔ `HooksDone` → `Ready`.

use crate::error::{Context, Error, Result};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// parent → child: the child is in the container's cgroup.
    CgroupJoined,
    /// child → parent: write my uid/gid maps (I am in the new user namespace).
    MapIds,
    /// parent → child: maps written.
    IdsMapped,
    /// intermediate → parent: host pid of the container's init (after a second fork).
    InitPid(i32),
    /// init → parent: mounts are done, run prestart and createRuntime hooks.
    RunHooks,
    /// parent → init: hooks ran; carries the state JSON for the container's own hooks.
    HooksDone(String),
    /// init → parent: blocked before execve, waiting for `start`.
    Ready,
    /// child → parent: creation failed.
    Failed(String),
}

#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (parent's end, child's end).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .ctx("create sync socket")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let data = serde_json::to_vec(msg).expect("message serializes");
        loop {
            match send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map(|_| ()).ctx("sync send"),
            }
        }
    }

    /// Receives one message; a peer that died gives an error naming what was awaited.
    pub fn recv(&self, awaiting: &str) -> Result<Msg> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.ctx("sync receive")?,
            }
        };
        if n == 0 {
            return Err(Error::Init(format!("container process exited while berth waited for {awaiting}")));
        }
        serde_json::from_slice(&buf[..n]).map_err(|e| Error::Init(format!("bad sync message: {e}")))
    }

    /// Receives one message, or `None` when every peer closed its end (for an exec'd
    /// process: execve closed it, so it runs).
    pub fn recv_or_eof(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.ctx("sync receive")?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n]).map(Some).map_err(|e| Error::Init(format!("bad sync message: {e}")))
    }

    /// Receives the expected message; `Failed` turns into the child's error.
    pub fn expect(&self, want: &Msg) -> Result<()> {
        match self.recv(&format!("{want:?}"))? {
            m if &m == want => Ok(()),
            Msg::Failed(e) => Err(Error::Init(e)),
            other => Err(Error::Init(format!("sync: expected {want:?}, got {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_eof() {
        let (a, b) = pair().unwrap();
        b.send(&Msg::InitPid(42)).unwrap();
        assert_eq!(a.recv("x").unwrap(), Msg::InitPid(42));
        b.send(&Msg::Failed("boom".into())).unwrap();
        assert_eq!(a.expect(&Msg::Ready).unwrap_err().to_string(), "boom");
        a.send(&Msg::HooksDone(String::new())).unwrap();
        assert!(b.expect(&Msg::RunHooks).is_err());
        drop(b);
        assert!(a.recv("Ready").unwrap_err().to_string().contains("exited"));
    }
}
