//! Running host tools (podman, ctr, ...) from tests: bounded waits on process exit, output
//! captured to files, and finding the processes a client left behind.
//!
//! Exit is waited for with a pidfd (`pidfd_open` + `poll`), so a test wakes the moment a
//! tool exits instead of polling. Output goes to files, never pipes: a daemon the tool leaves
//! running (conmon, a containerd shim) may inherit stdout and would keep a pipe open forever.

use crate::runtime::Out;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Panic unless every tool is on PATH (the message names the package script).
pub fn require_tools(tools: &[&str]) {
    for tool in tools {
        let found = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false);
        assert!(found, "{tool} is not installed (scripts/deps.sh installs it)");
    }
}

/// A pidfd for `pid` (kernel 5.3+).
pub fn pidfd(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is owned by the caller.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Wait until the process behind `fd` exits or `timeout` passes; true if it exited.
pub fn wait_pidfd(fd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if r > 0 {
            return true;
        }
        if r == 0 || left.is_zero() {
            return false;
        }
        // EINTR: retry until the deadline.
    }
}

/// Wait for a child with a deadline; on timeout kill it (SIGKILL) and reap it. Returns the
/// status and whether the timeout hit.
pub fn wait_child(child: &mut Child, timeout: Duration) -> (ExitStatus, bool) {
    let fd = pidfd(child.id() as i32).expect("pidfd_open on our child");
    let exited = wait_pidfd(&fd, timeout);
    if !exited {
        let _ = child.kill();
    }
    (child.wait().expect("wait for child"), !exited)
}

/// Run `cmd` (stdin null) with stdout/stderr captured in fresh files under `dir`, killed after
/// `timeout`.
pub fn run_in(dir: &Path, cmd: Command, timeout: Duration) -> Out {
    spawn_in(dir, cmd).wait(timeout)
}

/// A command started by `spawn_in`, still running.
pub struct Running {
    pub child: Child,
    argv: String,
    waited: bool,
    out: PathBuf,
    err: PathBuf,
}

/// Start `cmd` (stdin null) with stdout/stderr going to fresh files under `dir`.
pub fn spawn_in(dir: &Path, mut cmd: Command) -> Running {
    let argv = format!("{:?}", cmd).replace('"', "");
    let n = CALLS.fetch_add(1, Ordering::SeqCst);
    let (out, err) = (dir.join(format!("cmd{n}.out")), dir.join(format!("cmd{n}.err")));
    let create = |p: &PathBuf| fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    cmd.stdin(Stdio::null()).stdout(create(&out)).stderr(create(&err));
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {argv}: {e}"));
    Running { child, argv, waited: false, out, err }
}

impl Running {
    /// Wait for the exit (killing it after `timeout`) and collect its output.
    pub fn wait(mut self, timeout: Duration) -> Out {
        let (status, timed_out) = wait_child(&mut self.child, timeout);
        self.waited = true;
        let read = |p: &PathBuf| {
            let s = String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
            let _ = fs::remove_file(p);
            s
        };
        Out {
            argv: std::mem::take(&mut self.argv),
            code: status.code(),
            signal: status.signal(),
            timed_out,
            stdout: read(&self.out),
            stderr: read(&self.err),
        }
    }
}

impl Drop for Running {
    /// A command the test did not wait for (it failed first): kill and reap it.
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// PIDs (other than ours) whose command line contains `needle` — e.g. the private root of a
/// podman fixture, which every conmon and `podman container cleanup` it started carries.
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut v = vec![];
    let Ok(rd) = fs::read_dir("/proc") else { return v };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if pid == me {
            continue;
        }
        let Ok(raw) = fs::read(e.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            v.push((pid, cmdline.trim().to_string()));
        }
    }
    v
}

/// Wait (up to `timeout`) for every process whose command line contains `needle` to exit;
/// SIGKILL those still there afterwards (they are ours: the needle is a private path or
/// name of the calling fixture). Returns the ones that had to be killed.
pub fn reap_processes_mentioning(needle: &str, timeout: Duration) -> Vec<(i32, String)> {
    let deadline = Instant::now() + timeout;
    for (pid, _) in processes_mentioning(needle) {
        if let Ok(fd) = pidfd(pid) {
            wait_pidfd(&fd, deadline.saturating_duration_since(Instant::now()));
        }
    }
    let left = processes_mentioning(needle);
    for (pid, _) in &left {
        // SAFETY: signalling, by pid, a process that carries our private path.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    left
}

/// Poll `cond` every 50 ms until it holds or `timeout` passes (for states no event reports).
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
