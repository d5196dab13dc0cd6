//! CheckpointContainer and the restore from its archive through berth-cri, in the VM bed
//! (where CRIU works): a counting shell is checkpointed (it keeps running), the archive has
//! CRI-O's layout, the container is removed, CreateContainer names the archive as its image
//! and StartContainer brings the shell back: it goes on counting from its dumped value.

use crate::cri::common::{clients, Env};
use crate::cri::{container, host_pod, start};
use k8s_cri::v1 as cri;
use std::time::{Duration, Instant};

/// The numbers a container printed, from its CRI log (`<time> stdout F <n>`).
fn numbers(log: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter_map(|l| l.rsplit(' ').next()?.trim().parse().ok()).collect()
}

async fn wait_numbers(log: &std::path::Path, n: usize, what: &str) -> Result<Vec<u64>, String> {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let v = numbers(log);
        if v.len() >= n {
            return Ok(v);
        }
        if Instant::now() > end {
            return Err(format!("{what}: {} printed only {v:?}", log.display()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn counter(name: &str) -> cri::ContainerConfig {
    let mut c = container(name, &["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; usleep 50000; done"], 0);
    let unconfined =
        || Some(cri::SecurityProfile { profile_type: cri::security_profile::ProfileType::Unconfined as i32, ..Default::default() });
    c.linux.as_mut().unwrap().security_context =
        Some(cri::LinuxContainerSecurityContext { seccomp: unconfined(), apparmor: unconfined(), ..Default::default() });
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn cri_checkpoint_archive_restores_a_counting_container() {
    let test = "cri_checkpoint_archive_restores_a_counting_container";
    if berth_tests::cgroup2::skip(test) {
        return;
    }
    if !berth_tests::runtime::runtime_path().display().to_string().contains("berth") {
        eprintln!("{test}: skipped: berth's checkpoint/restore");
        return;
    }
    let env = Env::new("unqualified-search-registries = []\n");
    let mut daemon = start(&env, "");
    let (mut rt, _) = clients(&daemon).await;
    let mut pcfg = host_pod(&env, "ckpt", "");
    // Each container its own pid namespace (a pod-wide one would be external to CRIU).
    let ns = pcfg.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options.as_mut().unwrap();
    ns.pid = cri::NamespaceMode::Container as i32;
    let result = async {
        let pod = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(pcfg.clone()), runtime_handler: String::new() })
            .await
            .map_err(|e| format!("RunPodSandbox: {e}"))?
            .into_inner()
            .pod_sandbox_id;
        let base = rt.clone();
        let create = |cfg: cri::ContainerConfig| {
            let (mut rt, pod, pcfg) = (base.clone(), pod.clone(), pcfg.clone());
            async move {
                Ok::<String, String>(
                    rt.create_container(cri::CreateContainerRequest { pod_sandbox_id: pod, config: Some(cfg), sandbox_config: Some(pcfg) })
                        .await
                        .map_err(|e| format!("CreateContainer: {e}"))?
                        .into_inner()
                        .container_id,
                )
            }
        };
        let id = create(counter("counter")).await?;
        rt.start_container(cri::StartContainerRequest { container_id: id.clone() }).await.map_err(|e| format!("StartContainer: {e}"))?;
        let log = env.p("logs/counter.log");
        wait_numbers(&log, 5, "before the checkpoint").await?;

        let location = env.p("counter.tar");
        rt.checkpoint_container(cri::CheckpointContainerRequest {
            container_id: id.clone(),
            location: location.display().to_string(),
            timeout: 120,
        })
        .await
        .map_err(|e| format!("CheckpointContainer: {e}"))?;
        let at_checkpoint = *numbers(&log).last().unwrap();
        let st = rt
            .container_status(cri::ContainerStatusRequest { container_id: id.clone(), verbose: false })
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .status
            .unwrap();
        if st.state != cri::ContainerState::ContainerRunning as i32 {
            return Err(format!("the container stopped at its checkpoint: {st:?}"));
        }
        let mut names: Vec<String> = tar::Archive::new(std::fs::File::open(&location).map_err(|e| e.to_string())?)
            .entries()
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().and_then(|e| e.path().ok().map(|p| p.to_string_lossy().trim_end_matches('/').to_string())))
            .filter(|n| !n.starts_with("checkpoint/") || n == "checkpoint/inventory.img")
            .collect();
        names.sort();
        // stats-dump: criu's statistics of the dump (CRI-O keeps it too).
        let want = ["checkpoint", "checkpoint/inventory.img", "config.dump", "dump.log", "rootfs-diff.tar", "spec.dump", "stats-dump"];
        if names != want {
            return Err(format!("archive entries {names:?}, want {want:?}"));
        }
        let later = wait_numbers(&log, at_checkpoint as usize + 3, "after the checkpoint").await?;
        let later = *later.last().unwrap();
        rt.stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 0 })
            .await
            .map_err(|e| format!("StopContainer: {e}"))?;
        rt.remove_container(cri::RemoveContainerRequest { container_id: id.clone() }).await.map_err(|e| format!("RemoveContainer: {e}"))?;

        let mut cfg = counter("restored");
        cfg.image = Some(cri::ImageSpec { image: location.display().to_string(), ..Default::default() });
        let rid = create(cfg).await?;
        let st = rt
            .container_status(cri::ContainerStatusRequest { container_id: rid.clone(), verbose: false })
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .status
            .unwrap();
        if st.state != cri::ContainerState::ContainerCreated as i32
            || st.image.as_ref().map(|i| i.image.as_str()) != Some(crate::cri::IMAGE)
        {
            return Err(format!("a container from the archive is created, of the original image: {st:?}"));
        }
        rt.start_container(cri::StartContainerRequest { container_id: rid.clone() })
            .await
            .map_err(|e| format!("StartContainer (restore): {e}"))?;
        let rlog = env.p("logs/restored.log");
        let resumed = wait_numbers(&rlog, 3, "after the restore").await?;
        // The restored shell goes on from its value at the dump (between the last number
        // before and the first after CheckpointContainer returned), not from 1.
        if !(resumed[0] > 5 && resumed[0] <= later + 1 && resumed[1] == resumed[0] + 1) {
            return Err(format!("restored counter {resumed:?} (checkpointed near {at_checkpoint}, ran on to {later})"));
        }
        let st = rt
            .container_status(cri::ContainerStatusRequest { container_id: rid.clone(), verbose: false })
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .status
            .unwrap();
        if st.state != cri::ContainerState::ContainerRunning as i32 {
            return Err(format!("restored container not running: {st:?}"));
        }
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.map_err(|e| e.to_string())?;
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    }
    .await;
    if result.is_err() {
        if let Ok(pods) = rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await {
            for p in pods.into_inner().items {
                let _ = rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: p.id.clone() }).await;
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
