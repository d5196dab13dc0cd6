//! Metrics through the daemon's two faces: the CRI metrics RPCs (ListMetricDescriptors,
//! ListPodSandboxMetrics), checked against ContainerStats/PodSandboxStats of the same
//! container and pod, and the daemon's own Prometheus endpoint (`[metrics]`), checked to
//! count calls, errors by gRPC code and image pulls, and to listen only when enabled.

use crate::common::{clients, image_spec, insecure_registries, Env};
use crate::node::Node;
use berth_tests::registry::{layer_tar, Comp, Entry, Layout, Registry};
use k8s_cri::v1 as cri;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(30);
const NS: u64 = 1_000_000_000;

fn v(x: &Option<cri::UInt64Value>) -> u64 {
    x.as_ref().map(|v| v.value).unwrap_or(0)
}

/// A loopback port nothing listens on right now (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn metrics_conf(port: u16, enable: bool) -> String {
    format!("[metrics]\nenable = {enable}\naddress = \"127.0.0.1:{port}\"\n")
}

/// GET /metrics; `Err` when nothing accepts the connection.
async fn scrape(port: u16) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    let mut out = String::new();
    tokio::time::timeout(T, s.read_to_string(&mut out)).await??;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    Ok(out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// The value of the sample `series` (`name{labels}` exactly as exposed); 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok()).unwrap_or(0.0)
}

struct Series<'a> {
    m: &'a cri::Metric,
    labels: HashMap<&'a str, &'a str>,
}

/// Checks every metric against its descriptor and indexes its labels.
fn check<'a>(descs: &'a HashMap<String, Vec<String>>, ms: &'a [cri::Metric]) -> Vec<Series<'a>> {
    ms.iter()
        .map(|m| {
            let keys = descs.get(&m.name).unwrap_or_else(|| panic!("{} is not among the descriptors", m.name));
            assert_eq!(m.label_values.len(), keys.len(), "{}: {:?} for keys {keys:?}", m.name, m.label_values);
            assert!(m.value.is_some(), "{}", m.name);
            Series { m, labels: keys.iter().map(String::as_str).zip(m.label_values.iter().map(String::as_str)).collect() }
        })
        .collect()
}

fn one<'a>(s: &'a [Series<'a>], name: &str, label: Option<(&str, &str)>) -> u64 {
    let hits: Vec<&Series> = s.iter().filter(|x| x.m.name == name && label.is_none_or(|(k, val)| x.labels.get(k) == Some(&val))).collect();
    assert_eq!(hits.len(), 1, "{name} {label:?}: {} series", hits.len());
    v(&hits[0].m.value)
}

async fn pod_metrics(n: &mut Node, pod: &str) -> cri::PodSandboxMetrics {
    let all = n.rt.list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {}).await.unwrap().into_inner().pod_metrics;
    all.into_iter().find(|p| p.pod_sandbox_id == pod).expect("the pod has metrics")
}

async fn stats(n: &mut Node, id: &str) -> cri::ContainerStats {
    n.rt.container_stats(cri::ContainerStatsRequest { container_id: id.into() }).await.unwrap().into_inner().stats.unwrap()
}

async fn pod_stats(n: &mut Node, pod: &str) -> cri::NetworkInterfaceUsage {
    let s = n.rt.pod_sandbox_stats(cri::PodSandboxStatsRequest { pod_sandbox_id: pod.into() }).await.unwrap().into_inner().stats.unwrap();
    s.linux.unwrap().network.unwrap().default_interface.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_metrics_agree_with_the_stats() {
    let port = free_port();
    let mut n = Node::start_with("metrics", &metrics_conf(port, true)).await;
    let descs: HashMap<String, Vec<String>> =
        n.rt.list_metric_descriptors(cri::ListMetricDescriptorsRequest {})
            .await
            .unwrap()
            .into_inner()
            .descriptors
            .into_iter()
            .map(|d| (d.name, d.label_keys))
            .collect();
    for name in ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_network_receive_bytes_total"] {
        assert!(descs.contains_key(name), "{name} is not described: {descs:?}");
    }

    let pcfg = n.pod_config("metrics", false);
    let pod = n.run_pod(&pcfg).await;
    let busy = n
        .run(
            &pod,
            &pcfg,
            Node::container_config("busy", &["sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo done; exec sleep 600"]),
        )
        .await;
    let quick = n.run(&pod, &pcfg, Node::container_config("quick", &["true"])).await;
    n.wait_exited(&quick, T).await;
    let end = Instant::now() + T;
    while !n.stdout_of(&pcfg, "busy").contains("done") {
        assert!(Instant::now() < end, "busy container did not finish its loop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Container series, between two ContainerStats.
    let before = stats(&mut n, &busy).await;
    let pm = pod_metrics(&mut n, &pod).await;
    let after = stats(&mut n, &busy).await;
    let ids: Vec<&str> = pm.container_metrics.iter().map(|c| c.container_id.as_str()).collect();
    assert_eq!(ids, [busy.as_str()], "only the running container has series");
    let cm = &pm.container_metrics[0];
    let s = check(&descs, &cm.metrics);
    for x in &s {
        assert_eq!(x.labels["id"], busy);
        assert_eq!((x.labels["pod"], x.labels["namespace"], x.labels["container"]), ("metrics", "bt", "busy"), "{}", x.m.name);
        assert_eq!(x.labels["image"], crate::node::IMAGE);
    }
    let (cpu0, cpu1) = (v(&before.cpu.as_ref().unwrap().usage_core_nano_seconds), v(&after.cpu.as_ref().unwrap().usage_core_nano_seconds));
    let cpu = one(&s, "container_cpu_usage_seconds_total", Some(("cpu", "total")));
    // Whole seconds of the same counter, read between the two stats.
    assert!(cpu >= cpu0 / NS && cpu <= cpu1 / NS, "{cpu} s against {cpu0}..{cpu1} ns");
    let (ws0, ws1) = (v(&before.memory.as_ref().unwrap().working_set_bytes), v(&after.memory.as_ref().unwrap().working_set_bytes));
    let ws = one(&s, "container_memory_working_set_bytes", None);
    // The shell's memory barely moves while it sleeps; allow 1 MiB either way.
    let (lo, hi) = (ws0.min(ws1).saturating_sub(1 << 20), ws0.max(ws1) + (1 << 20));
    assert!(ws > 0 && (lo..=hi).contains(&ws), "{ws} against {ws0}, {ws1}");
    assert!(one(&s, "container_memory_usage_bytes", None) >= ws);
    assert!(one(&s, "container_processes", None) >= 1);
    let wl = v(&after.writable_layer.as_ref().unwrap().used_bytes);
    assert_eq!(one(&s, "container_fs_usage_bytes", None), wl, "the writable layer did not change");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let seen = one(&s, "container_last_seen", None);
    assert!(seen <= now && seen + 60 > now, "{seen} vs {now}");
    let started = one(&s, "container_start_time_seconds", None);
    assert!(started <= seen && started + 120 > seen, "{started}");
    assert_eq!(one(&s, "container_spec_memory_limit_bytes", None), 0, "no limit was set");

    // The counter only grows.
    let again = pod_metrics(&mut n, &pod).await;
    let s2 = check(&descs, &again.container_metrics[0].metrics);
    assert!(one(&s2, "container_cpu_usage_seconds_total", None) >= cpu);

    // Pod series: the network of the pod, between two PodSandboxStats, after traffic.
    let st =
        n.rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: pod.clone(), verbose: false }).await.unwrap().into_inner();
    let ip = st.status.unwrap().network.unwrap().ip;
    let gateway = format!("{}.1", ip.rsplit_once('.').unwrap().0);
    let _ =
        n.rt.exec_sync(cri::ExecSyncRequest {
            container_id: busy.clone(),
            cmd: vec!["sh".into(), "-c".into(), format!("echo x | nc -w 1 {gateway} 9")],
            timeout: 10,
        })
        .await
        .unwrap();
    let net0 = pod_stats(&mut n, &pod).await;
    let pm = pod_metrics(&mut n, &pod).await;
    let net1 = pod_stats(&mut n, &pod).await;
    let ps = check(&descs, &pm.metrics);
    assert!(!ps.is_empty(), "the pod has network series");
    for x in &ps {
        assert_eq!((x.labels["id"], x.labels["container"], x.labels["pod"]), (pod.as_str(), "POD", "metrics"), "{}", x.m.name);
        assert_ne!(x.labels["interface"], "lo");
    }
    let eth0 = Some(("interface", "eth0"));
    let rx = one(&ps, "container_network_receive_bytes_total", eth0);
    let tx = one(&ps, "container_network_transmit_bytes_total", eth0);
    assert!(rx > 0 && (v(&net0.rx_bytes)..=v(&net1.rx_bytes)).contains(&rx), "{rx} against {net0:?} {net1:?}");
    assert!(tx > 0 && (v(&net0.tx_bytes)..=v(&net1.tx_bytes)).contains(&tx), "{tx} against {net0:?} {net1:?}");
    assert!(one(&ps, "container_network_transmit_packets_total", eth0) > 0);

    // The daemon's endpoint sees the same objects.
    let text = scrape(port).await.unwrap();
    assert_eq!(sample(&text, r#"berth_cri_pods{state="ready"}"#), 1.0, "{text}");
    assert_eq!(sample(&text, r#"berth_cri_containers{state="running"}"#), 1.0, "{text}");
    assert_eq!(sample(&text, r#"berth_cri_containers{state="exited"}"#), 1.0, "{text}");
    assert!(sample(&text, r#"berth_cri_operations_total{operation="ListPodSandboxMetrics"}"#) >= 3.0, "{text}");

    // A pod that is stopped has no series.
    n.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    let all = n.rt.list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {}).await.unwrap().into_inner().pod_metrics;
    assert!(all.iter().all(|p| p.pod_sandbox_id != pod), "{all:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_endpoint_counts_calls_errors_and_pulls() {
    let reg = Registry::start(None);
    let mut layout = Layout::new();
    layout.add_image(&[(layer_tar(&[Entry::File("hello", vec![7u8; 10_000])]), Comp::Gzip)], "v1");
    reg.push(layout.path(), "v1", "test/metrics", None);
    let addr = reg.addr();
    let env = Env::new(&insecure_registries(&[&addr]));
    let port = free_port();
    std::fs::write(env.p("conf.d/50-metrics.conf"), metrics_conf(port, true)).unwrap();
    let d = env.start();
    let (mut rt, mut img) = clients(&d).await;

    let t0 = scrape(port).await.unwrap_or_else(|e| panic!("scrape: {e}\n{}", d.log()));
    let version = r#"berth_cri_operations_total{operation="Version"}"#;
    let status = r#"berth_cri_operations_total{operation="ContainerStatus"}"#;
    let not_found = r#"berth_cri_operation_errors_total{operation="ContainerStatus",code="NotFound"}"#;
    let version_time = r#"berth_cri_operation_duration_seconds_count{operation="Version"}"#;
    for _ in 0..2 {
        rt.version(cri::VersionRequest::default()).await.unwrap();
    }
    let e = rt.container_status(cri::ContainerStatusRequest { container_id: "0".repeat(64), verbose: false }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let image = format!("{addr}/test/metrics:v1");
    let id =
        img.pull_image(cri::PullImageRequest { image: image_spec(&image), ..Default::default() }).await.unwrap().into_inner().image_ref;
    let size = img
        .image_status(cri::ImageStatusRequest { image: image_spec(&id), verbose: false })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap()
        .size;
    let missing = format!("{addr}/test/metrics:nope");
    img.pull_image(cri::PullImageRequest { image: image_spec(&missing), ..Default::default() }).await.unwrap_err();
    let t1 = scrape(port).await.unwrap();

    let delta = |s: &str| sample(&t1, s) - sample(&t0, s);
    assert_eq!(delta(version), 2.0, "{t1}");
    assert_eq!(delta(version_time), 2.0, "{t1}");
    assert_eq!(delta(status), 1.0, "{t1}");
    assert_eq!(delta(not_found), 1.0, "{t1}");
    assert_eq!(sample(&t1, r#"berth_cri_operation_errors_total{operation="Version",code="NotFound"}"#), 0.0);
    assert_eq!(delta("berth_cri_image_pulls_total"), 1.0, "{t1}");
    assert_eq!(delta("berth_cri_image_pull_failures_total"), 1.0, "{t1}");
    assert_eq!(delta("berth_cri_image_pulled_bytes_total"), size as f64, "{t1}");
    assert!(delta(r#"berth_cri_operation_errors_total{operation="PullImage",code="Unknown"}"#) >= 1.0, "{t1}");
    assert!(t1.contains(r#"berth_cri_pods{state="ready"} 0"#), "{t1}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_endpoint_is_off_unless_enabled() {
    let env = Env::new("unqualified-search-registries = []\n");
    let port = free_port();
    // The address alone does not switch it on.
    std::fs::write(env.p("conf.d/50-metrics.conf"), metrics_conf(port, false)).unwrap();
    let d = env.start();
    let (mut rt, _) = clients(&d).await;
    rt.version(cri::VersionRequest::default()).await.unwrap();
    let e = scrape(port).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    assert!(!d.log().contains("metrics endpoint listening"), "{}", d.log());
    drop(d);

    // A non-loopback address is refused at start, naming the key.
    let env = Env::new("unqualified-search-registries = []\n");
    std::fs::write(env.p("conf.d/50-metrics.conf"), "[metrics]\nenable = true\naddress = \"0.0.0.0:9537\"\n").unwrap();
    let o = env.cli(&["config"]);
    assert!(!o.status.success());
    assert!(crate::common::stderr(&o).contains("metrics.address"), "{}", crate::common::stderr(&o));
}
