//! The RuntimeService through the CRI socket: pod and container lifecycles, CNI networking
//! between pods and from a host port, DNS, exit codes and reasons, ExecSync with a timeout,
//! recovery after kill -9 of the daemon, and bad input.

use crate::node::Node;
use k8s_cri::v1 as cri;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn host_network_pod_lifecycle_exit_codes_and_logs() {
    let mut n = Node::start("lifecycle").await;
    let pcfg = n.pod_config("life", true);
    let pod = n.run_pod(&pcfg).await;
    let st =
        n.rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: pod.clone(), verbose: true }).await.unwrap().into_inner();
    assert_eq!(st.status.as_ref().unwrap().state, cri::PodSandboxState::SandboxReady as i32);
    assert!(st.info.contains_key("info"));

    let ok = n.run(&pod, &pcfg, Node::container_config("ok", &["sh", "-c", "echo hello from berth-cri; echo to-err >&2"])).await;
    let bad = n.run(&pod, &pcfg, Node::container_config("bad", &["sh", "-c", "exit 3"])).await;
    let s = n.wait_exited(&ok, T).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    assert!(s.started_at > 0 && s.finished_at >= s.started_at && s.created_at > 0);
    assert_eq!(n.stdout_of(&pcfg, "ok"), "hello from berth-cri\n");
    let s = n.wait_exited(&bad, T).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"));
    assert!(s.log_path.ends_with("bad/0.log"));

    // Lists and filters.
    let all = n.rt.list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    assert_eq!(all.len(), 2);
    let f = cri::ContainerFilter { id: ok[..12].into(), ..Default::default() };
    let one = n.rt.list_containers(cri::ListContainersRequest { filter: Some(f) }).await.unwrap().into_inner().containers;
    assert_eq!(one.len(), 1, "a prefix of the id selects one");
    let pods = n.rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.unwrap().into_inner().items;
    assert_eq!(pods.len(), 1);

    // Stop and remove are idempotent.
    n.rt.stop_container(cri::StopContainerRequest { container_id: ok.clone(), timeout: 1 }).await.unwrap();
    n.rt.remove_container(cri::RemoveContainerRequest { container_id: ok.clone() }).await.unwrap();
    n.rt.remove_container(cri::RemoveContainerRequest { container_id: ok.clone() }).await.unwrap();
    let e = n.rt.container_status(cri::ContainerStatusRequest { container_id: ok.clone(), verbose: false }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    n.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    n.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    assert!(n.rt.list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_signals_then_kills_and_exec_sync_has_a_timeout() {
    let mut n = Node::start("stopexec").await;
    let pcfg = n.pod_config("svc", true);
    let pod = n.run_pod(&pcfg).await;
    // Ignores SIGTERM: StopContainer must fall back to SIGKILL at the timeout.
    let id =
        n.run(&pod, &pcfg, Node::container_config("stubborn", &["sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"])).await;
    let r =
        n.rt.exec_sync(cri::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sh".into(), "-c".into(), "echo out; echo err >&2; exit 4".into()],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.exit_code, r.stdout.as_slice(), r.stderr.as_slice()), (4, &b"out\n"[..], &b"err\n"[..]));
    let begun = std::time::Instant::now();
    let e =
        n.rt.exec_sync(cri::ExecSyncRequest { container_id: id.clone(), cmd: vec!["sleep".into(), "60".into()], timeout: 1 })
            .await
            .unwrap_err();
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e:?}");
    assert!(begun.elapsed() < Duration::from_secs(15));
    let begun = std::time::Instant::now();
    n.rt.stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 2 }).await.unwrap();
    let s = n.status(&id).await;
    assert_eq!(s.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(s.exit_code, 137, "killed after the grace period: {s:?}");
    assert!(begun.elapsed() >= Duration::from_secs(2));
    let e = n.rt.exec_sync(cri::ExecSyncRequest { container_id: id.clone(), cmd: vec!["true".into()], timeout: 1 }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    let _ = pod;
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_on_a_bridge_reach_each_other_and_a_host_port() {
    let mut n = Node::start("bridge").await;
    let mut a_cfg = n.pod_config("pod-a", false);
    a_cfg.dns_config = Some(cri::DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["bt.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    a_cfg.port_mappings = vec![cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 8080,
        host_port: 18000 + (std::process::id() % 1000) as i32,
        host_ip: "127.0.0.1".into(),
    }];
    let host_port = a_cfg.port_mappings[0].host_port;
    let a = n.run_pod(&a_cfg).await;
    let b_cfg = n.pod_config("pod-b", false);
    let b = n.run_pod(&b_cfg).await;
    let a_ip = pod_ip(&mut n, &a).await;
    let b_ip = pod_ip(&mut n, &b).await;
    assert!(!a_ip.is_empty() && !b_ip.is_empty() && a_ip != b_ip, "{a_ip} {b_ip}");
    // A server in pod a (answers every connection), a client in pod b.
    let srv = n
        .run(&a, &a_cfg, Node::container_config("srv", &["sh", "-c", "cat /etc/resolv.conf; while :; do echo pong | nc -l -p 8080; done"]))
        .await;
    let out =
        n.rt.exec_sync(cri::ExecSyncRequest { container_id: srv.clone(), cmd: vec!["cat".into(), "/etc/resolv.conf".into()], timeout: 10 })
            .await
            .unwrap()
            .into_inner();
    let resolv = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        resolv.contains("nameserver 10.96.0.10") && resolv.contains("search bt.svc.cluster.local") && resolv.contains("options ndots:5"),
        "{resolv}"
    );
    let cli = n.run(&b, &b_cfg, Node::container_config("cli", &["sleep", "600"])).await;
    let mut reached = false;
    for _ in 0..50 {
        let r =
            n.rt.exec_sync(cri::ExecSyncRequest {
                container_id: cli.clone(),
                cmd: vec!["sh".into(), "-c".into(), format!("echo ping | nc -w 2 {a_ip} 8080")],
                timeout: 10,
            })
            .await
            .unwrap()
            .into_inner();
        if String::from_utf8_lossy(&r.stdout).contains("pong") {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reached, "pod b reaches pod a at {a_ip}:8080");
    // The host port on 127.0.0.1 reaches pod a (portmap).
    let mut via_host = String::new();
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&format!("127.0.0.1:{host_port}").parse().unwrap(), Duration::from_secs(2))
        {
            use std::io::{Read, Write};
            let _ = s.write_all(b"ping\n");
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.contains("pong") {
                via_host = buf;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(via_host.contains("pong"), "127.0.0.1:{host_port} reaches pod a");
    let st = n.rt.status(cri::StatusRequest { verbose: false }).await.unwrap().into_inner().status.unwrap();
    assert!(st.conditions.iter().any(|c| c.r#type == "NetworkReady" && c.status), "{st:?}");
}

async fn pod_ip(n: &mut Node, id: &str) -> String {
    n.rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
        .network
        .unwrap()
        .ip
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_daemon_loses_nothing() {
    let mut n = Node::start("recover").await;
    let pcfg = n.pod_config("rec", false);
    let pod = n.run_pod(&pcfg).await;
    let created = n.create(&pod, &pcfg, Node::container_config("later", &["sh", "-c", "echo started-after-restart"])).await;
    let running = n.run(&pod, &pcfg, Node::container_config("long", &["sh", "-c", "echo up; exec sleep 600"])).await;
    let done = n.run(&pod, &pcfg, Node::container_config("done", &["sh", "-c", "exit 5"])).await;
    let s = n.wait_exited(&done, T).await;
    assert_eq!(s.exit_code, 5);
    n.restart().await;
    // Everything is still there, with the right states.
    assert_eq!(n.status(&running).await.state, cri::ContainerState::ContainerRunning as i32);
    assert_eq!(n.status(&created).await.state, cri::ContainerState::ContainerCreated as i32);
    assert_eq!(n.wait_exited(&done, T).await.exit_code, 5);
    let pods = n.rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.unwrap().into_inner().items;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].state, cri::PodSandboxState::SandboxReady as i32);
    // The created one starts after the restart; the running one's exit is recorded while the
    // daemon is dead.
    n.start_container(&created).await;
    assert_eq!(n.wait_exited(&created, T).await.exit_code, 0);
    n.kill9();
    let _ = std::process::Command::new(berth_tests::runtime::runtime_path())
        .args([
            "--root",
            &n.env
                .p("state/runtime")
                .join(if berth_tests::runtime::runtime_path().display().to_string().contains("runc") { "runc" } else { "berth" })
                .display()
                .to_string(),
            "kill",
            &running,
            "KILL",
        ])
        .status();
    n.restart().await;
    let s = n.wait_exited(&running, T).await;
    assert_eq!(s.exit_code, 137, "exit recorded by the monitor while the daemon was down: {s:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_the_right_codes_and_leaves_nothing() {
    fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> tonic::Code {
        r.map(|_| ()).unwrap_err().code()
    }
    let mut n = Node::start("badinput").await;
    assert_eq!(code(n.rt.run_pod_sandbox(cri::RunPodSandboxRequest::default()).await), tonic::Code::InvalidArgument);
    let mut bad = n.pod_config("bad", true);
    bad.metadata.as_mut().unwrap().name = "../../etc".into();
    assert_eq!(
        code(n.rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(bad), runtime_handler: String::new() }).await),
        tonic::Code::InvalidArgument
    );
    let mut bad = n.pod_config("sysctl", false);
    bad.linux.as_mut().unwrap().sysctls.insert("kernel.panic".into(), "1".into());
    assert_eq!(
        code(n.rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(bad), runtime_handler: String::new() }).await),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        code(
            n.rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(n.pod_config("h", true)), runtime_handler: "nope".into() }).await
        ),
        tonic::Code::InvalidArgument
    );
    let pcfg = n.pod_config("dup", true);
    let pod = n.run_pod(&pcfg).await;
    let e =
        n.rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(pcfg.clone()), runtime_handler: String::new() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists);
    assert!(e.message().contains(&pod), "names the holder: {}", e.message());
    let unknown = "0".repeat(64);
    assert_eq!(
        code(n.rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: unknown.clone(), verbose: false }).await),
        tonic::Code::NotFound
    );
    assert_eq!(
        code(n.rt.container_status(cri::ContainerStatusRequest { container_id: unknown.clone(), verbose: false }).await),
        tonic::Code::NotFound
    );
    assert_eq!(code(n.rt.start_container(cri::StartContainerRequest { container_id: unknown.clone() }).await), tonic::Code::NotFound);
    n.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: unknown.clone() }).await.unwrap();
    n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: unknown.clone() }).await.unwrap();
    let mut c = Node::container_config("esc", &["true"]);
    c.log_path = "../../../escape.log".into();
    assert_eq!(
        code(
            n.rt.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(c),
                sandbox_config: Some(pcfg.clone())
            })
            .await
        ),
        tonic::Code::InvalidArgument
    );
    let mut c = Node::container_config("noimg", &["true"]);
    c.image = Some(cri::ImageSpec { image: "localhost/none:1".into(), ..Default::default() });
    assert_eq!(
        code(
            n.rt.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(c),
                sandbox_config: Some(pcfg.clone())
            })
            .await
        ),
        tonic::Code::NotFound
    );
    let c1 = n.create(&pod, &pcfg, Node::container_config("same", &["true"])).await;
    let e =
        n.rt.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(Node::container_config("same", &["true"])),
            sandbox_config: Some(pcfg.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists);
    assert!(e.message().contains(&c1));
    let listed = n.rt.list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    assert_eq!(listed.len(), 1, "failed creates left nothing listed");
    let dirs = std::fs::read_dir(n.env.p("state/containers")).unwrap().count();
    assert_eq!(dirs, 1, "failed creates left no state behind");
}
