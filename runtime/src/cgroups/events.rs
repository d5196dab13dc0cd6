//! Waiting on cgroup notification files (`cgroup.events`, `memory.events`) without sleeps:
//! kernfs wakes `poll(POLLPRI)` on an fd of such a file whenever its content changes, once
//! the fd has read the current content.

use super::fs;
use crate::error::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::io::{Read, Seek};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// An open notification file.
pub struct Watch {
    file: std::fs::File,
    name: String,
}

impl Watch {
    pub fn open(dir: &Path, name: &str) -> Result<Watch> {
        let file = std::fs::File::open(dir.join(name)).with_ctx(|| format!("cgroup {}: open {name}", dir.display()))?;
        Ok(Watch { file, name: name.to_string() })
    }

    /// Re-reads the file (which also re-arms the notification) as key/value pairs.
    pub fn read(&mut self) -> Result<Vec<(String, u64)>> {
        let mut s = String::new();
        self.file.rewind().and_then(|_| self.file.read_to_string(&mut s)).with_ctx(|| format!("read {}", self.name))?;
        Ok(fs::parse_keyed(&s))
    }

    /// The current value of `key`.
    pub fn get(&mut self, key: &str) -> Result<Option<u64>> {
        Ok(fs::keyed(&self.read()?, key))
    }

    pub fn fd(&self) -> PollFd<'_> {
        PollFd::new(self.file.as_fd(), PollFlags::POLLPRI)
    }
}

/// Milliseconds left until `deadline`, as poll takes them.
pub fn poll_timeout(deadline: Instant) -> PollTimeout {
    let ms = deadline.saturating_duration_since(Instant::now()).as_millis().min(i32::MAX as u128) as i32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// Waits until `key` in `dir/cgroup.events` reads `want` (e.g. `frozen 1`, `populated 0`);
/// false after `timeout`.
pub fn wait(dir: &Path, key: &str, want: u64, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut w = Watch::open(dir, "cgroup.events")?;
    loop {
        if fs::keyed(&w.read()?, key) == Some(want) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        match nix::poll::poll(&mut [w.fd()], poll_timeout(deadline)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).ctx("poll cgroup.events"),
        }
    }
}
