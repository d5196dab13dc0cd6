//! Driving the container monitor under test (berth-mon, or Debian's conmon) directly, as
//! podman and CRI-O do: socketpairs in `_OCI_SYNCPIPE` / `_OCI_STARTPIPE` /
//! `_OCI_ATTACHPIPE`, a bundle, a private runtime root, exit/persist/socket dirs and a CRI
//! log file in one temp dir.
//!
//! `BERTH_MONITOR` picks the monitor: unset or `berth-mon` → the project's build; `conmon` →
//! /usr/bin/conmon; anything else is a path. The runtime is the suite's (`BERTH_RUNTIME`).
//!
//! Waits are on events: the sync socket's messages, and the monitor's exit (pidfd), which
//! comes after it wrote the exit files. Dropping a `Monitor` force-deletes the container
//! (which ends the monitor) and fails the test if a monitor process or its attach symlink
//! is left.

use crate::bundle::{Bundle, TempDir};
use crate::proc::{pidfd, wait_pidfd};
use crate::runtime::{run_to_files, Out, Runtime};
use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn monitor_path() -> PathBuf {
    match std::env::var("BERTH_MONITOR") {
        Err(_) => crate::bin("berth-mon"),
        Ok(s) if s.is_empty() || s == "berth-mon" => crate::bin("berth-mon"),
        Ok(s) if s == "conmon" => PathBuf::from("/usr/bin/conmon"),
        Ok(s) => PathBuf::from(s),
    }
}

pub fn is_berth_mon() -> bool {
    monitor_path().file_name().is_some_and(|n| n.to_string_lossy().contains("berth-mon"))
}

/// Print why a test does not apply to the monitor under test; true when skipping.
pub fn skip_unless_berth_mon(test: &str, reason: &str) -> bool {
    if !is_berth_mon() {
        eprintln!("{test}: SKIPPED for {}: {reason}", monitor_path().display());
        return true;
    }
    false
}

/// A SOCK_SEQPACKET socketpair (as podman makes them); the second end goes to the monitor.
pub fn seqpacket_pair() -> (UnixStream, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into the live array.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: socketpair succeeded (asserted): both fds are new and nothing else owns them.
    unsafe { (UnixStream::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Read one message from `s` within `timeout` (None on timeout or end).
pub fn recv_msg(s: &UnixStream, timeout: Duration) -> Option<Vec<u8>> {
    let mut p = libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: poll on one live pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    if r <= 0 {
        return None;
    }
    let mut buf = vec![0u8; 65536];
    // SAFETY: receiving into a live buffer of the length passed.
    let n = unsafe { libc::recv(s.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

pub struct Monitor {
    pub dir: TempDir,
    pub cid: String,
    pub cuuid: String,
    pub bundle: PathBuf,
    pub runtime: PathBuf,
    pub root: PathBuf,
    /// The caller's ends of the pipes of the last `launch`.
    pub sync: Option<UnixStream>,
    pub start: Option<UnixStream>,
    pub attach_pipe: Option<UnixStream>,
    /// pids of monitors started (for cleanup and `wait_exit`).
    pids: Vec<i32>,
    /// Extra environment for the monitor.
    pub env: Vec<(String, String)>,
}

impl Monitor {
    /// A monitor for container `cid` of bundle `b`, run by `rt`'s runtime with `rt`'s root.
    pub fn new(rt: &Runtime, b: &Bundle, cid: &str) -> Monitor {
        let bin = monitor_path();
        assert!(bin.exists(), "monitor under test {} does not exist (build it, or set BERTH_MONITOR=conmon)", bin.display());
        b.write();
        let dir = TempDir::new("bt-mon");
        for d in ["exits", "persist", "sockets"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        // 32 hex digits: journald and conmon want a "long" id for some drivers.
        let cuuid = format!("{:016x}{:016x}", rand_u64(), rand_u64());
        Monitor {
            dir,
            cid: cid.to_string(),
            cuuid,
            bundle: b.dir().to_path_buf(),
            runtime: rt.bin.clone(),
            root: rt.root(),
            sync: None,
            start: None,
            attach_pipe: None,
            pids: vec![],
            env: vec![],
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn log_path(&self) -> PathBuf {
        self.path("ctr.log")
    }
    pub fn exit_file(&self) -> PathBuf {
        self.path("exits").join(&self.cid)
    }
    pub fn attach_path(&self) -> PathBuf {
        self.path("sockets").join(&self.cuuid).join("attach")
    }
    pub fn ctl_path(&self) -> PathBuf {
        self.bundle.join("ctl")
    }

    /// The common command line (everything podman passes for a container), plus `extra`.
    pub fn args(&self) -> Vec<String> {
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        vec![
            "--api-version".into(),
            "1".into(),
            "-c".into(),
            self.cid.clone(),
            "-u".into(),
            self.cuuid.clone(),
            "-r".into(),
            s(self.runtime.clone()),
            "-b".into(),
            s(self.bundle.clone()),
            "-p".into(),
            s(self.path("pidfile")),
            "-n".into(),
            "bt-name".into(),
            "--exit-dir".into(),
            s(self.path("exits")),
            "--persist-dir".into(),
            s(self.path("persist")),
            "--socket-dir-path".into(),
            s(self.path("sockets")),
            "-P".into(),
            s(self.path("monitor.pid")),
            "--runtime-arg".into(),
            "--root".into(),
            "--runtime-arg".into(),
            s(self.root.clone()),
            "--log-level".into(),
            "debug".into(),
        ]
    }

    /// Start the monitor with `args` (use `args()` plus more): sync and start socketpairs
    /// (plus an attach socketpair when `--exec-attach` is among them). Writes the start
    /// message unless the args ask for an attached exec (then `go()` does). Returns the
    /// invocation's result: the monitor's first process exits as soon as it has detached.
    pub fn launch(&mut self, args: &[String]) -> Out {
        let (c, keep) = self.command(&[], args);
        let out = run_to_files(c, &self.path("launch.out"), &self.path("launch.err"), Duration::from_secs(30));
        drop(keep);
        self.note_pid();
        out
    }

    /// Start the monitor under a wrapper command (`prefix…` then the monitor and `args`)
    /// without waiting for it: the wrapper is the monitor's caller.
    pub fn spawn_via(&mut self, prefix: &[&str], args: &[String]) -> std::process::Child {
        let (mut c, keep) = self.command(prefix, args);
        let f = |n: &str| fs::File::create(self.path(n)).unwrap();
        c.stdout(f("launch.out")).stderr(f("launch.err"));
        let child = c.spawn().expect("spawn the monitor's caller");
        drop(keep);
        child
    }

    fn note_pid(&mut self) {
        if let Ok(p) = fs::read_to_string(self.path("monitor.pid")) {
            if let Ok(p) = p.trim().parse() {
                self.pids.push(p);
            }
        }
    }

    /// The command and the child ends of its socketpairs (to drop once it is spawned).
    fn command(&mut self, prefix: &[&str], args: &[String]) -> (Command, Vec<OwnedFd>) {
        let (sync, sync_child) = seqpacket_pair();
        let (start, start_child) = seqpacket_pair();
        let attach = args.iter().any(|a| a == "--exec-attach").then(seqpacket_pair);
        let mon = monitor_path();
        let mut c = match prefix.split_first() {
            None => Command::new(&mon),
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg(&mon);
                c
            }
        };
        c.args(args).current_dir(self.dir.path()).stdin(std::process::Stdio::null());
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        let fds: Vec<i32> =
            [Some(&sync_child), Some(&start_child), attach.as_ref().map(|a| &a.1)].into_iter().flatten().map(|f| f.as_raw_fd()).collect();
        c.env("_OCI_SYNCPIPE", fds[0].to_string()).env("_OCI_STARTPIPE", fds[1].to_string());
        if let Some(f) = fds.get(2) {
            c.env("_OCI_ATTACHPIPE", f.to_string());
        }
        let keep = fds.clone();
        // SAFETY: the pre_exec closure only calls fcntl (async-signal-safe) on numbers copied before the
        // fork.
        unsafe {
            c.pre_exec(move || {
                for fd in &keep {
                    libc::fcntl(*fd, libc::F_SETFD, 0);
                }
                Ok(())
            });
        }
        (&start).write_all(b"0").unwrap();
        self.sync = Some(sync);
        self.start = Some(start);
        let mut keep = vec![sync_child, start_child];
        if let Some((ours, theirs)) = attach {
            self.attach_pipe = Some(ours);
            keep.push(theirs);
        }
        (c, keep)
    }

    /// The monitor's pid (from `-P`).
    pub fn pid(&self) -> Option<i32> {
        self.pids.last().copied().or_else(|| self.pid_from_file())
    }

    fn pid_from_file(&self) -> Option<i32> {
        fs::read_to_string(self.path("monitor.pid")).ok()?.trim().parse().ok()
    }

    /// The next JSON message on the sync socket.
    #[track_caller]
    pub fn sync_msg(&self, timeout: Duration) -> Value {
        let m = recv_msg(self.sync.as_ref().expect("launched"), timeout)
            .unwrap_or_else(|| panic!("no sync message within {timeout:?}; monitor said: {}", self.launch_err()));
        serde_json::from_slice(&m).unwrap_or_else(|e| panic!("sync message {:?} is not JSON: {e}", String::from_utf8_lossy(&m)))
    }

    pub fn launch_err(&self) -> String {
        fs::read_to_string(self.path("launch.err")).unwrap_or_default()
    }

    /// Wait for the monitor process to exit (it writes the exit files first).
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        match self.pid().map(pidfd) {
            Some(Ok(fd)) => wait_pidfd(&fd, timeout),
            _ => true,
        }
    }

    /// The exit file's code, after the monitor ended.
    #[track_caller]
    pub fn exit_code(&self, timeout: Duration) -> i32 {
        assert!(self.wait_exit(timeout), "monitor did not exit within {timeout:?}");
        let s = fs::read_to_string(self.exit_file()).unwrap_or_else(|e| panic!("exit file {}: {e}", self.exit_file().display()));
        s.trim().parse().unwrap_or_else(|_| panic!("exit file holds {s:?}"))
    }

    /// `<runtime> --root <root> args…`
    pub fn runtime(&self, args: &[&str]) -> Out {
        let mut c = Command::new(&self.runtime);
        c.arg("--root").arg(&self.root).args(args);
        let n = self.pids.len();
        run_to_files(c, &self.path(&format!("rt{n}.out")), &self.path(&format!("rt{n}.err")), Duration::from_secs(30))
    }

    /// The CRI log's records: (stream, tag, content) per line.
    pub fn records(&self) -> Vec<(String, String, Vec<u8>)> {
        records_of(&self.log_path())
    }

    /// Connect to the attach socket.
    pub fn attach(&self) -> UnixStream {
        connect_seqpacket(&self.attach_path())
    }
}

/// Parse a CRI log file.
pub fn records_of(p: &Path) -> Vec<(String, String, Vec<u8>)> {
    records_of_bytes(&fs::read(p).unwrap_or_default())
}

/// Parse CRI log contents.
pub fn records_of_bytes(data: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let mut out = vec![];
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let mut it = line.splitn(4, |&b| b == b' ');
        let ts = it.next().unwrap_or_default();
        assert!(ts.len() >= 20 && ts[10] == b'T', "bad timestamp in {:?}", String::from_utf8_lossy(line));
        let stream = String::from_utf8_lossy(it.next().unwrap_or_default()).into_owned();
        let tag = String::from_utf8_lossy(it.next().unwrap_or_default()).into_owned();
        out.push((stream, tag, it.next().unwrap_or_default().to_vec()));
    }
    out
}

/// Join a stream's records back into the bytes the container wrote (a full line gets its
/// newline back; a partial one does not).
pub fn stream_bytes(recs: &[(String, String, Vec<u8>)], stream: &str) -> Vec<u8> {
    let mut v = vec![];
    for (s, tag, body) in recs {
        if s == stream {
            v.extend_from_slice(body);
            if tag == "F" {
                v.push(b'\n');
            }
        }
    }
    v
}

pub fn connect_seqpacket(p: &Path) -> UnixStream {
    // SAFETY: socket(2) takes integers only.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: sockaddr_un is integers and a byte array: all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as u16;
    let bytes = p.as_os_str().as_encoded_bytes();
    assert!(bytes.len() < addr.sun_path.len(), "socket path too long: {}", p.display());
    for (i, b) in bytes.iter().enumerate() {
        addr.sun_path[i] = *b as libc::c_char;
    }
    // SAFETY: connect reads the live sockaddr_un of the size passed.
    let r = unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), std::mem::size_of::<libc::sockaddr_un>() as u32) };
    assert_eq!(r, 0, "connect {}: {}", p.display(), std::io::Error::last_os_error());
    // SAFETY: fd is the socket created above (asserted valid) and nothing else owns it.
    unsafe { UnixStream::from_raw_fd(fd) }
}

/// Read attach packets until `want` shows up in `stream` (2 stdout, 3 stderr) or timeout;
/// returns that stream's bytes.
pub fn attach_read_until(s: &UnixStream, stream: u8, want: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut got = vec![];
    while !String::from_utf8_lossy(&got).contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match recv_msg(s, left) {
            Some(m) if !m.is_empty() => {
                if m[0] == stream {
                    got.extend_from_slice(&m[1..]);
                }
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b)
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let mut left = vec![];
        let _ = self.runtime(&["delete", "--force", &self.cid]);
        let mut pids = self.pids.clone();
        pids.extend(self.pid_from_file().filter(|p| !self.pids.contains(p)));
        for pid in &pids {
            if let Ok(fd) = pidfd(*pid) {
                if !wait_pidfd(&fd, Duration::from_secs(10)) {
                    left.push(format!("monitor {pid} still running after the container was deleted (killed)"));
                    // SAFETY: kill(2) on a monitor this fixture started; integers only.
                    unsafe { libc::kill(*pid, libc::SIGKILL) };
                }
            }
        }
        let link = self.path("sockets").join(&self.cuuid);
        // Debian's conmon 2.1.6 leaves this link behind; berth-mon must not.
        if link.symlink_metadata().is_ok() && is_berth_mon() {
            left.push(format!("attach symlink {} left", link.display()));
        }
        crate::report_leftovers("monitor", &left);
    }
}
