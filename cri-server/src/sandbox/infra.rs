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

/// Start the init; returns (pid, start time, pinned ns path). In a user-namespaced pod it
/// runs as root of the pod's user namespace, so that the PID namespace it makes belongs to
/// that namespace (whose root can then mount /proc for it).
/// `userns`: the pod's pinned user namespace and its root's host uid and gid.
pub fn start(dir: &Path, userns: Option<(&Path, u32, u32)>) -> io::Result<(i32, u64, PathBuf)> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir)?;
    let mut pidfile = dir.join("infra.pid");
    if let Some((_, uid, gid)) = userns {
        // The pod's root writes its pid file: a directory of its own for that.
        let d = dir.join("infra");
        std::fs::create_dir_all(&d)?;
        std::os::unix::fs::chown(&d, Some(uid), Some(gid))?;
        pidfile = d.join("infra.pid");
    }
    let bin = pause_binary();
    let ns = userns.map(|(p, _, _)| std::fs::File::open(p)).transpose()?;
    let mut cmd = std::process::Command::new(&bin);
    if let Some(ns) = &ns {
        crate::sys::join_userns_as_root_on_exec(&mut cmd, ns.as_raw_fd());
    }
    // No environment: it would be readable in /proc/1/environ by the pod's containers.
    let out = cmd
        .env_clear()
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
        // A process we verified by pid and start time.
        crate::sys::kill(pid, libc::SIGKILL);
    }
}
