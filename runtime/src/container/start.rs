//! `berth start`: release the init blocked on the exec fifo.

use super::{require, state_json};
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Kind};
use crate::process::pidfd;
use crate::state::{State, Status};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

pub fn start(root: &Path, id: &str) -> Result<State> {
    let st = State::load(root, id)?;
    require(&st, root, &[Status::Created], "only a created container can be started")?;
    let pfd = pidfd::open(st.pid).ok_or_else(|| Error::Init("container init is gone".into()))?;
    let fifo_path = st.fifo(root);
    // Non-blocking open never hangs; poll then waits for init's byte or its death.
    let fifo =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(&fifo_path).ctx("open exec fifo")?;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN), PollFd::new(pfd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.ctx("wait for container init")?,
        };
        if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
            let mut b = [0u8; 1];
            match (&fifo).read(&mut b) {
                Ok(1) => break,
                Ok(_) | Err(_) if !st.init_alive() => return Err(Error::Init("container init exited before start".into())),
                _ => continue,
            }
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return Err(Error::Init("container init exited before start".into()));
        }
        if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLHUP)) {
            // No writer yet (init not at the fifo): wait a moment rather than spin.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    std::fs::remove_file(&fifo_path).ctx("remove exec fifo")?;
    if let Some(h) = st.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        hooks::run_all_warn(Kind::Poststart, h, &state_json(&st, Status::Running));
    }
    Ok(st)
}

use std::os::unix::fs::OpenOptionsExt;
