//! OOM kills, from the `oom_kill` counter in the container's cgroup v2 `memory.events`,
//! watched with inotify (the kernel signals a change of the file as IN_MODIFY). A host whose
//! cgroup2 hierarchy has no memory controller (a hybrid host) has no such file: nothing is
//! watched there.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

pub struct OomWatch {
    inotify: Inotify,
    events: PathBuf,
    seen: u64,
}

/// The cgroup2 mount: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on a hybrid.
fn cgroup2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|p| nix::sys::statfs::statfs(*p).map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC).unwrap_or(false))
        .map(PathBuf::from)
}

/// The `memory.events` of the cgroup of `pid`, if there is one.
pub fn events_file(pid: i32) -> Option<PathBuf> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = s.lines().find_map(|l| l.strip_prefix("0::"))?;
    let p = cgroup2_root()?.join(rel.trim_start_matches('/')).join("memory.events");
    p.exists().then_some(p)
}

pub fn oom_kills(events: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(events).ok()?;
    s.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok())
}

impl OomWatch {
    pub fn new(pid: i32) -> Option<OomWatch> {
        let events = events_file(pid)?;
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        inotify.add_watch(&events, AddWatchFlags::IN_MODIFY).ok()?;
        // Kills before the watch began belong to an earlier life of this cgroup.
        let seen = oom_kills(&events).unwrap_or(0);
        Some(OomWatch { inotify, events, seen })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Drain the inotify events and say whether the kill counter went up.
    pub fn check(&mut self) -> bool {
        while let Ok(ev) = self.inotify.read_events() {
            if ev.is_empty() {
                break;
            }
        }
        match oom_kills(&self.events) {
            Some(n) if n > self.seen => {
                self.seen = n;
                true
            }
            _ => false,
        }
    }
}

/// Record an OOM kill as conmon does: an empty `oom` file in the persist dir and in the
/// bundle (the CRI server turns it into reason `OOMKilled`).
pub fn record(dirs: &[Option<&Path>]) {
    for d in dirs.iter().flatten() {
        let p = d.join("oom");
        if let Err(e) = File::create(&p) {
            crate::diag::warn(&format!("Failed to write oom file {}: {e}", p.display()));
        }
    }
    crate::diag::info("OOM received");
}
