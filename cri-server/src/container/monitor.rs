//! berth-mon, from the CRI server's side: one monitor per container, started at
//! CreateContainer (it runs the runtime's `create` and stays with the container), and one per
//! ExecSync (`-e` with a timeout). The pid and exit status come back over a SEQPACKET
//! socketpair in `_OCI_SYNCPIPE`, in conmon's JSON.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("container monitor {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("container monitor reported: {0}")]
    Reported(String),
    #[error("container monitor: no answer within {0:?}")]
    Timeout(Duration),
}

pub struct Launch {
    pub monitor: PathBuf,
    pub runtime: PathBuf,
    /// The runtime's global flags (`--root`, `--systemd-cgroup`).
    pub runtime_args: Vec<std::ffi::OsString>,
    pub id: String,
    pub bundle: PathBuf,
    pub pidfile: PathBuf,
    /// CRIU images to restore from: the monitor runs the runtime's `restore` (conmon's
    /// `--restore`), and the container runs once it answers.
    pub restore: Option<PathBuf>,
    pub monitor_pidfile: PathBuf,
    pub exit_dir: PathBuf,
    pub persist_dir: PathBuf,
    pub log_path: PathBuf,
    pub socket_dir: PathBuf,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub name: String,
}

fn seqpacket_pair() -> std::io::Result<(UnixStream, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two fds we then own.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded: both fds are new and nothing else owns them.
    Ok(unsafe { (UnixStream::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Start `cmd` with the child end of a sync socketpair in `_OCI_SYNCPIPE`, wait for the
/// first process to exit (the monitor detaches), and return our end.
fn spawn_with_sync(mut cmd: Command, what: &str) -> Result<UnixStream, MonitorError> {
    let (ours, theirs) = seqpacket_pair().map_err(|e| MonitorError::Spawn(what.into(), e))?;
    let fd = theirs.as_raw_fd();
    cmd.env("_OCI_SYNCPIPE", fd.to_string()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: only fcntl between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::fcntl(fd, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| MonitorError::Spawn(what.into(), e))?;
    drop(theirs);
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let st = child.wait().map_err(|e| MonitorError::Spawn(what.into(), e))?;
    if !st.success() {
        return Err(MonitorError::Reported(format!("exited with {st}: {}", err.trim())));
    }
    Ok(ours)
}

/// The next message (`{"data": N, "message": …}`) within `timeout`.
fn recv(s: &UnixStream, timeout: Duration) -> Result<(i64, Option<String>), MonitorError> {
    let mut p = libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if r > 0 {
            break;
        }
        if r == 0 || left.is_zero() {
            return Err(MonitorError::Timeout(timeout));
        }
    }
    let mut buf = vec![0u8; 65536];
    // SAFETY: reading into a live buffer.
    let n = unsafe { libc::recv(s.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n <= 0 {
        return Err(MonitorError::Reported("the monitor closed its pipe without a message".into()));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&buf[..n as usize]).map_err(|e| MonitorError::Reported(format!("bad message: {e}")))?;
    let data = v["data"].as_i64().ok_or_else(|| MonitorError::Reported(format!("message without data: {v}")))?;
    Ok((data, v["message"].as_str().map(String::from)))
}

/// Start the container's monitor (which runs the runtime's create) and return the pid of the
/// container's init.
pub fn create(l: &Launch, monitor_path: &std::path::Path) -> Result<i32, MonitorError> {
    let mut c = Command::new(monitor_path);
    c.args(["--api-version", "1", "-c", &l.id, "-u", &l.id, "-n", &l.name])
        .arg("-r")
        .arg(&l.runtime)
        .arg("-b")
        .arg(&l.bundle)
        .arg("-p")
        .arg(&l.pidfile)
        .arg("-P")
        .arg(&l.monitor_pidfile)
        .arg("--exit-dir")
        .arg(&l.exit_dir)
        .arg("--persist-dir")
        .arg(&l.persist_dir)
        .arg("--socket-dir-path")
        .arg(&l.socket_dir)
        .arg("-l")
        .arg(format!("k8s-file:{}", l.log_path.display()))
        .args(["--log-level", "info", "--syslog"]);
    for a in &l.runtime_args {
        c.arg("--runtime-arg").arg(a);
    }
    if let Some(r) = &l.restore {
        c.arg("--restore").arg(r);
    }
    if l.tty {
        c.arg("-t");
    }
    if l.stdin {
        c.arg("-i");
        if !l.stdin_once {
            c.arg("--leave-stdin-open");
        }
    }
    c.current_dir(&l.bundle);
    let s = spawn_with_sync(c, &monitor_path.display().to_string())?;
    let (pid, msg) = recv(&s, Duration::from_secs(120))?;
    if pid <= 0 {
        return Err(MonitorError::Reported(msg.unwrap_or_else(|| "the runtime failed".into())));
    }
    Ok(pid as i32)
}

pub struct ExecOutput {
    pub exit_code: i32,
    pub timed_out: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// kubelet caps exec-sync output at 16 MiB per stream.
pub const EXEC_OUTPUT_MAX: usize = 16 << 20;

/// ExecSync: run `process.json` in container `id` through a monitor, wait (bounded by
/// `timeout`, 0 = none) and collect the output from the monitor's CRI log.
pub fn exec_sync(
    monitor_path: &std::path::Path,
    runtime: &std::path::Path,
    runtime_root: &std::path::Path,
    id: &str,
    work: &std::path::Path,
    process_json: &[u8],
    timeout: i64,
) -> Result<ExecOutput, MonitorError> {
    let io = |e| MonitorError::Spawn("exec work dir".into(), e);
    std::fs::create_dir_all(work).map_err(io)?;
    let spec = work.join("process.json");
    // The process holds the container's environment (secrets): root's alone.
    crate::persist::write_atomic(&spec, process_json).map_err(io)?;
    let log = work.join("exec.log");
    let session = crate::persist::new_id();
    let mut c = Command::new(monitor_path);
    c.args(["--api-version", "1", "-c", id, "-u", &session, "-e"])
        .arg("-r")
        .arg(runtime)
        .arg("-p")
        .arg(work.join("exec.pid"))
        .arg("-P")
        .arg(work.join("monitor.pid"))
        .arg("--exec-process-spec")
        .arg(&spec)
        .arg("-l")
        .arg(format!("k8s-file:{}", log.display()))
        .arg("--runtime-arg")
        .arg("--root")
        .arg("--runtime-arg")
        .arg(runtime_root)
        .args(["--log-level", "error"])
        .current_dir(work);
    if timeout > 0 {
        c.arg("-T").arg(timeout.to_string());
    }
    let s = spawn_with_sync(c, &monitor_path.display().to_string())?;
    let (pid, msg) = recv(&s, Duration::from_secs(120))?;
    if pid <= 0 {
        return Err(MonitorError::Reported(msg.unwrap_or_else(|| "exec failed".into())));
    }
    // The exit status arrives after the process ends (or is killed at the timeout).
    let limit = if timeout > 0 { Duration::from_secs(timeout as u64 + 30) } else { Duration::from_secs(365 * 86400) };
    let (code, msg) = recv(&s, limit)?;
    let timed_out = code == -1 && msg.as_deref() == Some("command timed out");
    let (stdout, stderr) = split_log(&std::fs::read(&log).unwrap_or_default());
    Ok(ExecOutput { exit_code: code as i32, timed_out, stdout, stderr })
}

/// An exec session with a client attached (CRI Exec): the monitor's attach socket, already
/// connected, the exec'd process and the sync socket its exit status will come on.
pub struct AttachedExec {
    pub attach: OwnedFd,
    pub pid: i32,
    pub sync: UnixStream,
}

fn pipe_cloexec() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both fds are new and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A SOCK_SEQPACKET connection to `dir/name`, through /proc/self/fd so that a long `dir`
/// fits in sun_path.
pub fn connect_seqpacket(dir: &std::path::Path, name: &str) -> std::io::Result<OwnedFd> {
    let d = std::fs::File::open(dir)?;
    let path = format!("/proc/self/fd/{}/{name}", d.as_raw_fd());
    // SAFETY: plain socket creation; the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is integers and a byte array: all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "socket path too long"));
    }
    for (i, b) in path.bytes().enumerate() {
        addr.sun_path[i] = b as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + path.len() + 1) as libc::socklen_t;
    // SAFETY: a valid sockaddr_un of `len` bytes.
    if unsafe { libc::connect(sock.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

/// Start an attached exec (`-e --exec-attach`, podman's protocol): the monitor binds its attach
/// socket in `work`, says so on the attach pipe, we connect, and only then let the process
/// run, so none of its output is missed. Returns once the process runs.
pub fn exec_attached(
    monitor_path: &std::path::Path,
    runtime: &std::path::Path,
    runtime_root: &std::path::Path,
    id: &str,
    work: &std::path::Path,
    process_json: &[u8],
    tty: bool,
    stdin: bool,
) -> Result<AttachedExec, MonitorError> {
    let what = monitor_path.display().to_string();
    let io = |e| MonitorError::Spawn("exec work dir".into(), e);
    std::fs::create_dir_all(work).map_err(io)?;
    let spec = work.join("process.json");
    // The process holds the container's environment (secrets): root's alone.
    crate::persist::write_atomic(&spec, process_json).map_err(io)?;
    let session = crate::persist::new_id();
    let mut c = Command::new(monitor_path);
    c.args(["--api-version", "1", "-c", id, "-u", &session, "-e", "--exec-attach", "--full-attach"])
        .arg("-b")
        .arg(work)
        .arg("-r")
        .arg(runtime)
        .arg("-p")
        .arg(work.join("exec.pid"))
        .arg("-P")
        .arg(work.join("monitor.pid"))
        .arg("--exec-process-spec")
        .arg(&spec)
        .args(["-l", "none"])
        .arg("--runtime-arg")
        .arg("--root")
        .arg("--runtime-arg")
        .arg(runtime_root)
        .args(["--log-level", "error"])
        .current_dir(work);
    if tty {
        c.arg("-t");
    }
    if stdin {
        c.arg("-i");
    }
    let sp = |e| MonitorError::Spawn(what.clone(), e);
    let (sync, sync_child) = seqpacket_pair().map_err(sp)?;
    let (attach_pipe, attach_child) = seqpacket_pair().map_err(sp)?;
    let (start_child, start) = pipe_cloexec().map_err(sp)?;
    let fds = [sync_child.as_raw_fd(), attach_child.as_raw_fd(), start_child.as_raw_fd()];
    c.env("_OCI_SYNCPIPE", fds[0].to_string())
        .env("_OCI_ATTACHPIPE", fds[1].to_string())
        .env("_OCI_STARTPIPE", fds[2].to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only fcntl between fork and exec.
    unsafe {
        c.pre_exec(move || {
            for fd in fds {
                libc::fcntl(fd, libc::F_SETFD, 0);
            }
            Ok(())
        });
    }
    let mut child = c.spawn().map_err(sp)?;
    drop((sync_child, attach_child, start_child));
    let mut start = std::fs::File::from(start);
    use std::io::Write;
    // The first start message lets the monitor go on (and detach).
    let _ = start.write_all(b"0");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let st = child.wait().map_err(sp)?;
    if !st.success() {
        return Err(MonitorError::Reported(format!("exited with {st}: {}", err.trim())));
    }
    let attach_pipe = attach_pipe;
    match recv(&attach_pipe, Duration::from_secs(60)) {
        Ok((0, _)) => {}
        Ok((_, msg)) => return Err(MonitorError::Reported(msg.unwrap_or_else(|| "attach failed".into()))),
        // The monitor failed before binding: its reason is on the sync pipe.
        Err(e) => {
            return Err(match recv(&sync, Duration::from_secs(1)) {
                Ok((_, Some(m))) => MonitorError::Reported(m),
                _ => e,
            })
        }
    }
    let attach = connect_seqpacket(work, "attach").map_err(|e| MonitorError::Spawn("attach socket".into(), e))?;
    // The second lets the process run.
    let _ = start.write_all(b"0");
    drop(start);
    let (pid, msg) = recv(&sync, Duration::from_secs(120))?;
    if pid <= 0 {
        return Err(MonitorError::Reported(msg.unwrap_or_else(|| "exec failed".into())));
    }
    Ok(AttachedExec { attach, pid: pid as i32, sync })
}

/// The exit status of an exec session (-1 when the monitor went away without one).
pub fn exec_status(sync: &UnixStream) -> i32 {
    match recv(sync, Duration::from_secs(365 * 86400)) {
        Ok((code, _)) => code as i32,
        Err(_) => -1,
    }
}

/// The two streams of a CRI log, each capped at EXEC_OUTPUT_MAX.
pub fn split_log(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for line in data.split(|&b| b == b'\n') {
        let mut it = line.splitn(4, |&b| b == b' ');
        let (_ts, stream, tag, body) = (it.next(), it.next(), it.next(), it.next().unwrap_or_default());
        let dst = match stream {
            Some(b"stdout") => &mut out,
            Some(b"stderr") => &mut err,
            _ => continue,
        };
        if dst.len() >= EXEC_OUTPUT_MAX {
            continue;
        }
        dst.extend_from_slice(body);
        if tag == Some(b"F") {
            dst.push(b'\n');
        }
        dst.truncate(EXEC_OUTPUT_MAX);
    }
    (out, err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_log_rebuilds_streams() {
        let log = b"2026-01-01T00:00:00.000000000+00:00 stdout F hello\n2026-01-01T00:00:00.000000000+00:00 stderr P par\n2026-01-01T00:00:00.000000000+00:00 stderr F tial\n";
        let (o, e) = super::split_log(log);
        assert_eq!(o, b"hello\n");
        assert_eq!(e, b"partial\n");
    }
}
