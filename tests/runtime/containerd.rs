//! Drop-in check: containerd 1.6 and its runc shim (`containerd-shim-runc-v2`) drive the
//! runtime under test through `ctr run --runc-binary`, exactly as they drive runc.

use berth_tests::bundle::{make_rootfs, TempDir};
use berth_tests::runtime::runtime_path;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NAMESPACE: &str = "berth-test";

/// A private containerd (own root, state and socket; no CRI plugin), stopped on drop.
struct Containerd {
    child: Child,
    socket: PathBuf,
    dir: TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = TempDir::new("bt-containerd");
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{1}\"\n",
            d.display(),
            socket.display()
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd { child, socket, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not come up: {}", c.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket).args(["--namespace", NAMESPACE]).args(args);
        cmd.stdin(Stdio::null());
        cmd.output().expect("run ctr")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Shims outlive containerd: end every task and container first (also after a failure).
        let ids = |what: &str| -> Vec<String> {
            String::from_utf8_lossy(&self.ctr(&[what, "ls", "-q"]).stdout).lines().map(String::from).collect()
        };
        for t in ids("tasks") {
            let _ = self.ctr(&["tasks", "rm", "--force", &t]);
        }
        for c in ids("containers") {
            let _ = self.ctr(&["containers", "rm", &c]);
        }
        // SAFETY: signal the containerd we started, by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// An OCI image archive of a busybox rootfs, built with umoci.
fn busybox_image(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    let unpacked = dir.join("unpacked");
    let run = |args: &[&str]| {
        let o = Command::new("umoci").args(args).output().expect("run umoci");
        assert!(o.status.success(), "umoci {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    let l = layout.to_str().unwrap();
    let img = format!("{l}:latest");
    run(&["init", "--layout", l]);
    run(&["new", "--image", &img]);
    run(&["unpack", "--image", &img, unpacked.to_str().unwrap()]);
    make_rootfs(&unpacked.join("rootfs"));
    run(&["repack", "--image", &img, unpacked.to_str().unwrap()]);
    let tar = dir.join("image.tar");
    let o = Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&tar).arg(".").output().unwrap();
    assert!(o.status.success(), "tar: {}", String::from_utf8_lossy(&o.stderr));
    tar
}

fn text(o: &Output) -> String {
    format!("status {:?}\nstdout: {}\nstderr: {}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn containerd_runc_shim_drives_the_runtime() {
    for tool in ["containerd", "containerd-shim-runc-v2", "ctr", "umoci"] {
        if Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map(|o| !o.status.success()).unwrap_or(true) {
            panic!("{tool} is not installed (scripts/deps.sh installs it)");
        }
    }
    let work = TempDir::new("bt-ctr-image");
    let tar = busybox_image(work.path());
    let ctd = Containerd::start();
    let o = ctd.ctr(&["images", "import", "--base-name", "berth.test/busybox", "--digests", tar.to_str().unwrap()]);
    assert!(o.status.success(), "import: {}", text(&o));
    let image = "berth.test/busybox:latest";
    let rt = runtime_path();
    let rt = rt.to_str().unwrap();
    let id = format!("bt-ctr-{}", std::process::id());

    // Foreground: output and exit code travel through the shim. `--cpu-shares 0`: ctr
    // otherwise asks for cpu shares, which this hybrid host's cgroup2 cannot apply.
    let o = ctd.ctr(&["run", "--rm", "--cpu-shares", "0", "--runc-binary", rt, image, &id, "sh", "-c", "echo hello-$((1+2)); exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hello-3", "{}", text(&o));

    // Detached: the shim polls state, kills and deletes through the runtime.
    let id2 = format!("{id}-d");
    let o = ctd.ctr(&["run", "-d", "--cpu-shares", "0", "--runc-binary", rt, image, &id2, "sh", "-c", "while :; do read -t 1 x; done"]);
    assert!(o.status.success(), "run -d: {}", text(&o));
    let tasks = ctd.ctr(&["tasks", "ls"]);
    assert!(String::from_utf8_lossy(&tasks.stdout).lines().any(|l| l.starts_with(&id2) && l.contains("RUNNING")), "{}", text(&tasks));
    let o = ctd.ctr(&["tasks", "kill", "--signal", "KILL", &id2]);
    assert!(o.status.success(), "kill: {}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = ctd.ctr(&["tasks", "ls"]);
        if String::from_utf8_lossy(&t.stdout).lines().any(|l| l.starts_with(&id2) && l.contains("STOPPED")) {
            break;
        }
        assert!(Instant::now() < deadline, "task did not stop: {}", text(&t));
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = ctd.ctr(&["tasks", "rm", &id2]);
    assert!(o.status.success(), "tasks rm: {}", text(&o));
    let o = ctd.ctr(&["containers", "rm", &id2]);
    assert!(o.status.success(), "containers rm: {}", text(&o));
    let o = ctd.ctr(&["images", "rm", "--sync", image]);
    assert!(o.status.success(), "images rm: {}", text(&o));
}
