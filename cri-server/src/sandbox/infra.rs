//! The pod's infra process, for a pod-wide PID namespace only: `berth-pause` (a binary of
//! this workspace, found next to berth-cri or on PATH) becomes the namespace's init, and its
//! `/proc/<pid>/ns/pid` is pinned under the sandbox's `ns/` for the containers to join.

use nix::mount::{mount, MsFlags};
use std::io;
use std::path::{Path, PathBuf};

pub fn pause_binary() -> PathBuf {
    if let Some(p) = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("berth-pause"))).filter(|p| p.is_file()) {
        return p;
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("berth-pause")).find(|p| p.is_file()))
        .unwrap_or_else(|| "/usr/local/bin/berth-pause".into())
}

/// Start the init; returns (pid, start time, pinned ns path).
pub fn start(dir: &Path) -> io::Result<(i32, u64, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let pidfile = dir.join("infra.pid");
    let bin = pause_binary();
    let out = std::process::Command::new(&bin)
        .arg("--pidfile")
        .arg(&pidfile)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(|e| io::Error::other(format!("{}: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(io::Error::other(format!("{}: {}", bin.display(), String::from_utf8_lossy(&out.stderr).trim())));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)?.trim().parse().map_err(|_| io::Error::other("bad infra pid file"))?;
    let start = crate::container::record::start_time(pid).ok_or_else(|| io::Error::other("the pod's infra process is gone"))?;
    let pin = dir.join("pid");
    let r = std::fs::File::create(&pin).and_then(|_| {
        mount(Some(format!("/proc/{pid}/ns/pid").as_str()), &pin, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(io::Error::from)
    });
    if let Err(e) = r {
        stop(pid, start);
        return Err(e);
    }
    Ok((pid, start, pin))
}

/// End the init (only if `pid` is still the process we started).
pub fn stop(pid: i32, start: u64) {
    if pid > 0 && crate::container::record::start_time(pid) == Some(start) {
        // SAFETY: signalling a process we verified by pid and start time.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
