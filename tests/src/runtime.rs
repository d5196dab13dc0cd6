//! Driving the OCI runtime under test (berth, or runc/crun via `BERTH_RUNTIME`) through its CLI.
//!
//! `BERTH_RUNTIME` unset → the project's `berth` (`crate::bin("berth")`); `runc` →
//! `/usr/bin/runc`; anything else is taken as a path (`crun` → `/usr/bin/crun`).
//!
//! Every `Runtime` has its own temp state root (`--root`), so tests running in parallel never
//! see each other's containers. All invocations write stdout/stderr to files (never pipes, so a
//! detached container holding an inherited stdio fd cannot hang the test) and are killed after a
//! timeout. Dropping a `Runtime` force-deletes every container it created or that is still
//! listed in its root, kills any container init that survives that, and removes the root.

use crate::bundle::{Bundle, TempDir};
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Default limit for one runtime invocation.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the runtime under test.
pub fn runtime_path() -> PathBuf {
    match std::env::var("BERTH_RUNTIME") {
        Err(_) => crate::bin("berth"),
        Ok(s) if s.is_empty() || s == "berth" => crate::bin("berth"),
        Ok(s) if s == "runc" => PathBuf::from("/usr/bin/runc"),
        Ok(s) if s == "crun" => PathBuf::from("/usr/bin/crun"),
        Ok(s) => PathBuf::from(s),
    }
}

/// Result of one runtime invocation.
#[derive(Debug)]
pub struct Out {
    pub argv: String,
    /// Exit code; `None` when killed by a signal (or by the timeout).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    /// Assert exit 0, showing the command and its output otherwise.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "expected success from `{}`, got {}", self.argv, self.describe());
        self
    }
    /// Assert a non-zero exit (not a crash by signal, not a timeout) with something on stderr.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(matches!(self.code, Some(c) if c != 0), "expected a non-zero exit from `{}`, got {}", self.argv, self.describe());
        assert!(!self.stderr.trim().is_empty(), "`{}` failed without an error on stderr: {}", self.argv, self.describe());
        self
    }
    /// Assert the failure's stderr mentions one of `words` (case-insensitive).
    #[track_caller]
    pub fn fails_mentioning(&self, words: &[&str]) -> &Self {
        self.fails();
        let e = self.stderr.to_lowercase();
        assert!(
            words.iter().any(|w| e.contains(&w.to_lowercase())),
            "error of `{}` should mention one of {words:?}: {}",
            self.argv,
            self.describe()
        );
        self
    }
    pub fn describe(&self) -> String {
        format!(
            "exit={:?} signal={:?} timed_out={}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.signal, self.timed_out, self.stdout, self.stderr
        )
    }
}

/// Run `cmd` with stdin null and stdout/stderr into the given files (appending), killed after
/// `timeout`.
pub fn run_to_files(mut cmd: Command, out: &Path, err: &Path, timeout: Duration) -> Out {
    let argv = format!("{:?}", cmd).replace('"', "");
    let open = |p: &Path| fs::OpenOptions::new().create(true).append(true).open(p).expect("open output file");
    let out_before = fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    let err_before = fs::metadata(err).map(|m| m.len()).unwrap_or(0);
    cmd.stdout(open(out)).stderr(open(err));
    if cmd.get_program().is_empty() {
        panic!("empty command");
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {argv}: {e}"));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let tail = |p: &Path, from: u64| {
        let b = fs::read(p).unwrap_or_default();
        String::from_utf8_lossy(&b[(from as usize).min(b.len())..]).into_owned()
    };
    Out { argv, code: status.code(), signal: status.signal(), timed_out, stdout: tail(out, out_before), stderr: tail(err, err_before) }
}

/// The runtime under test with a private state root.
pub struct Runtime {
    pub bin: PathBuf,
    tmp: TempDir,
    ids: std::cell::RefCell<Vec<String>>,
    name: String,
}

impl Runtime {
    pub fn new(test: &str) -> Runtime {
        let bin = runtime_path();
        assert!(bin.exists(), "runtime under test {} does not exist (build it, or set BERTH_RUNTIME=runc)", bin.display());
        let safe: String = test.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(30).collect();
        let tmp = TempDir::new(&format!("bt-rt-{safe}"));
        fs::create_dir_all(tmp.path().join("root")).unwrap();
        Runtime { bin, tmp, ids: Default::default(), name: safe }
    }

    /// True when the runtime under test is runc (for documented skips).
    pub fn is_runc(&self) -> bool {
        self.bin.file_name().is_some_and(|n| n.to_string_lossy().contains("runc"))
    }
    pub fn is_berth(&self) -> bool {
        self.bin.file_name().is_some_and(|n| n.to_string_lossy().contains("berth"))
    }
    /// Print why the test is skipped for runc and return true when running against runc.
    pub fn skip_runc(&self, test: &str, reason: &str) -> bool {
        if self.is_runc() {
            let _ = writeln!(std::io::stderr(), "{test}: SKIPPED for runc: {reason}");
            return true;
        }
        false
    }
    /// Print why the test is skipped for a non-berth runtime and return true then.
    pub fn skip_unless_berth(&self, test: &str, reason: &str) -> bool {
        if !self.is_berth() {
            let _ = writeln!(std::io::stderr(), "{test}: SKIPPED for {}: {reason}", self.bin.display());
            return true;
        }
        false
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    pub fn root_str(&self) -> String {
        self.root().to_string_lossy().into_owned()
    }
    /// Scratch directory of this runtime (outside the state root).
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    /// A unique container id `bt-<test>-<pid>[-suffix]`, remembered for cleanup.
    pub fn id(&self, suffix: &str) -> String {
        let id = if suffix.is_empty() {
            format!("bt-{}-{}", self.name, std::process::id())
        } else {
            format!("bt-{}-{}-{suffix}", self.name, std::process::id())
        };
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// `<runtime> --root <root>` plus `args`, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root()).args(args).stdin(Stdio::null());
        c
    }

    fn io_files(&self) -> (PathBuf, PathBuf) {
        let n = CALLS.fetch_add(1, Ordering::SeqCst);
        (self.tmp.path().join(format!("call{n}.out")), self.tmp.path().join(format!("call{n}.err")))
    }

    /// Run a prepared command with output captured to fresh files.
    pub fn exec_cmd(&self, cmd: Command) -> Out {
        let (o, e) = self.io_files();
        run_to_files(cmd, &o, &e, TIMEOUT)
    }

    /// `<runtime> --root <root> args...`
    pub fn exec(&self, args: &[&str]) -> Out {
        self.exec_cmd(self.command(args))
    }

    /// `create --bundle <b> id` (writes config.json first). The runtime's, and so the
    /// container's, stdout/stderr are the bundle's `ctr.stdout` / `ctr.stderr`.
    pub fn create(&self, id: &str, b: &Bundle) -> Out {
        self.create_with(id, b, &[], |_| {})
    }

    /// `create` with extra flags (before the id) and a hook to adjust the command.
    pub fn create_with(&self, id: &str, b: &Bundle, extra: &[&str], f: impl FnOnce(&mut Command)) -> Out {
        b.write();
        let mut args = vec!["create", "--bundle"];
        let dir = b.dir_str();
        args.push(&dir);
        args.extend_from_slice(extra);
        args.push(id);
        let mut cmd = self.command(&args);
        f(&mut cmd);
        run_to_files(cmd, &b.stdout_path(), &b.stderr_path(), TIMEOUT)
    }

    /// Foreground `run --bundle <b> id`: waits for the container, returns its exit code.
    pub fn run(&self, id: &str, b: &Bundle) -> Out {
        self.run_with(id, b, &[])
    }
    pub fn run_with(&self, id: &str, b: &Bundle, extra: &[&str]) -> Out {
        b.write();
        let dir = b.dir_str();
        let mut args = vec!["run", "--bundle", &dir];
        args.extend_from_slice(extra);
        args.push(id);
        run_to_files(self.command(&args), &b.stdout_path(), &b.stderr_path(), TIMEOUT)
    }

    /// Create, start, wait for `stopped`, and return the container's stdout (asserting each step).
    #[track_caller]
    pub fn run_to_stop(&self, id: &str, b: &Bundle) -> String {
        self.create(id, b).ok();
        self.start(id).ok();
        assert!(self.wait_status(id, "stopped", Duration::from_secs(20)), "container {id} did not stop; state: {:?}", self.state(id));
        b.stdout()
    }

    pub fn start(&self, id: &str) -> Out {
        self.exec(&["start", id])
    }
    pub fn kill(&self, id: &str, sig: &str) -> Out {
        self.exec(&["kill", id, sig])
    }
    pub fn delete(&self, id: &str) -> Out {
        self.exec(&["delete", id])
    }
    pub fn delete_force(&self, id: &str) -> Out {
        self.exec(&["delete", "--force", id])
    }
    pub fn state_out(&self, id: &str) -> Out {
        self.exec(&["state", id])
    }
    /// Parsed `state` JSON, or None if `state` fails.
    pub fn state(&self, id: &str) -> Option<Value> {
        let o = self.state_out(id);
        if !o.success() {
            return None;
        }
        Some(serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("state {id} is not JSON ({e}): {}", o.stdout)))
    }
    pub fn status(&self, id: &str) -> Option<String> {
        self.state(id).and_then(|s| s["status"].as_str().map(|s| s.to_string()))
    }
    pub fn pid(&self, id: &str) -> Option<i32> {
        self.state(id).and_then(|s| s["pid"].as_i64()).map(|p| p as i32)
    }

    /// Poll `state` until the status is `want`; false on timeout.
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.status(id).as_deref() == Some(want) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The state directory the runtime keeps for `id` under its root.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root().join(id)
    }

    /// Assert `id` left nothing: no state dir, no mount naming the bundle, no process rooted in
    /// the bundle, no cgroup whose name contains the id.
    #[track_caller]
    pub fn assert_nothing_left(&self, id: &str, b: &Bundle) {
        assert!(!self.state_dir(id).exists(), "state dir {} left behind", self.state_dir(id).display());
        let bdir = b.dir_str();
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let leaked: Vec<&str> = mi.lines().filter(|l| l.contains(&format!("{bdir}/")) || l.contains(&format!("{bdir} "))).collect();
        assert!(leaked.is_empty(), "mounts naming the bundle left on the host: {leaked:?}");
        let procs = processes_in(&b.rootfs());
        assert!(procs.is_empty(), "processes rooted in the bundle left behind: {procs:?}");
        let cgs = cgroups_named(id);
        assert!(cgs.is_empty(), "cgroups named after {id} left behind: {cgs:?}");
    }
}

/// (device, inode) of a path, following links (also /proc/<pid>/root magic links).
pub fn dev_ino(p: impl AsRef<Path>) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// PIDs whose root directory is `rootfs` (the container processes of a bundle). Compared by
/// (device, inode): after pivot_root in another mount namespace `readlink /proc/<pid>/root`
/// only shows "/", but the root dentry is still the rootfs directory. Also matches a root or
/// cwd link that names a path under `rootfs` (processes before pivot_root / chroot).
pub fn processes_in(rootfs: &Path) -> Vec<i32> {
    let d = rootfs.to_string_lossy().to_string();
    let want = dev_ino(rootfs);
    let me = std::process::id() as i32;
    let mut v = vec![];
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if pid == me {
            continue;
        }
        let root = e.path().join("root");
        let by_inode = want.is_some() && dev_ino(&root) == want;
        let by_path = ["root", "cwd"].iter().any(|l| fs::read_link(e.path().join(l)).is_ok_and(|t| t.to_string_lossy().starts_with(&d)));
        if by_inode || by_path {
            v.push(pid);
        }
    }
    v
}

/// Cgroup directories (under the v2 mount and the v1 pids/cpu hierarchies) whose name contains `id`.
pub fn cgroups_named(id: &str) -> Vec<PathBuf> {
    fn walk(p: &Path, id: &str, depth: usize, out: &mut Vec<PathBuf>) {
        if depth > 5 {
            return;
        }
        let Ok(rd) = fs::read_dir(p) else { return };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let path = e.path();
                if e.file_name().to_string_lossy().contains(id) {
                    out.push(path.clone());
                }
                walk(&path, id, depth + 1, out);
            }
        }
    }
    let mut out = vec![];
    for base in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu"] {
        walk(Path::new(base), id, 0, &mut out);
    }
    out
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let mut ids = self.ids.borrow().clone();
        if let Ok(rd) = fs::read_dir(self.root()) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !ids.contains(&n) {
                    ids.push(n);
                }
            }
        }
        for id in ids {
            let pid = self.pid(&id);
            if self.state_dir(&id).exists() || pid.is_some() {
                let o = self.delete_force(&id);
                if !o.success() {
                    eprintln!("cleanup: delete --force {id} failed: {}", o.describe());
                    // Only the init of a container this test created.
                    if let Some(p) = pid.filter(|p| *p > 1) {
                        // SAFETY: kill(2) takes integers only; the target is a container init this test
                        // created.
                        unsafe { libc::kill(p, libc::SIGKILL) };
                    }
                }
            }
        }
    }
}

/// Read a file, empty on error.
pub fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p).unwrap_or_default()
}
