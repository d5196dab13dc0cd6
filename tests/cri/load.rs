//! Bounded load on loopback: 50 pods with 2 containers each, created concurrently through
//! the CRI socket, checked running, torn down concurrently — twice — and then nothing of
//! them may be left: no pod or container listed, no mount, monitor, veth, IP allocation or
//! cgroup. The figures (wall time of each phase) are printed for docs/CRI.md.

use crate::node::Node;
use k8s_cri::v1 as cri;
use std::time::{Duration, Instant};

const PODS: usize = 50;

async fn one_pod(
    mut rt: k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
    pcfg: cri::PodSandboxConfig,
) -> Result<(String, Vec<String>), String> {
    let pod = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(pcfg.clone()), runtime_handler: String::new() })
        .await
        .map_err(|e| format!("RunPodSandbox: {e}"))?
        .into_inner()
        .pod_sandbox_id;
    let mut ids = vec![];
    for name in ["a", "b"] {
        let cfg = Node::container_config(name, &["sleep", "600"]);
        let id = rt
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(cfg),
                sandbox_config: Some(pcfg.clone()),
            })
            .await
            .map_err(|e| format!("CreateContainer: {e}"))?
            .into_inner()
            .container_id;
        rt.start_container(cri::StartContainerRequest { container_id: id.clone() }).await.map_err(|e| format!("StartContainer: {e}"))?;
        ids.push(id);
    }
    Ok((pod, ids))
}

async fn teardown(
    mut rt: k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
    pod: String,
) -> Result<(), String> {
    rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.map_err(|e| format!("StopPodSandbox: {e}"))?;
    rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.map_err(|e| format!("RemovePodSandbox: {e}"))?;
    Ok(())
}

/// What of the pods could be left on the host, as a list of findings.
fn leftovers(n: &Node, containers: &[String]) -> Vec<String> {
    let mut left = vec![];
    let dir = n.env.dir.path().display().to_string();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    left.extend(mi.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&dir)).map(|m| format!("mount {m}")));
    let ports = std::fs::read_dir(format!("/sys/class/net/{}/brif", n.bridge)).map(|d| d.count()).unwrap_or(0);
    if ports > 0 {
        left.push(format!("{ports} veths still on the bridge"));
    }
    for e in walk(&n.env.p("ipam")) {
        let name = e.file_name().and_then(|s| s.to_str()).unwrap_or("");
        if name.parse::<std::net::IpAddr>().is_ok() {
            left.push(format!("IP allocation {}", e.display()));
        }
    }
    for id in containers {
        for base in [
            "/sys/fs/cgroup/unified/berth",
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup/cpu,cpuacct",
            "/sys/fs/cgroup",
        ] {
            let p = format!("{base}/{id}");
            if std::path::Path::new(&p).exists() {
                left.push(format!("cgroup {p}"));
            }
        }
    }
    let procs = std::fs::read_dir("/proc").unwrap().flatten().filter(|e| {
        std::fs::read(e.path().join("cmdline")).map(|c| String::from_utf8_lossy(&c).contains(&format!("{dir}/"))).unwrap_or(false)
    });
    // The daemon itself mentions the dir; every other process is a pod's.
    let daemon = n.daemon.proc.as_ref().map(|p| p.0.id().to_string()).unwrap_or_default();
    left.extend(
        procs.filter(|e| e.file_name().to_string_lossy() != daemon).map(|e| format!("process {}", e.file_name().to_string_lossy())),
    );
    left
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(d) = std::fs::read_dir(p) {
        for e in d.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_pods_with_two_containers_twice_leave_nothing() {
    let mut n = Node::start("load").await;
    for round in 1..=2 {
        let t0 = Instant::now();
        let mut tasks = vec![];
        for i in 0..PODS {
            let mut pcfg = n.pod_config(&format!("load{round}-{i}"), false);
            pcfg.log_directory = n.env.p(&format!("logs/load{round}-{i}")).display().to_string();
            tasks.push(tokio::spawn(one_pod(n.rt.clone(), pcfg)));
        }
        let mut pods = vec![];
        let mut containers = vec![];
        let mut errors = vec![];
        for t in tasks {
            match t.await.unwrap() {
                Ok((p, c)) => {
                    pods.push(p);
                    containers.extend(c);
                }
                Err(e) => errors.push(e),
            }
        }
        let created = t0.elapsed();
        assert!(
            errors.is_empty(),
            "round {round}: {} of {PODS} pods failed: {:?}\n{}",
            errors.len(),
            &errors[..errors.len().min(5)],
            n.daemon.log()
        );
        // Every container runs, every pod has its own address.
        let listed = n.rt.list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
        let running = listed.iter().filter(|c| c.state == cri::ContainerState::ContainerRunning as i32).count();
        assert_eq!(running, 2 * PODS, "round {round}: running containers");
        let mut ips = std::collections::HashSet::new();
        for p in &pods {
            let st =
                n.rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: p.clone(), verbose: false })
                    .await
                    .unwrap()
                    .into_inner();
            ips.insert(st.status.unwrap().network.unwrap().ip);
        }
        assert_eq!(ips.len(), PODS, "round {round}: distinct pod IPs");
        let t1 = Instant::now();
        let tasks: Vec<_> = pods.iter().map(|p| tokio::spawn(teardown(n.rt.clone(), p.clone()))).collect();
        for t in tasks {
            t.await.unwrap().unwrap_or_else(|e| panic!("round {round}: {e}\n{}", n.daemon.log()));
        }
        let removed = t1.elapsed();
        assert!(n.rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.unwrap().into_inner().items.is_empty());
        assert!(n.rt.list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers.is_empty());
        // Monitors end right after their containers; give them a bounded moment.
        let end = Instant::now() + Duration::from_secs(10);
        let mut left = leftovers(&n, &containers);
        while !left.is_empty() && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = leftovers(&n, &containers);
        }
        assert!(left.is_empty(), "round {round} left: {left:?}");
        eprintln!(
            "load round {round}: {PODS} pods x 2 containers created and running in {:.1} s, torn down in {:.1} s",
            created.as_secs_f64(),
            removed.as_secs_f64()
        );
    }
}
