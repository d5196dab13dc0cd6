//! A node for RuntimeService tests: berth-cri on temp roots with berth (or `BERTH_RUNTIME`)
//! as handler, berth-mon as monitor, a CNI config of its own (a bridge with a unique name and
//! subnet, host-local IPAM in the temp dir, portmap), and a local busybox image imported.
//! Dropping it removes every pod through the API, stops the daemon, and fails the test for
//! anything left: mounts under its dirs, monitor processes, the bridge.

use crate::common::{clients, Daemon, Env};
use berth_tests::registry::{busybox_layer, docker_archive_with};
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

pub const IMAGE: &str = "localhost/berth-test/busybox:latest";
static N: AtomicU32 = AtomicU32::new(0);

pub struct Node {
    /// Host network changes (bridges, veths, iptables) of one test at a time.
    _net: std::sync::MutexGuard<'static, ()>,
    rules_before: Vec<String>,
    pub env: Env,
    pub daemon: Daemon,
    pub rt: RuntimeServiceClient<Channel>,
    pub img: ImageServiceClient<Channel>,
    pub bridge: String,
}

fn runtime() -> String {
    berth_tests::runtime::runtime_path().display().to_string()
}

impl Node {
    pub async fn start(test: &str) -> Node {
        Self::start_with(test, "").await
    }

    /// As `start`, with `conf_d` as a drop-in of the daemon's config.
    pub async fn start_with(test: &str, conf_d: &str) -> Node {
        let net = crate::network::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let rules_before = crate::network::iptables_rules();
        let env = Env::new("unqualified-search-registries = []\n");
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = (pid as u32).wrapping_mul(31).wrapping_add(n) % 200;
        let bridge = format!("btbr{}x{}", pid % 100000, n);
        let subnet = format!("10.{}.{}.0/24", 100 + (tag % 100), (pid / 7 + n * 13) % 250);
        let gateway = subnet.replace(".0/24", ".1");
        for args in [
            vec!["link", "add", bridge.as_str(), "type", "bridge"],
            vec!["addr", "add", &format!("{gateway}/24"), "dev", bridge.as_str()],
            vec!["link", "set", bridge.as_str(), "up"],
        ] {
            let st = std::process::Command::new("ip").args(&args).status().expect("ip");
            assert!(st.success(), "ip {args:?}");
        }
        let net_name = format!("bt-{pid}-{n}-{}", test.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect::<String>());
        std::fs::create_dir_all(env.p("cni")).unwrap();
        std::fs::create_dir_all(env.p("ipam")).unwrap();
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": net_name,
            "plugins": [
                // isGateway would switch on the host's global ip_forward; the test bridge gets
                // the gateway address itself instead (below), which is all pods on one bridge
                // and a host port need.
                {"type": "bridge", "bridge": bridge, "isGateway": false, "ipMasq": false, "hairpinMode": true,
                 "ipam": {"type": "host-local", "dataDir": env.p("ipam"), "ranges": [[{"subnet": subnet, "gateway": gateway}]]}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        });
        std::fs::write(env.p("cni/10-test.conflist"), serde_json::to_vec_pretty(&conf).unwrap()).unwrap();
        let handler = if runtime().contains("runc") { "runc" } else { "berth" };
        std::fs::write(
            env.p("berth.conf"),
            format!(
                "[runtime]\ndefault_handler = \"{handler}\"\nmonitor_path = \"{}\"\n[runtime.handlers.{handler}]\npath = \"{}\"\n[network]\ncni_conf_dir = \"{}\"\ncni_plugin_dirs = [\"/usr/lib/cni\"]\n",
                berth_tests::bin("berth-mon").display(),
                runtime(),
                env.p("cni").display()
            ),
        )
        .unwrap();
        let archive = env.p("busybox.tar");
        docker_archive_with(&archive, &[busybox_layer()], IMAGE, serde_json::json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}));
        let o = env.cli(&["image", "import", archive.to_str().unwrap()]);
        assert!(o.status.success(), "image import: {}", crate::common::stderr(&o));
        std::fs::write(env.p("conf.d/90-test.conf"), conf_d).unwrap();
        let daemon = env.start();
        let (rt, img) = clients(&daemon).await;
        Node { _net: net, rules_before, env, daemon, rt, img, bridge }
    }

    /// kill -9 the daemon (its containers and monitors keep running).
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.daemon.proc.take() {
            // SAFETY: kill(2) on the daemon this fixture spawned; integers only.
            unsafe { libc::kill(p.0.id() as i32, libc::SIGKILL) };
            let _ = p.0.wait();
            std::mem::forget(p);
        }
    }

    pub async fn restart(&mut self) {
        self.kill9();
        self.daemon = self.env.start();
        let (rt, img) = clients(&self.daemon).await;
        self.rt = rt;
        self.img = img;
    }

    pub fn pod_config(&self, name: &str, host_network: bool) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}-{}", std::process::id()),
                namespace: "bt".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self.env.p(&format!("logs/{name}")).display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: if host_network { cri::NamespaceMode::Node as i32 } else { cri::NamespaceMode::Pod as i32 },
                        pid: cri::NamespaceMode::Container as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub async fn run_pod(&mut self, cfg: &cri::PodSandboxConfig) -> String {
        self.rt
            .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: String::new() })
            .await
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e:?}\n{}", self.daemon.log()))
            .into_inner()
            .pod_sandbox_id
    }

    pub fn container_config(name: &str, cmd: &[&str]) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(cri::ImageSpec { image: IMAGE.into(), ..Default::default() }),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}/0.log"),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    seccomp: Some(cri::SecurityProfile {
                        profile_type: cri::security_profile::ProfileType::Unconfined as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub async fn create(&mut self, pod: &str, pcfg: &cri::PodSandboxConfig, cfg: cri::ContainerConfig) -> String {
        self.rt
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(cfg),
                sandbox_config: Some(pcfg.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer: {e:?}\n{}", self.daemon.log()))
            .into_inner()
            .container_id
    }

    pub async fn start_container(&mut self, id: &str) {
        self.rt
            .start_container(cri::StartContainerRequest { container_id: id.into() })
            .await
            .unwrap_or_else(|e| panic!("StartContainer: {e:?}\n{}", self.daemon.log()));
    }

    /// Create and start; returns the id.
    pub async fn run(&mut self, pod: &str, pcfg: &cri::PodSandboxConfig, cfg: cri::ContainerConfig) -> String {
        let id = self.create(pod, pcfg, cfg).await;
        self.start_container(&id).await;
        id
    }

    pub async fn status(&mut self, id: &str) -> cri::ContainerStatus {
        self.rt
            .container_status(cri::ContainerStatusRequest { container_id: id.into(), verbose: false })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap()
    }

    /// Wait (bounded) for a container to exit; returns its status.
    pub async fn wait_exited(&mut self, id: &str, limit: Duration) -> cri::ContainerStatus {
        let end = Instant::now() + limit;
        loop {
            let s = self.status(id).await;
            if s.state == cri::ContainerState::ContainerExited as i32 {
                return s;
            }
            assert!(Instant::now() < end, "container {id} did not exit: {s:?}");
            // The state comes from the monitor's exit file; ContainerStatus has no watch.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The container's CRI log, as the bytes it wrote to stdout.
    pub fn stdout_of(&self, pcfg: &cri::PodSandboxConfig, name: &str) -> String {
        let p = std::path::Path::new(&pcfg.log_directory).join(format!("{name}/0.log"));
        let data = std::fs::read(&p).unwrap_or_default();
        String::from_utf8_lossy(&berth_tests::monitor::stream_bytes(&berth_tests::monitor::records_of_bytes(&data), "stdout")).into_owned()
    }

    async fn cleanup(&mut self) -> Vec<String> {
        let mut left = vec![];
        if self.daemon.proc.is_some() {
            let pods =
                self.rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.map(|r| r.into_inner().items).unwrap_or_default();
            for p in pods {
                if let Err(e) = self.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: p.id.clone() }).await {
                    left.push(format!("RemovePodSandbox {}: {e:?}", p.id));
                }
            }
            let c =
                self.rt.list_containers(cri::ListContainersRequest::default()).await.map(|r| r.into_inner().containers).unwrap_or_default();
            if !c.is_empty() {
                left.push(format!("{} containers listed after every pod was removed", c.len()));
            }
            self.daemon.terminate();
        }
        let dir = self.env.dir.path().display().to_string();
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<String> =
            mi.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&dir)).map(String::from).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            left.push(format!("mount left: {m}"));
            let c = std::ffi::CString::new(m).unwrap();
            // SAFETY: umount2 of a NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        for (pid, cmd) in berth_tests::proc::reap_processes_mentioning(&format!("{dir}/"), Duration::from_secs(5)) {
            left.push(format!("process {pid} left (killed): {cmd}"));
        }
        // portmap never removes its top-level chains; the rest must be gone already.
        let now = crate::network::iptables_rules();
        let pods_left: Vec<_> = now
            .iter()
            .filter(|r| !self.rules_before.contains(r) && !r.contains("CNI-HOSTPORT-") && !r.contains("-N CNI-"))
            .cloned()
            .collect();
        left.extend(pods_left.into_iter().map(|r| format!("iptables rule left: {r}")));
        crate::network::remove_added_rules(&self.rules_before);
        // The bridge is the test's (the plugin never deletes one).
        if std::path::Path::new(&format!("/sys/class/net/{}", self.bridge)).exists() {
            let _ = std::process::Command::new("ip").args(["link", "del", &self.bridge]).status();
        }
        left
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let left = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(self.cleanup()));
        berth_tests::report_leftovers("CRI node", &left);
    }
}
