//! pidfds: race-free handles on processes we did not necessarily fork.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

pub fn open(pid: i32) -> Option<OwnedFd> {
    crate::sys::pidfd_open(pid)
}

/// Waits until the process behind `pidfd` exits; false on timeout.
pub fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(60_000) as u16;
        let mut fds = [nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Ok(_) if left.is_zero() => return false,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}

/// Sends a signal through a pidfd (no pid-reuse race).
pub fn signal(pidfd: &OwnedFd, sig: i32) -> nix::Result<()> {
    let r = crate::sys::pidfd_send_signal(pidfd.as_fd(), sig);
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}
