//! A private, rootful podman (Debian's 4.3, with Debian's conmon) whose OCI runtime is the
//! runtime under test (`--runtime`, see `runtime::runtime_path`).
//!
//! Each `Podman` owns everything podman writes: `--root`, `--runroot`, `--tmpdir`, its own
//! containers.conf (`CONTAINERS_CONF`), storage.conf (`CONTAINERS_STORAGE_CONF`),
//! registries.conf, network config directory, events log and file locks, all in one temp
//! directory, and a cgroup parent of its own (`--cgroup-parent`, passed on every `run`). Tests
//! therefore run in parallel without seeing each other. The image is a busybox rootfs (the one
//! the bundles use, `bundle::make_rootfs`) imported with `podman import`.
//!
//! The runtime keeps its default state root (`/run/runc`, `/run/berth`): podman's exit command
//! (`podman container cleanup`, run by conmon when a container exits) does not carry
//! `--runtime-flag`, so a private `--root` would make that cleanup miss the container.
//!
//! Dropping a `Podman` removes every container (`podman rm -af`), resets the storage
//! (`podman system reset`), waits for the conmon and cleanup processes that carry its paths,
//! removes its cgroup tree from every hierarchy and its temp directory (detaching any mount left
//! under it). Anything the runtime left — a state entry, a container cgroup, a process, a mount —
//! fails the test (after being cleaned up), unless the test already failed.

use crate::bundle::{make_rootfs, mounts_under, TempDir};
use crate::console::Master;
use crate::host_cgroup;
use crate::host_dirs::HostDir;
use crate::proc::{reap_processes_mentioning, require_tools, run_in};
use crate::pty::Pty;
use crate::runtime::{runtime_path, Out};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// The busybox image every fixture imports.
pub const IMAGE: &str = "localhost/berth-test/busybox:latest";

/// Limit for one podman command (a `run` includes create + start through conmon).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// `--security-opt seccomp=unconfined`: podman applies its default seccomp profile to every
/// container otherwise. Tests of other features pass this so that they check only their
/// feature; the seccomp test runs without it.
pub const UNCONFINED: [&str; 2] = ["--security-opt", "seccomp=unconfined"];

pub struct Podman {
    dir: TempDir,
    /// The OCI runtime podman drives.
    pub runtime: PathBuf,
    /// `--cgroup-parent` of every container (absolute, cgroupfs style).
    cgroup_parent: String,
    calls: PathBuf,
    /// `--conmon`: the monitor podman uses (None: Debian's conmon).
    conmon: Option<PathBuf>,
    _cache: HostDir,
}

impl Podman {
    /// A private podman with the busybox image imported.
    pub fn new(test: &str) -> Podman {
        Podman::with_conmon(test, None)
    }

    /// A private podman whose container monitor is `conmon` (`--conmon`).
    pub fn with_conmon(test: &str, conmon: Option<PathBuf>) -> Podman {
        require_tools(&["podman", "conmon"]);
        let runtime = runtime_path();
        assert!(runtime.exists(), "runtime under test {} does not exist (build it, or set BERTH_RUNTIME=runc)", runtime.display());
        let safe: String = test.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(24).collect();
        let cache = HostDir::claim("/var/lib/containers", &["cache/blob-info-cache-v1.boltdb"]);
        let dir = TempDir::new(&format!("bt-podman-{safe}"));
        let name = dir.path().file_name().unwrap().to_string_lossy().into_owned();
        let calls = dir.path().join("calls");
        for d in ["root", "run", "tmp", "net", "calls", "image"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let pm = Podman { runtime, cgroup_parent: format!("/{name}"), calls, conmon, dir, _cache: cache };
        pm.write_config();
        pm.import_image();
        pm
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    fn path(&self, p: &str) -> String {
        self.dir().join(p).to_string_lossy().into_owned()
    }

    fn write_config(&self) {
        let rt_name = self.runtime.file_name().unwrap().to_string_lossy().into_owned();
        let conf = format!(
            r#"# One test's private podman (written by berth's tests/src/podman.rs).
[containers]
# No process on the test host has CAP_SYS_RESOURCE, so no rlimit can go above the current hard
# limit; podman's default for root would ask for nofile and nproc at the kernel's maximum.
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
# Podman finds a tmpfs at /sys/fs/cgroup on this hybrid host, takes it for cgroup v1 and by
# default asks for pids.max 2048. berth places containers only in the cgroup2 hierarchy, which
# here (/sys/fs/cgroup/unified) has no controller but hugetlb, and so rightly refuses a limit it
# cannot apply. No pids limit keeps the container spec the same for every runtime under test.
pids_limit = 0

[network]
network_backend = "cni"
network_config_dir = "{net}"

[engine]
# No systemd on the test host.
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
# File locks live under tmp_dir; the default shm locks would share /dev/shm/libpod_lock with
# every other podman on the host.
lock_type = "file"
tmp_dir = "{tmp}"
static_dir = "{root}/libpod"
volume_path = "{root}/volumes"
image_copy_tmp_dir = "{tmp}"
# Podman passes `--log-format=json --log FILE` only to runtimes named here and reads their
# errors from that file; berth writes runc's JSON log format, so it is treated like runc.
runtime_supports_json = ["crun", "runc", "{rt_name}"]
"#,
            net = self.path("net"),
            events = self.path("events.log"),
            tmp = self.path("tmp"),
            root = self.path("root"),
        );
        fs::write(self.dir().join("containers.conf"), conf).unwrap();
        let storage =
            format!("[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n", self.path("root"), self.path("run"));
        fs::write(self.dir().join("storage.conf"), storage).unwrap();
        fs::write(self.dir().join("registries.conf"), "unqualified-search-registries = []\n").unwrap();
    }

    fn import_image(&self) {
        let img = self.dir().join("image");
        make_rootfs(&img.join("rootfs"));
        let tar = img.join("rootfs.tar");
        let mut c = Command::new("tar");
        c.arg("-C").arg(img.join("rootfs")).arg("-cf").arg(&tar).arg(".");
        let o = run_in(&self.calls, c, TIMEOUT);
        assert!(o.success(), "tar of the image rootfs: {}", o.describe());
        let o = self.run(&["import", &tar.to_string_lossy(), IMAGE]);
        assert!(o.success(), "podman import: {}", o.describe());
        let _ = fs::remove_dir_all(img);
    }

    /// `podman <global flags> args…` with the fixture's environment, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.args(["--root", &self.path("root"), "--runroot", &self.path("run"), "--tmpdir", &self.path("tmp")])
            .arg("--runtime")
            .arg(&self.runtime)
            .args(["--storage-driver", "overlay"]);
        if let Some(m) = &self.conmon {
            c.arg("--conmon").arg(m);
        }
        c.args(args)
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .env("TMPDIR", self.path("tmp"));
        c
    }

    /// Run `podman args…` (bounded by `TIMEOUT`).
    pub fn run(&self, args: &[&str]) -> Out {
        run_in(&self.calls, self.command(args), TIMEOUT)
    }

    /// Run `podman args…`, assert exit 0, return stdout without the trailing newline.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.success(), "expected success from `{}`, got {}", o.argv, o.describe());
        o.stdout.trim_end().to_string()
    }

    /// `podman run <flags> --network none --cgroup-parent <ours> IMAGE argv…`.
    pub fn run_container(&self, flags: &[&str], argv: &[&str]) -> Out {
        self.run(&self.run_args(flags, argv).iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The arguments of `run_container` (for `spawn_on_pty`).
    pub fn run_args(&self, flags: &[&str], argv: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec!["run".into()];
        a.extend(flags.iter().map(|s| s.to_string()));
        a.extend(["--network", "none", "--cgroup-parent", &self.cgroup_parent].map(String::from));
        a.push(IMAGE.into());
        a.extend(argv.iter().map(|s| s.to_string()));
        a
    }

    /// `podman run -d --name NAME <unconfined> … sh -c script`; returns the full container id.
    #[track_caller]
    pub fn start_detached(&self, name: &str, script: &str) -> String {
        let mut flags = vec!["-d", "--name", name];
        flags.extend(UNCONFINED);
        let o = self.run_container(&flags, &["sh", "-c", script]);
        assert!(o.success(), "expected success from `{}`, got {}", o.argv, o.describe());
        let id = o.stdout.trim().to_string();
        assert_eq!(id.len(), 64, "run -d prints the container id: {}", o.describe());
        id
    }

    /// `podman inspect --format FORMAT name`.
    #[track_caller]
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, name])
    }

    /// The container's init as the host sees it.
    #[track_caller]
    pub fn pid(&self, name: &str) -> i32 {
        let p = self.inspect(name, "{{.State.Pid}}");
        p.parse().unwrap_or_else(|_| panic!("State.Pid of {name}: {p:?}"))
    }

    /// `podman wait name`: the container's exit code (waits on podman's exit event).
    #[track_caller]
    pub fn wait(&self, name: &str) -> i32 {
        let s = self.ok(&["wait", name]);
        s.parse().unwrap_or_else(|_| panic!("podman wait {name} printed {s:?}"))
    }

    /// `podman args…` in a new session on a fresh pty (for `-it`).
    pub fn spawn_on_pty(&self, args: &[&str]) -> (Master, Child) {
        Pty::open().and_then(|p| p.spawn(self.command(args))).expect("spawn podman on a pty")
    }

    /// `<runtime> state id` with the runtime's default root (where podman has it keep state).
    pub fn runtime_state(&self, id: &str) -> Out {
        let mut c = Command::new(&self.runtime);
        c.args(["state", id]);
        run_in(&self.calls, c, TIMEOUT)
    }

    /// Container cgroups (`libpod-<id>`) under our parent in any hierarchy.
    pub fn container_cgroups(&self) -> Vec<PathBuf> {
        host_cgroup::tree(&self.cgroup_parent)
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libpod-")))
            .collect()
    }

    fn cleanup(&mut self) -> Vec<String> {
        let mut left = vec![];
        let ids: Vec<String> = self.run(&["ps", "-a", "-q", "--no-trunc"]).stdout.lines().map(String::from).collect();
        let o = self.run(&["rm", "-af", "-t", "0"]);
        if !o.success() {
            left.push(format!("podman rm -af failed: {}", o.describe()));
        }
        let o = self.run(&["system", "reset", "-f"]);
        if !o.success() {
            left.push(format!("podman system reset failed: {}", o.describe()));
        }
        // conmon and `podman container cleanup` carry our root path on their command line.
        let needle = format!("{}/", self.dir().display());
        for (pid, cmd) in reap_processes_mentioning(&needle, Duration::from_secs(20)) {
            left.push(format!("process {pid} still running after podman rm (killed): {cmd}"));
        }
        for id in &ids {
            if self.runtime_state(id).success() {
                left.push(format!("{} still has state for {id} after podman rm", self.runtime.display()));
                let mut c = Command::new(&self.runtime);
                c.args(["delete", "--force", id]);
                run_in(&self.calls, c, TIMEOUT);
            }
        }
        for cg in self.container_cgroups() {
            left.push(format!("container cgroup left: {}", cg.display()));
        }
        // The parent and podman's `<parent>/conmon` are podman's and never removed by it.
        for (d, e) in host_cgroup::remove_tree(&self.cgroup_parent) {
            left.push(format!("cannot remove cgroup {}: {e}", d.display()));
        }
        for m in mounts_under(self.dir()) {
            left.push(format!("mount left under the fixture: {m}"));
        }
        left
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        crate::report_leftovers("podman", &self.cleanup());
    }
}
