//! kill -9 of berth-cri in the middle of RunPodSandbox (while the CNI ADD runs) and of
//! CreateContainer (while the runtime's `create` runs), then a restart: the half-made pod or
//! container is undone — no pod or container listed, no IP allocation, veth, mount, monitor
//! or runtime state left — and the node works on.
//!
//! The daemon is caught at those points by wrappers that stop at a gate (a fifo) until the
//! test opens it: a `bridge` CNI plugin placed before Debian's in the plugin path, and a
//! runtime handler `gated` wrapping the real runtime. Each does so only while an `armed`
//! file exists, so the rest of the test runs straight through.

use crate::node::Node;
use k8s_cri::v1 as cri;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Gate {
    dir: PathBuf,
}

impl Gate {
    fn new(dir: PathBuf) -> Gate {
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = std::ffi::CString::new(dir.join("gate").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo of a NUL-terminated path; integers otherwise.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        Gate { dir }
    }
    fn arm(&self) {
        std::fs::write(self.dir.join("armed"), "").unwrap();
    }
    /// Waits (bounded) until a wrapper reached the gate.
    fn wait_reached(&self) {
        let end = Instant::now() + Duration::from_secs(30);
        while !self.dir.join("reached").exists() {
            assert!(Instant::now() < end, "nothing reached the gate at {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    /// Disarms, lets the waiting wrapper through and waits until what it wrapped returned.
    fn release(&self) {
        let _ = std::fs::remove_file(self.dir.join("armed"));
        std::fs::write(self.dir.join("gate"), "go\n").unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while !self.dir.join("passed").exists() {
            assert!(Instant::now() < end, "the gated command did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
        for f in ["reached", "passed"] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
    }
    /// A wrapper script: stops at the gate when armed and `condition` (shell) holds, then
    /// runs `real` with its arguments.
    fn wrapper(&self, path: &Path, condition: &str, real: &str) {
        let d = self.dir.display();
        let script = format!(
            "#!/bin/sh\nif [ -e {d}/armed ] && {condition}; then\n  : > {d}/reached\n  read -r _ < {d}/gate\n  {real} \"$@\"\n  rc=$?\n  : > {d}/passed\n  exit $rc\nfi\nexec {real} \"$@\"\n"
        );
        std::fs::write(path, script).unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
}

fn ip_allocations(n: &Node) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![n.env.p("ipam")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_str().is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()) {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

fn bridge_ports(n: &Node) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{}/brif", n.bridge)).map(|d| d.count()).unwrap_or(0)
}

fn mounts_under(p: &Path) -> Vec<String> {
    let p = p.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&p))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_run_pod_sandbox_and_create_container_leaves_nothing() {
    let mut n = Node::start("crash").await;
    let cni_gate = Gate::new(n.env.p("gates/cni"));
    let rt_gate = Gate::new(n.env.p("gates/runtime"));
    let cni_dir = n.env.p("gated-cni");
    std::fs::create_dir_all(&cni_dir).unwrap();
    cni_gate.wrapper(&cni_dir.join("bridge"), "[ \"$CNI_COMMAND\" = ADD ]", "/usr/lib/cni/bridge");
    let real_rt = berth_tests::runtime::runtime_path().display().to_string();
    let gated_rt = n.env.p("gated-runtime");
    rt_gate.wrapper(&gated_rt, "case \" $* \" in *\" create \"*) true;; *) false;; esac", &real_rt);
    std::fs::write(
        n.env.p("conf.d/50-gated.conf"),
        format!(
            "[runtime.handlers.gated]\npath = \"{}\"\n[network]\ncni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\n",
            gated_rt.display(),
            cni_dir.display()
        ),
    )
    .unwrap();
    n.restart().await;

    // 1. kill -9 while the CNI ADD runs.
    cni_gate.arm();
    let pcfg = n.pod_config("crashpod", false);
    let mut rt = n.rt.clone();
    let cfg = pcfg.clone();
    let call =
        tokio::spawn(
            async move { rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(cfg), runtime_handler: String::new() }).await },
        );
    tokio::task::block_in_place(|| cni_gate.wait_reached());
    n.kill9();
    assert!(call.await.unwrap().is_err(), "RunPodSandbox cannot have succeeded");
    // The orphaned plugin finishes its ADD with nobody listening: a veth and an address exist.
    tokio::task::block_in_place(|| cni_gate.release());
    assert!(!ip_allocations(&n).is_empty(), "the orphaned ADD allocated an address");
    n.restart().await;
    assert!(n.rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.unwrap().into_inner().items.is_empty());
    assert_eq!(ip_allocations(&n), Vec::<String>::new(), "address released by the recovery's DEL");
    assert_eq!(bridge_ports(&n), 0, "veth removed by the recovery's DEL");
    assert_eq!(mounts_under(&n.env.p("state/sandboxes")), Vec::<String>::new(), "namespaces unpinned");
    assert!(std::fs::read_dir(n.env.p("state/sandboxes")).map(|d| d.count()).unwrap_or(0) == 0, "no sandbox record left");
    // The same name can be used again (its reservation went with the record).
    let pod = n.run_pod(&pcfg).await;

    // 2. kill -9 while the runtime's create runs (under the monitor).
    let mut gpcfg = n.pod_config("gatedpod", false);
    gpcfg.metadata.as_mut().unwrap().uid = format!("gated-{}", std::process::id());
    let gpod =
        n.rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(gpcfg.clone()), runtime_handler: "gated".into() })
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id;
    rt_gate.arm();
    let mut rt = n.rt.clone();
    let (gp, gc) = (gpod.clone(), gpcfg.clone());
    let call = tokio::spawn(async move {
        let cfg = Node::container_config("victim", &["sleep", "600"]);
        rt.create_container(cri::CreateContainerRequest { pod_sandbox_id: gp, config: Some(cfg), sandbox_config: Some(gc) }).await
    });
    tokio::task::block_in_place(|| rt_gate.wait_reached());
    n.kill9();
    assert!(call.await.unwrap().is_err(), "CreateContainer cannot have succeeded");
    // The monitor goes on and the runtime's create completes: a container exists in the
    // runtime's state that no record calls created.
    tokio::task::block_in_place(|| rt_gate.release());
    let rt_root = n.env.p("state/runtime/gated");
    n.restart().await;
    let listed = n.rt.list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    assert!(listed.is_empty(), "no half-created container listed: {listed:?}");
    let state = std::process::Command::new(&real_rt).args(["--root", rt_root.to_str().unwrap(), "list", "-q"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "", "runtime state removed");
    assert_eq!(mounts_under(&n.env.p("images/containers")), Vec::<String>::new(), "rootfs unmounted");
    let end = Instant::now() + Duration::from_secs(10);
    let monitors = || berth_tests::proc::processes_mentioning(&n.env.p("state/containers").display().to_string());
    while !monitors().is_empty() {
        assert!(Instant::now() < end, "a monitor of the half-created container is left: {:?}", monitors());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The node works on: both pods take containers.
    let ok = n.run(&pod, &pcfg, Node::container_config("after", &["sh", "-c", "echo fine"])).await;
    assert_eq!(n.wait_exited(&ok, Duration::from_secs(30)).await.exit_code, 0);
    let ok2 = n.run(&gpod, &gpcfg, Node::container_config("after2", &["true"])).await;
    assert_eq!(n.wait_exited(&ok2, Duration::from_secs(30)).await.exit_code, 0);
}
