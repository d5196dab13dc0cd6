//! Helpers for tests that need a pure cgroup v2 host (the `cgroup2` test target).
//!
//! On a host whose `/sys/fs/cgroup` is not a cgroup2 file system (cgroup v1 or hybrid, like
//! most development machines) such tests print a skip reason and return; `tests/vm/suite`
//! runs them inside a pure cgroup v2 guest (tests/vm, docs/TESTBED.md).

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `statfs(2)` magic of a cgroup2 file system.
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Mount point of the unified hierarchy.
pub const ROOT: &str = "/sys/fs/cgroup";

/// The eight controllers a Kubernetes node's kernel (and the VM test bed) offers.
pub const CONTROLLERS: [&str; 8] = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"];

/// File system magic of `path` (`statfs(2)` `f_type`).
pub fn fs_magic(path: &Path) -> std::io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: libc::statfs is plain integers: all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs of a NUL-terminated path into the live struct.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

/// True if `/sys/fs/cgroup` is a cgroup2 file system (a pure cgroup v2 / unified host).
pub fn is_pure_cgroup2() -> bool {
    matches!(fs_magic(Path::new(ROOT)), Ok(m) if m == CGROUP2_SUPER_MAGIC)
}

/// Why the cgroup2 tests cannot run here, or `None` on a pure cgroup v2 host.
pub fn skip_reason() -> Option<String> {
    if is_pure_cgroup2() {
        return None;
    }
    let what = match fs_magic(Path::new(ROOT)) {
        Ok(m) => format!("{ROOT} has file system magic {m:#x}, not cgroup2 {CGROUP2_SUPER_MAGIC:#x}"),
        Err(e) => format!("statfs {ROOT}: {e}"),
    };
    Some(format!("skipped: needs a pure cgroup v2 host ({what}); run via tests/vm/suite"))
}

/// Returns true (after printing the skip reason) when the test must skip. Written straight
/// to stderr, past libtest's output capture, so the reason shows in every run. With
/// `BERTH_REQUIRE_CGROUP2=1` (set by tests/vm/suite) it panics instead of skipping.
pub fn skip(test: &str) -> bool {
    match skip_reason() {
        None => false,
        // tests/vm/suite sets this in the guest: a skip there would hide a broken bed.
        Some(reason) if std::env::var_os("BERTH_REQUIRE_CGROUP2").is_some_and(|v| v == "1") => {
            panic!("{test}: BERTH_REQUIRE_CGROUP2=1 but {reason}")
        }
        Some(reason) => {
            let _ = writeln!(std::io::stderr(), "{test}: {reason}");
            true
        }
    }
}

/// First statement of every cgroup2 test: `require_pure_cgroup2!(test_name);` prints
/// `test_name: skipped: needs a pure cgroup v2 host (...); run via tests/vm/suite` and
/// returns from the test when the host is not pure cgroup v2.
#[macro_export]
macro_rules! require_pure_cgroup2 {
    ($name:ident) => {
        if $crate::cgroup2::skip(stringify!($name)) {
            return;
        }
    };
    () => {
        if $crate::cgroup2::skip(module_path!()) {
            return;
        }
    };
}

/// A child cgroup of the root with a unique name, removed on drop (even when the test
/// panics): its processes are thawed and killed (`cgroup.kill`), then the directory removed.
pub struct Cgroup {
    path: PathBuf,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Cgroup {
    /// Creates `/sys/fs/cgroup/berth-test-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Cgroup {
        let name = format!("berth-test-{tag}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        Self::create(Path::new(ROOT).join(name))
    }

    /// Creates a nested cgroup `name` under this one (removed on its own drop).
    pub fn child(&self, name: &str) -> Cgroup {
        Self::create(self.path.join(name))
    }

    fn create(path: PathBuf) -> Cgroup {
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Cgroup { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads an interface file (e.g. `memory.events`).
    pub fn read(&self, file: &str) -> String {
        let p = self.path.join(file);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// Writes an interface file; panics with the file name and error on failure.
    pub fn write(&self, file: &str, value: &str) {
        self.try_write(file, value).unwrap_or_else(|e| panic!("write {value:?} to {}/{file}: {e}", self.path.display()))
    }

    pub fn try_write(&self, file: &str, value: &str) -> std::io::Result<()> {
        std::fs::write(self.path.join(file), value)
    }

    /// Value of `key` in a flat-keyed file such as `memory.events` or `cpu.stat`.
    pub fn stat(&self, file: &str, key: &str) -> u64 {
        let text = self.read(file);
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {key} in {}/{file}:\n{text}", self.path.display()))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{key} in {file}: {e}"))
    }

    /// PIDs listed in `cgroup.procs`.
    pub fn procs(&self) -> Vec<u32> {
        self.read("cgroup.procs").lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Spawns `cmd` with the child placed in this cgroup before it execs (it writes "0" to
    /// `cgroup.procs` between fork and exec), so everything it allocates is charged here.
    pub fn spawn(&self, cmd: &mut Command) -> Child {
        let procs = CString::new(self.path.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
        // SAFETY: the pre_exec closure only calls open, write and close on a path built before the fork
        // (async-signal-safe, no allocation).
        unsafe {
            cmd.pre_exec(move || {
                // Only async-signal-safe calls between fork and exec.
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                if r != 1 {
                    return Err(e);
                }
                Ok(())
            });
        }
        cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?} in {}: {e}", self.path.display()))
    }

    /// Waits for `child` to exit, at most `timeout`; `None` if it is still running.
    pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        Self::wait_for(timeout, || {
            status = child.try_wait().expect("wait for child");
            status.is_some()
        });
        status
    }

    /// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
    pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if cond() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.path.exists() {
            return;
        }
        let _ = self.try_write("cgroup.freeze", "0");
        let _ = self.try_write("cgroup.kill", "1");
        Cgroup::wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(self.path.join("cgroup.events")).map(|e| e.contains("populated 0")).unwrap_or(true)
        });
        let mut last = None;
        for _ in 0..100 {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = writeln!(std::io::stderr(), "warning: cannot remove {}: {last:?}", self.path.display());
    }
}
