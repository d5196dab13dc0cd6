//! ContainerStats / ListContainerStats / PodSandboxStats / ListPodSandboxStats through the
//! CRI socket: the numbers move with what the container does (cpu time, a file in the
//! writable layer, traffic in the pod's network namespace), filters select, bad ids get
//! the right codes.

use crate::node::Node;
use k8s_cri::v1 as cri;
use std::collections::HashMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn v(x: &Option<cri::UInt64Value>) -> u64 {
    x.as_ref().map(|v| v.value).unwrap_or(0)
}

async fn stats(n: &mut Node, id: &str) -> cri::ContainerStats {
    n.rt.container_stats(cri::ContainerStatsRequest { container_id: id.into() }).await.unwrap().into_inner().stats.unwrap()
}

async fn listed(n: &mut Node, filter: cri::ContainerStatsFilter) -> Vec<String> {
    let r = n.rt.list_container_stats(cri::ListContainerStatsRequest { filter: Some(filter) }).await.unwrap().into_inner();
    let mut ids: Vec<String> = r.stats.into_iter().map(|s| s.attributes.unwrap().id).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_follow_the_containers_and_the_pod() {
    let mut n = Node::start("stats").await;
    let pcfg = n.pod_config("stats", false);
    let pod = n.run_pod(&pcfg).await;
    let mut busy_cfg = Node::container_config(
        "busy",
        &["sh", "-c", "dd if=/dev/zero of=/data bs=1M count=8 2>/dev/null; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo done; exec sleep 600"],
    );
    busy_cfg.labels = HashMap::from([("role".to_string(), "busy".to_string())]);
    let busy = n.run(&pod, &pcfg, busy_cfg).await;
    let quick = n.run(&pod, &pcfg, Node::container_config("quick", &["true"])).await;
    n.wait_exited(&quick, T).await;
    // Wait for the busy loop to end (its log says so), then read.
    let end = std::time::Instant::now() + T;
    while !n.stdout_of(&pcfg, "busy").contains("done") {
        assert!(std::time::Instant::now() < end, "busy container did not finish its loop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let s = stats(&mut n, &busy).await;
    assert_eq!(s.attributes.as_ref().unwrap().id, busy);
    assert_eq!(s.attributes.as_ref().unwrap().metadata.as_ref().unwrap().name, "busy");
    assert_eq!(s.attributes.as_ref().unwrap().labels.get("role").map(String::as_str), Some("busy"));
    let cpu = s.cpu.expect("cpu of a running container");
    let mem = s.memory.expect("memory of a running container");
    assert!(cpu.timestamp > 0 && mem.timestamp > 0);
    // 100000 shell iterations take well over 10 ms of cpu on any machine.
    assert!(v(&cpu.usage_core_nano_seconds) > 10_000_000, "{cpu:?}");
    assert!(v(&mem.working_set_bytes) > 0 && v(&mem.usage_bytes) >= v(&mem.working_set_bytes), "{mem:?}");
    let wl = s.writable_layer.clone().expect("writable layer");
    assert!(v(&wl.used_bytes) >= 8 << 20, "the 8 MiB file is in the writable layer: {wl:?}");
    assert!(v(&wl.inodes_used) >= 2, "{wl:?}");
    // The counter only grows; the rate is a rate (at most both cores of this machine).
    let s2 = stats(&mut n, &busy).await;
    let cpu2 = s2.cpu.unwrap();
    assert!(v(&cpu2.usage_core_nano_seconds) >= v(&cpu.usage_core_nano_seconds));
    assert!(cpu2.timestamp > cpu.timestamp);
    let cores = std::thread::available_parallelism().map(|c| c.get() as u64).unwrap_or(1);
    assert!(v(&cpu2.usage_nano_cores) <= cores * 1_000_000_000, "{cpu2:?}");

    // An exited container: attributes and writable layer, no cpu or memory.
    let q = stats(&mut n, &quick).await;
    assert!(q.cpu.is_none() && q.memory.is_none(), "{q:?}");
    assert!(q.writable_layer.is_some());

    // Filters.
    let mut both = vec![busy.clone(), quick.clone()];
    both.sort();
    assert_eq!(listed(&mut n, Default::default()).await, both);
    assert_eq!(listed(&mut n, cri::ContainerStatsFilter { pod_sandbox_id: pod.clone(), ..Default::default() }).await, both);
    assert_eq!(listed(&mut n, cri::ContainerStatsFilter { id: busy[..12].into(), ..Default::default() }).await, vec![busy.clone()]);
    let by_label = cri::ContainerStatsFilter { label_selector: HashMap::from([("role".into(), "busy".into())]), ..Default::default() };
    assert_eq!(listed(&mut n, by_label).await, vec![busy.clone()]);
    let none = cri::ContainerStatsFilter { label_selector: HashMap::from([("role".into(), "other".into())]), ..Default::default() };
    assert!(listed(&mut n, none).await.is_empty());

    // Pod stats: traffic from the pod shows on its interface.
    let gw =
        n.rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: pod.clone(), verbose: false }).await.unwrap().into_inner();
    let ip = gw.status.unwrap().network.unwrap().ip;
    let gateway = format!("{}.1", ip.rsplit_once('.').unwrap().0);
    let before =
        n.rt.pod_sandbox_stats(cri::PodSandboxStatsRequest { pod_sandbox_id: pod.clone() }).await.unwrap().into_inner().stats.unwrap();
    let tx_before = v(&before.linux.as_ref().unwrap().network.as_ref().unwrap().default_interface.as_ref().unwrap().tx_bytes);
    let _ =
        n.rt.exec_sync(cri::ExecSyncRequest {
            container_id: busy.clone(),
            cmd: vec!["sh".into(), "-c".into(), format!("echo x | nc -w 1 {gateway} 9")],
            timeout: 10,
        })
        .await
        .unwrap();
    let p = n.rt.pod_sandbox_stats(cri::PodSandboxStatsRequest { pod_sandbox_id: pod.clone() }).await.unwrap().into_inner().stats.unwrap();
    assert_eq!(p.attributes.as_ref().unwrap().id, pod);
    let l = p.linux.unwrap();
    let net = l.network.unwrap();
    let eth0 = net.default_interface.unwrap();
    assert_eq!(eth0.name, "eth0");
    assert!(v(&eth0.tx_bytes) > tx_before, "the connection attempt was sent: {tx_before} → {eth0:?}");
    assert!(net.interfaces.iter().all(|i| i.name != "lo"));
    assert!(v(&l.cpu.unwrap().usage_core_nano_seconds) >= v(&cpu2.usage_core_nano_seconds));
    assert!(v(&l.memory.unwrap().working_set_bytes) > 0);
    assert!(v(&l.process.unwrap().process_count) >= 1);
    let mut ids: Vec<String> = l.containers.into_iter().map(|c| c.attributes.unwrap().id).collect();
    ids.sort();
    assert_eq!(ids, both);
    let all = n.rt.list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: None }).await.unwrap().into_inner().stats;
    assert_eq!(all.len(), 1);
    let other = cri::PodSandboxStatsFilter { label_selector: HashMap::from([("x".into(), "y".into())]), ..Default::default() };
    assert!(n
        .rt
        .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: Some(other) })
        .await
        .unwrap()
        .into_inner()
        .stats
        .is_empty());

    // Bad ids.
    let unknown = "0".repeat(64);
    let code = |r: Result<tonic::Response<cri::ContainerStatsResponse>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(code(n.rt.container_stats(cri::ContainerStatsRequest { container_id: unknown.clone() }).await), tonic::Code::NotFound);
    assert_eq!(code(n.rt.container_stats(cri::ContainerStatsRequest { container_id: String::new() }).await), tonic::Code::InvalidArgument);
    let e = n.rt.pod_sandbox_stats(cri::PodSandboxStatsRequest { pod_sandbox_id: unknown }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}
