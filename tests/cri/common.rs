//! Starting a berth-cri daemon on temp roots and talking CRI to it over its unix socket.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::registry::{Proc, TempDir};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// Temp roots, config and registries files for one berth-cri instance.
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new(registries_conf: &str) -> Env {
        let dir = TempDir::new("cri");
        for d in ["conf.d", "registries.d", "state", "images"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("registries.conf"), registries_conf).unwrap();
        std::fs::write(dir.path().join("berth.conf"), "").unwrap();
        Env { dir }
    }
    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn socket(&self) -> PathBuf {
        self.p("state/berth.sock")
    }
    pub fn image_root(&self) -> PathBuf {
        self.p("images")
    }
    /// The flags pointing every location into the temp dir.
    pub fn args(&self) -> Vec<String> {
        let s = |r: &str| self.p(r).display().to_string();
        vec![
            "--config".into(),
            s("berth.conf"),
            "--config-dir".into(),
            s("conf.d"),
            "--socket".into(),
            s("state/berth.sock"),
            "--state-root".into(),
            s("state"),
            "--image-root".into(),
            s("images"),
            "--registries-conf".into(),
            s("registries.conf"),
            "--registries-conf-dir".into(),
            s("registries.d"),
        ]
    }
    /// Runs `berth-cri <args> <extra>` to completion.
    pub fn cli(&self, extra: &[&str]) -> Output {
        Command::new(berth_tests::bin("berth-cri")).args(self.args()).args(extra).output().expect("run berth-cri")
    }
    pub fn start(&self) -> Daemon {
        Daemon::start(self)
    }
}

pub struct Daemon {
    pub proc: Option<Proc>,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(env: &Env) -> Daemon {
        let log = env.p(&format!("daemon-{}.log", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(berth_tests::bin("berth-cri"))
            .args(env.args())
            .args(["--log-level", "debug"])
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("start berth-cri");
        let d = Daemon { proc: Some(Proc(child)), socket: env.socket(), log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&d.socket).is_err() {
            if let Some(p) = d.proc.as_ref() {
                let pid = p.0.id() as i32;
                // SAFETY: kill(pid, 0) only probes; integers only.
                if unsafe { libc::kill(pid, 0) } != 0 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "daemon did not create its socket: {}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// SIGTERM and wait; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut p = self.proc.take().expect("running");
        // SAFETY: kill(2) on the daemon this fixture spawned; integers only.
        unsafe { libc::kill(p.0.id() as i32, libc::SIGTERM) };
        let st = p.0.wait().unwrap();
        std::mem::forget(p);
        st
    }
    pub async fn channel(&self) -> Channel {
        channel(&self.socket).await
    }
}

pub async fn channel(sock: &Path) -> Channel {
    let sock = sock.to_path_buf();
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(sock).await?)) }
        }))
        .await
        .expect("connect to CRI socket")
}

pub async fn clients(d: &Daemon) -> (RuntimeServiceClient<Channel>, ImageServiceClient<Channel>) {
    let ch = d.channel().await;
    (RuntimeServiceClient::new(ch.clone()), ImageServiceClient::new(ch))
}

/// registries.conf making a local registry usable over plain HTTP.
pub fn insecure_registries(addrs: &[&str]) -> String {
    let mut s = String::from("unqualified-search-registries = []\n");
    for a in addrs {
        s += &format!("[[registry]]\nlocation = \"{a}\"\ninsecure = true\n");
    }
    s
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every path under a directory (relative), sorted, skipping lock files and tmp contents.
pub fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if rel.ends_with(".lock") || rel.starts_with("tmp/") {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}

pub fn image_spec(image: &str) -> Option<k8s_cri::v1::ImageSpec> {
    Some(k8s_cri::v1::ImageSpec { image: image.into(), ..Default::default() })
}

/// Peak resident set size (VmHWM) of a process, in bytes.
pub fn vm_hwm(pid: u32) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let kb: u64 = st
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb * 1024
}
