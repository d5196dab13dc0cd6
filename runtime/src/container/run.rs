//! `berth run`: create + start, then (unless detached) wait, relay the terminal, forward
//! signals, delete the container and return its exit code.

use super::create::{self, CreateOpts};
use super::{delete, start};
use crate::console;
use crate::error::{Context, Result};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Signals a foreground `run` passes on to the container (SIGCHLD is ours).
pub(crate) const FORWARDED: [Signal; 7] =
    [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGWINCH];

/// `keep` leaves the stopped container for `state` and `delete` instead of deleting it.
pub fn run(opts: &CreateOpts, console_socket: Option<PathBuf>, detach: bool, keep: bool) -> Result<i32> {
    let bundle = crate::spec::load(&opts.bundle)?;
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    if detach {
        let console = console_socket.as_deref().map(console::connect).transpose()?;
        create::create_from(opts, bundle, console)?;
        start::start(&opts.root, &opts.id)?;
        return Ok(0);
    }
    // The init may be a grandchild; as subreaper we get it back when it exits.
    nix::sys::prctl::set_child_subreaper(true).ctx("become subreaper")?;
    let (console, ours) = match (console_socket.as_deref(), terminal) {
        (Some(p), _) => (Some(console::connect(p)?), None),
        (None, true) => {
            let (a, b) = std::os::unix::net::UnixStream::pair().ctx("console socketpair")?;
            (Some(OwnedFd::from(a)), Some(OwnedFd::from(b)))
        }
        (None, false) => (None, None),
    };
    let st = create::create_from(opts, bundle, console)?;
    let relay = ours.map(|sock| console::recv_master(&sock)).transpose();
    let relay = match relay {
        Ok(r) => r,
        Err(e) => {
            let _ = delete::destroy(&opts.root, &st);
            return Err(e);
        }
    };
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    mask.thread_block().ctx("block signals")?;
    let raw_guard = relay.as_ref().map(crate::console::relay);
    if let Err(e) = start::start(&opts.root, &opts.id) {
        let _ = delete::destroy(&opts.root, &st);
        return Err(e);
    }
    let code = wait_forwarding(st.pid, &mask);
    drop(raw_guard);
    let _ = mask.thread_unblock();
    if !keep {
        delete::destroy(&opts.root, &st)?;
    }
    code
}

/// Reaps children until `pid` exits, forwarding signals to it; returns its exit code
/// (128 + signal when killed, as shells report it).
pub(crate) fn wait_forwarding(pid: i32, mask: &SigSet) -> Result<i32> {
    let sfd = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC).ctx("signalfd")?;
    loop {
        if let Some(code) = reap(pid) {
            return Ok(code);
        }
        match sfd.read_signal() {
            Ok(Some(info)) => {
                let sig = info.ssi_signo as i32;
                if sig != libc::SIGCHLD {
                    // Our (reparented) child, not yet reaped.
                    crate::sys::kill(pid, sig);
                }
            }
            Ok(None) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).ctx("read signalfd"),
        }
    }
}

fn reap(init: i32) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == init => return Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() == init => return Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
