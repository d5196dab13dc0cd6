//! berth-cri on a pure cgroup v2 host: a container killed by the OOM killer is reported
//! through the CRI as exit code 137 with reason `OOMKilled`, and the memory stats of a
//! limited container are the cgroup's (working set within the limit, available = limit −
//! working set), and RuntimeDefault AppArmor (the guest's kernel has AppArmor) confines the
//! container with berth's own `berth-default` profile, loaded by berth-cri on first use.
//! In the systemd guest, with `cgroup_manager = "systemd"`, containers are scopes in their
//! pod's kubepods slice. Host-network pods: the guest has no CNI setup.

#[path = "../cri/common.rs"]
#[allow(dead_code)]
pub(crate) mod common;

use berth_tests::registry::{busybox_layer, docker_archive_with};
use common::{clients, Env};
use k8s_cri::v1 as cri;
use std::time::{Duration, Instant};

pub(crate) const IMAGE: &str = "localhost/berth-test/busybox:latest";

pub(crate) fn container(name: &str, cmd: &[&str], memory: i64) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: IMAGE.into(), ..Default::default() }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources { memory_limit_in_bytes: memory, ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// berth-cri on temp roots with this build's runtime (or BERTH_RUNTIME) as the handler,
/// `extra` appended to the `[runtime]` section, and the busybox image imported.
pub(crate) fn start(env: &Env, extra: &str) -> common::Daemon {
    let runtime = berth_tests::runtime::runtime_path().display().to_string();
    let handler = if runtime.contains("runc") { "runc" } else { "berth" };
    std::fs::write(
        env.p("berth.conf"),
        format!(
            "[runtime]\ndefault_handler = \"{handler}\"\nmonitor_path = \"{}\"\n{extra}\n[runtime.handlers.{handler}]\npath = \"{runtime}\"\n[network]\ncni_conf_dir = \"{}\"\n",
            berth_tests::bin("berth-mon").display(),
            env.p("no-cni").display()
        ),
    )
    .unwrap();
    let archive = env.p("busybox.tar");
    docker_archive_with(&archive, &[busybox_layer()], IMAGE, serde_json::json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}));
    let o = env.cli(&["image", "import", archive.to_str().unwrap()]);
    assert!(o.status.success(), "image import: {}", common::stderr(&o));
    env.start()
}

pub(crate) fn host_pod(env: &Env, name: &str, cgroup_parent: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("{name}-{}", std::process::id()),
            namespace: "bt".into(),
            attempt: 0,
        }),
        log_directory: env.p("logs").display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption { network: cri::NamespaceMode::Node as i32, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cri_reports_an_oom_kill_and_cgroup_memory_stats() {
    if berth_tests::cgroup2::skip("cri_reports_an_oom_kill_and_cgroup_memory_stats") {
        return;
    }
    if !std::path::Path::new("/sys/kernel/security/apparmor").exists() {
        // The guest starts without securityfs mounted.
        let st = std::process::Command::new("mount").args(["-t", "securityfs", "securityfs", "/sys/kernel/security"]).status().unwrap();
        assert!(st.success(), "mount securityfs");
    }
    let env = Env::new("unqualified-search-registries = []\n");
    let mut daemon = start(&env, "");
    let (mut rt, _) = clients(&daemon).await;
    let pcfg = host_pod(&env, "oom", "");
    let result = async {
        let pod = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(pcfg.clone()), runtime_handler: String::new() })
            .await
            .map_err(|e| format!("RunPodSandbox: {e}"))?
            .into_inner()
            .pod_sandbox_id;
        let base = rt.clone();
        let run = |cfg: cri::ContainerConfig| {
            let (mut rt, pod, pcfg) = (base.clone(), pod.clone(), pcfg.clone());
            async move {
                let id = rt
                    .create_container(cri::CreateContainerRequest { pod_sandbox_id: pod, config: Some(cfg), sandbox_config: Some(pcfg) })
                    .await
                    .map_err(|e| format!("CreateContainer: {e}"))?
                    .into_inner()
                    .container_id;
                rt.start_container(cri::StartContainerRequest { container_id: id.clone() })
                    .await
                    .map_err(|e| format!("StartContainer: {e}"))?;
                Ok::<String, String>(id)
            }
        };
        // 16 MiB limit, a 64 MiB buffer: the OOM killer ends it.
        let hog = run(container("hog", &["sh", "-c", "echo before; exec dd if=/dev/zero of=/dev/null bs=64M count=1"], 16 << 20)).await?;
        let limited = run(container("limited", &["sleep", "600"], 32 << 20)).await?;
        let end = Instant::now() + Duration::from_secs(60);
        let st = loop {
            let s = rt
                .container_status(cri::ContainerStatusRequest { container_id: hog.clone(), verbose: false })
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .status
                .unwrap();
            if s.state == cri::ContainerState::ContainerExited as i32 {
                break s;
            }
            if Instant::now() > end {
                return Err(format!("hog did not exit: {s:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if st.exit_code != 137 || st.reason != "OOMKilled" {
            return Err(format!("expected 137/OOMKilled, got {} {:?}", st.exit_code, st.reason));
        }
        let s = rt
            .container_stats(cri::ContainerStatsRequest { container_id: limited.clone() })
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .stats
            .unwrap();
        let m = s.memory.ok_or("no memory stats")?;
        let ws = m.working_set_bytes.map(|v| v.value).unwrap_or(0);
        let avail = m.available_bytes.map(|v| v.value).ok_or("no available_bytes under a limit")?;
        if ws == 0 || ws > 32 << 20 || ws + avail != 32 << 20 {
            return Err(format!("memory stats not the cgroup's: working set {ws}, available {avail}"));
        }
        let mut confined = container("confined", &["cat", "/proc/self/attr/current"], 0);
        confined.linux.as_mut().unwrap().security_context = Some(cri::LinuxContainerSecurityContext {
            apparmor: Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                ..Default::default()
            }),
            ..Default::default()
        });
        let confined = run(confined).await?;
        let end = Instant::now() + Duration::from_secs(60);
        while rt
            .container_status(cri::ContainerStatusRequest { container_id: confined.clone(), verbose: false })
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .status
            .unwrap()
            .state
            != cri::ContainerState::ContainerExited as i32
        {
            if Instant::now() > end {
                return Err("the confined container did not exit".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(env.p("logs/confined.log")).unwrap_or_default();
        if !log.contains("berth-default (enforce)") {
            return Err(format!("RuntimeDefault is not berth-default: {log:?}"));
        }
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.map_err(|e| e.to_string())?;
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    }
    .await;
    if result.is_err() {
        // Whatever the failure, no pod outlives the test.
        if let Ok(pods) = rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await {
            for p in pods.into_inner().items {
                let _ = rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: p.id }).await;
            }
        }
    }
    let log = daemon.log();
    daemon.terminate();
    if let Err(e) = result {
        panic!("{e}\ndaemon log:\n{log}");
    }
}

/// With `runtime.cgroup_manager = "systemd"` (in the systemd guest): RuntimeConfig says
/// systemd, a pod's containers become `berth-<id>.scope` units in the pod's kubepods slice, a
/// cgroupfs-style parent is refused, and removal leaves no scope.
#[tokio::test(flavor = "multi_thread")]
async fn systemd_cri_containers_are_scopes_in_the_pods_slice() {
    if berth_tests::cgroup2::skip("systemd_cri_containers_are_scopes_in_the_pods_slice") {
        return;
    }
    let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if pid1.trim() != "systemd" {
        assert!(std::env::var_os("BERTH_REQUIRE_SYSTEMD").is_none(), "BERTH_REQUIRE_SYSTEMD=1 but PID 1 is {pid1:?}");
        eprintln!("systemd_cri_containers_are_scopes_in_the_pods_slice: skipped: needs systemd as PID 1");
        return;
    }
    let env = Env::new("unqualified-search-registries = []\n");
    let mut daemon = start(&env, "cgroup_manager = \"systemd\"");
    let (mut rt, _) = clients(&daemon).await;
    let tag = format!("bt{}", std::process::id());
    let slice = format!("kubepods-besteffort-pod{tag}.slice");
    let result = async {
        let rc = rt.runtime_config(cri::RuntimeConfigRequest {}).await.map_err(|e| e.to_string())?.into_inner();
        if rc.linux.map(|l| l.cgroup_driver) != Some(cri::CgroupDriver::Systemd as i32) {
            return Err("RuntimeConfig does not say systemd".to_string());
        }
        let bad = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(host_pod(&env, "bad", "/kubepods/pod1")),
                runtime_handler: String::new(),
            })
            .await;
        if bad.as_ref().map_err(|e| e.code()).err() != Some(tonic::Code::InvalidArgument) {
            return Err(format!("a cgroupfs parent under the systemd manager: {bad:?}"));
        }
        let pcfg = host_pod(&env, "sd", &slice);
        let pod = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(pcfg.clone()), runtime_handler: String::new() })
            .await
            .map_err(|e| format!("RunPodSandbox: {e}"))?
            .into_inner()
            .pod_sandbox_id;
        let cfg = container("sleeper", &["sleep", "600"], 64 << 20);
        let id = rt
            .create_container(cri::CreateContainerRequest { pod_sandbox_id: pod.clone(), config: Some(cfg), sandbox_config: Some(pcfg) })
            .await
            .map_err(|e| format!("CreateContainer: {e}"))?
            .into_inner()
            .container_id;
        rt.start_container(cri::StartContainerRequest { container_id: id.clone() }).await.map_err(|e| format!("StartContainer: {e}"))?;
        let st = rt
            .container_status(cri::ContainerStatusRequest { container_id: id.clone(), verbose: true })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let info: serde_json::Value = serde_json::from_str(st.info.get("info").ok_or("no verbose info")?).map_err(|e| e.to_string())?;
        let pid = info["pid"].as_i64().ok_or("no pid in the record")?;
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|e| e.to_string())?;
        let want = format!("0::/kubepods.slice/kubepods-besteffort.slice/{slice}/berth-{id}.scope");
        if cg.trim() != want {
            return Err(format!("container cgroup {cg:?}, want {want:?}"));
        }
        let max =
            std::fs::read_to_string(format!("/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice/{slice}/berth-{id}.scope/memory.max"))
                .unwrap_or_default();
        if max.trim() != (64u64 << 20).to_string() {
            return Err(format!("memory.max of the scope: {max:?}"));
        }
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.map_err(|e| e.to_string())?;
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.map_err(|e| e.to_string())?;
        let scope = format!("/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice/{slice}/berth-{id}.scope");
        if std::path::Path::new(&scope).exists() {
            return Err(format!("{scope} is left after removal"));
        }
        Ok::<(), String>(())
    }
    .await;
    if result.is_err() {
        if let Ok(pods) = rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await {
            for p in pods.into_inner().items {
                let _ = rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: p.id }).await;
            }
        }
    }
    // The pod's slice (kubelet's to make and remove) goes with the test.
    let _ = std::process::Command::new("systemctl").args(["stop", &slice]).status();
    let log = daemon.log();
    daemon.terminate();
    if let Err(e) = result {
        panic!("{e}\ndaemon log:\n{log}");
    }
}
