//! A private containerd (Debian's 1.6) whose runc v2 shim (`containerd-shim-runc-v2`) drives
//! the runtime under test, given to it per container with `ctr run --runc-binary`.
//!
//! Each `Containerd` has its own root, state, socket and namespace (the temp directory's
//! unique name), passes the shim a private runtime root (`--runc-root`) and `ctr` a private
//! fifo directory, so parallel tests never meet. Containers get containerd's default cgroup
//! path `/<namespace>/<id>`: the runtime removes the `<id>` leaf at delete, nobody removes the
//! `<namespace>` parent, so the fixture removes that tree from every hierarchy itself.
//!
//! Dropping it deletes every task and container, stops containerd, waits for the shims, and
//! fails the test (unless it already failed) if a shim, a runtime state entry, a container
//! cgroup or a mount outlived that.

use crate::bundle::{make_rootfs, mounts_under, TempDir};
use crate::host_cgroup;
use crate::host_dirs::HostDir;
use crate::proc::{pidfd, poll_until, reap_processes_mentioning, require_tools, run_in, spawn_in, wait_pidfd, Running};
use crate::runtime::{runtime_path, Out};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The image every fixture imports.
pub const IMAGE: &str = "berth.test/busybox:latest";

/// Limit for one ctr command.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Containerd {
    child: Child,
    socket: PathBuf,
    dir: TempDir,
    /// containerd namespace of this fixture (also the cgroup parent of its containers).
    pub namespace: String,
    /// The OCI runtime the shim drives.
    pub runtime: PathBuf,
    calls: PathBuf,
    _shim_sockets: HostDir,
}

impl Containerd {
    /// Start a private containerd (no CRI plugin) and import the busybox image.
    pub fn start(test: &str) -> Containerd {
        require_tools(&["containerd", "containerd-shim-runc-v2", "ctr", "umoci"]);
        let runtime = runtime_path();
        assert!(runtime.exists(), "runtime under test {} does not exist (build it, or set BERTH_RUNTIME=runc)", runtime.display());
        let safe: String = test.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(24).collect();
        // The shims' sockets go to /run/containerd/s whatever the configuration says.
        let shim_sockets = HostDir::claim("/run/containerd", &[]);
        let dir = TempDir::new(&format!("bt-ctrd-{safe}"));
        let d = dir.path();
        let namespace = d.file_name().unwrap().to_string_lossy().into_owned();
        let socket = d.join("containerd.sock");
        let calls = d.join("calls");
        for sub in ["calls", "fifo", "runc"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{1}\"\n",
            d.display(),
            socket.display()
        );
        fs::write(d.join("config.toml"), config).unwrap();
        let log = fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd { child, socket, dir, namespace, runtime, calls, _shim_sockets: shim_sockets };
        // containerd reports no readiness event; its API answering is the signal.
        let up = poll_until(Duration::from_secs(30), || c.socket.exists() && c.ctr(&["version"]).success());
        assert!(up, "containerd did not come up: {}", c.log());
        c.import_image();
        c
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ctr --address <ours> --namespace <ours> args…`, bounded by `TIMEOUT`.
    pub fn ctr(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket).args(["--namespace", &self.namespace]).args(args);
        run_in(&self.calls, cmd, TIMEOUT)
    }

    /// `ctr args…`, asserting success; stdout without the trailing newline.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(o.success(), "expected success from `{}`, got {}\ncontainerd log:\n{}", o.argv, o.describe(), self.log_tail());
        o.stdout.trim_end().to_string()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("containerd.log")).unwrap_or_default()
    }
    fn log_tail(&self) -> String {
        let l = self.log();
        let lines: Vec<&str> = l.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// An OCI image of the busybox rootfs (built with umoci), imported as `IMAGE`.
    fn import_image(&self) {
        let work = self.dir().join("image");
        let layout = work.join("layout");
        let unpacked = work.join("unpacked");
        let l = layout.to_str().unwrap();
        let img = format!("{l}:latest");
        let umoci = |args: &[&str]| {
            let mut c = Command::new("umoci");
            c.args(args);
            let o = run_in(&self.calls, c, TIMEOUT);
            assert!(o.success(), "umoci {args:?}: {}", o.describe());
        };
        umoci(&["init", "--layout", l]);
        umoci(&["new", "--image", &img]);
        umoci(&["unpack", "--image", &img, unpacked.to_str().unwrap()]);
        make_rootfs(&unpacked.join("rootfs"));
        umoci(&["repack", "--image", &img, unpacked.to_str().unwrap()]);
        let tar = work.join("image.tar");
        let mut c = Command::new("tar");
        c.arg("-C").arg(&layout).arg("-cf").arg(&tar).arg(".");
        let o = run_in(&self.calls, c, TIMEOUT);
        assert!(o.success(), "tar: {}", o.describe());
        self.ok(&["images", "import", "--base-name", "berth.test/busybox", "--digests", tar.to_str().unwrap()]);
        let _ = fs::remove_dir_all(&work);
    }

    /// The runtime root the shim gets (`--runc-root`); the shim keeps each namespace's
    /// containers in `<root>/<namespace>`.
    pub fn runc_root(&self) -> PathBuf {
        self.dir().join("runc")
    }
    fn runtime_root(&self) -> PathBuf {
        self.runc_root().join(&self.namespace)
    }

    /// `ctr run` arguments: the runtime under test as the shim's runc binary, our runtime
    /// root and fifo directory, `--cpu-shares 0` (ctr otherwise asks for cpu shares, which
    /// berth's cgroup2 hierarchy here cannot apply), then `flags`, image, id, argv.
    pub fn run_args(&self, flags: &[&str], id: &str, argv: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec!["run".into(), "--cpu-shares".into(), "0".into()];
        a.extend(["--runc-binary".to_string(), self.runtime.to_string_lossy().into_owned()]);
        a.extend(["--runc-root".to_string(), self.runc_root().to_string_lossy().into_owned()]);
        a.extend(["--fifo-dir".to_string(), self.dir().join("fifo").to_string_lossy().into_owned()]);
        a.extend(flags.iter().map(|s| s.to_string()));
        a.extend([IMAGE.to_string(), id.to_string()]);
        a.extend(argv.iter().map(|s| s.to_string()));
        a
    }

    /// `ctr run flags… IMAGE id argv…`.
    pub fn run(&self, flags: &[&str], id: &str, argv: &[&str]) -> Out {
        let a = self.run_args(flags, id, argv);
        self.ctr(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `ctr run flags… IMAGE id sh -c script` in the foreground, left running once the task
    /// is: ctr waits for the task, deletes it and exits with its status (`Running::wait`).
    #[track_caller]
    pub fn run_attached(&self, flags: &[&str], id: &str, script: &str) -> Running {
        let a = self.run_args(flags, id, &["sh", "-c", script]);
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket).args(["--namespace", &self.namespace]).args(&a);
        self.attached(id, cmd)
    }

    /// `ctr tasks start id` (a new task of an existing container) in the foreground, as
    /// `run_attached`.
    #[track_caller]
    pub fn start_attached(&self, id: &str) -> Running {
        let fifo = self.dir().join("fifo");
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket).args(["--namespace", &self.namespace]);
        cmd.args(["tasks", "start", "--fifo-dir"]).arg(fifo).arg(id);
        self.attached(id, cmd)
    }

    #[track_caller]
    fn attached(&self, id: &str, cmd: Command) -> Running {
        let mut r = spawn_in(&self.calls, cmd);
        let up = poll_until(Duration::from_secs(30), || {
            self.task(id).is_some_and(|(_, s)| s == "RUNNING") || r.child.try_wait().ok().flatten().is_some()
        });
        if !up || r.child.try_wait().ok().flatten().is_some() {
            let o = r.wait(Duration::from_secs(5));
            panic!("task {id} did not start: {}\ncontainerd log:\n{}", o.describe(), self.log_tail());
        }
        r
    }

    /// `ctr run -d … sh -c script`, asserting it started.
    #[track_caller]
    pub fn run_detached(&self, id: &str, script: &str) {
        let o = self.run(&["-d"], id, &["sh", "-c", script]);
        assert!(o.success(), "expected success from `{}`, got {}\ncontainerd log:\n{}", o.argv, o.describe(), self.log_tail());
    }

    /// `ctr tasks exec` with our fifo dir: `flags` then the task id and argv.
    pub fn exec(&self, flags: &[&str], id: &str, argv: &[&str]) -> Out {
        let fifo = self.dir().join("fifo");
        let mut a = vec!["tasks", "exec", "--fifo-dir", fifo.to_str().unwrap()];
        a.extend_from_slice(flags);
        a.push(id);
        a.extend_from_slice(argv);
        self.ctr(&a)
    }

    /// (pid, status) of task `id` from `ctr tasks ls`.
    pub fn task(&self, id: &str) -> Option<(i32, String)> {
        let o = self.ctr(&["tasks", "ls"]);
        o.stdout.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    /// Poll `ctr tasks ls` until task `id` has `status` (containerd reports task exits as
    /// events only to subscribers; ctr has no `tasks wait`).
    pub fn wait_task_status(&self, id: &str, status: &str, timeout: Duration) -> bool {
        poll_until(timeout, || self.task(id).is_some_and(|(_, s)| s == status))
    }

    /// `<runtime> --root <shim's root> state id`.
    pub fn runtime_state(&self, id: &str) -> Out {
        let mut c = Command::new(&self.runtime);
        c.arg("--root").arg(self.runtime_root()).args(["state", id]);
        run_in(&self.calls, c, TIMEOUT)
    }

    /// Container cgroups `/<namespace>/<id>` in any hierarchy.
    pub fn container_cgroups(&self) -> Vec<PathBuf> {
        host_cgroup::tree(&self.namespace).into_iter().filter(|p| p.file_name().is_some_and(|n| n != self.namespace.as_str())).collect()
    }

    fn cleanup(&mut self) -> Vec<String> {
        let mut left = vec![];
        let ids = |what: &str| -> Vec<String> { self.ctr(&[what, "ls", "-q"]).stdout.lines().map(String::from).collect() };
        // Shims outlive containerd: end every task and container first (also after a failure).
        let containers = ids("containers");
        for t in ids("tasks") {
            let o = self.ctr(&["tasks", "rm", "--force", &t]);
            if !o.success() {
                left.push(format!("ctr tasks rm --force {t}: {}", o.describe()));
            }
        }
        for c in &containers {
            let o = self.ctr(&["containers", "rm", c]);
            if !o.success() {
                left.push(format!("ctr containers rm {c}: {}", o.describe()));
            }
        }
        // SAFETY: signal the containerd we started, by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if let Ok(fd) = pidfd(self.child.id() as i32) {
            if !wait_pidfd(&fd, Duration::from_secs(15)) {
                left.push("containerd ignored SIGTERM for 15 s (killed)".into());
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        // Shims carry our socket path (`-address`) on their command line.
        for (pid, cmd) in reap_processes_mentioning(&self.socket.to_string_lossy(), Duration::from_secs(15)) {
            left.push(format!("shim {pid} still running after its containers were removed (killed): {cmd}"));
        }
        for c in &containers {
            if self.runtime_state(c).success() {
                left.push(format!("{} still has state for {c}", self.runtime.display()));
                let mut cmd = Command::new(&self.runtime);
                cmd.arg("--root").arg(self.runtime_root()).args(["delete", "--force", c]);
                run_in(&self.calls, cmd, TIMEOUT);
            }
        }
        for cg in self.container_cgroups() {
            left.push(format!("container cgroup left: {}", cg.display()));
        }
        for (d, e) in host_cgroup::remove_tree(&self.namespace) {
            left.push(format!("cannot remove cgroup {}: {e}", d.display()));
        }
        for m in mounts_under(self.dir()) {
            left.push(format!("mount left under the fixture: {m}"));
        }
        left
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        crate::report_leftovers("containerd", &self.cleanup());
    }
}
