//! Handing a notification listener to the seccomp agent at `listenerPath`.
//!
//! The runtime spec's "container process state": one connection per listener, a JSON
//! payload `{ociVersion, fds: ["seccompFd"], pid, metadata, state}` with the listener fd in
//! the same sendmsg as SCM_RIGHTS, then the connection is closed.
//!
//! The init installs the filter and passes the listener to `berth create` over the sync
//! socket; `berth create` (not subject to the filter) connects to the agent. This is
//! runc's split too: after the filter is in place the init may only make the few syscalls
//! the profile lets through without an agent.

use super::Listener;
use crate::error::{Context, Error, Result};
use nix::sys::socket::{connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The container process state for a listener of process `pid`; `state` is the
/// container's state JSON (`berth state`'s shape).
pub fn process_state(listener: &Listener, pid: i32, state: &[u8]) -> Result<Vec<u8>> {
    let state: serde_json::Value = serde_json::from_slice(state).map_err(|e| Error::Init(format!("container state is not JSON: {e}")))?;
    let mut v = serde_json::json!({
        "ociVersion": state.get("ociVersion").cloned().unwrap_or_else(|| crate::state::OCI_VERSION.into()),
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = &listener.metadata {
        v["metadata"] = m.as_str().into();
    }
    Ok(serde_json::to_vec(&v).expect("state serializes"))
}

/// Connects to the agent and sends the container process state with `fd`.
pub fn send(listener: &Listener, pid: i32, state: &[u8], fd: BorrowedFd) -> Result<()> {
    let what = || format!("seccomp agent {}", listener.path.display());
    let payload = process_state(listener, pid, state)?;
    let sock = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).with_ctx(what)?;
    let addr = UnixAddr::new(&listener.path).with_ctx(what)?;
    connect(sock.as_raw_fd(), &addr).with_ctx(|| format!("connect to {}", what()))?;
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let mut sent = 0;
    while sent < payload.len() {
        let iov = [IoSlice::new(&payload[sent..])];
        // The fd goes with the first part only (the spec's rule for split sends).
        let c: &[ControlMessage] = if sent == 0 { &cmsg } else { &[] };
        match sendmsg::<()>(sock.as_raw_fd(), &iov, c, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => sent += r.with_ctx(|| format!("send to {}", what()))?,
        }
    }
    Ok(())
}
