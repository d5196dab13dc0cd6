//! User-namespaced pods (KEP-127): blocks the daemon allocates (disjoint, freed on removal,
//! kept across a kill -9 restart, bounded by the configured range), the mapping kubelet
//! sends, id-mapped image layers and volumes, and the refusals critest checks. With a
//! handler that cannot (runc 1.1: no id-mapped mounts), Status says so and RunPodSandbox
//! refuses with FailedPrecondition.

use crate::node::Node;
use k8s_cri::v1 as cri;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

const FIRST: u32 = 3 << 20;

fn userns(mode: cri::NamespaceMode, maps: Vec<cri::IdMapping>) -> cri::UserNamespace {
    cri::UserNamespace { mode: mode as i32, uids: maps.clone(), gids: maps }
}

fn with_userns(mut p: cri::PodSandboxConfig, u: cri::UserNamespace) -> cri::PodSandboxConfig {
    let ns = p.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options.as_mut().unwrap();
    ns.userns_options = Some(u);
    p
}

/// The test's temp root must let the pod's (unprivileged) host uid walk to its rootfs.
fn searchable(n: &Node) {
    std::fs::set_permissions(n.env.p(""), std::fs::Permissions::from_mode(0o711)).unwrap();
}

async fn handler_can(n: &mut Node) -> bool {
    let st = n.rt.status(cri::StatusRequest { verbose: false }).await.unwrap().into_inner();
    st.runtime_handlers.iter().find(|h| h.name.is_empty()).and_then(|h| h.features).is_some_and(|f| f.user_namespaces)
}

fn kernel_can() -> bool {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut it = r.trim().split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap(), it.next().unwrap()) >= (6, 15)
}

/// The first line of /proc/self/uid_map as the container printed it: (container, host, len).
fn uid_map(out: &str) -> (u32, u32, u32) {
    let l = out.lines().find(|l| l.starts_with("map ")).unwrap_or_else(|| panic!("no map line in {out:?}"));
    let v: Vec<u32> = l.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    (v[0], v[1], v[2])
}

/// Runs a container in `pod` that prints its uid map, who owns its image's files, and writes
/// a file as its root into the volume `vol` (mounted at /vol).
async fn probe(n: &mut Node, pod: &str, pcfg: &cri::PodSandboxConfig, name: &str, vol: &std::path::Path) -> String {
    std::fs::create_dir_all(vol).unwrap();
    let script = format!(
        "echo map $(head -n1 /proc/self/uid_map); echo id $(id -u); echo bin $(stat -c %u /bin/busybox); echo root $(stat -c %u /); \
         touch /vol/{name} && echo vol ok; touch /newfile && echo rootfs ok; cat /proc/1/status >/dev/null && echo proc ok"
    );
    let mut c = Node::container_config(name, &["sh", "-c", &script]);
    c.mounts = vec![cri::Mount { host_path: vol.display().to_string(), container_path: "/vol".into(), ..Default::default() }];
    let id = n.run(pod, pcfg, c).await;
    let s = n.wait_exited(&id, Duration::from_secs(30)).await;
    let out = n.stdout_of(pcfg, name);
    assert_eq!(s.exit_code, 0, "{s:?}\n{out}\n{}", n.daemon.log());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn allocated_blocks_are_disjoint_freed_and_survive_a_restart() {
    let mut n = Node::start_with("userns", &format!("[runtime]\nuserns_first_id = {FIRST}\nuserns_pods = 2\n")).await;
    searchable(&n);
    let pod_userns = |n: &Node, name: &str| with_userns(n.pod_config(name, false), userns(cri::NamespaceMode::Pod, vec![]));
    if !handler_can(&mut n).await {
        // Only a handler without id-mapped mounts or a kernel before 6.15 may say no.
        assert!(
            berth_tests::runtime::runtime_path().display().to_string().contains("runc") || !kernel_can(),
            "berth on this kernel must announce user_namespaces"
        );
        let e =
            n.rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(pod_userns(&n, "refused")), runtime_handler: String::new() })
                .await
                .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        return;
    }
    let (pa, pb) = (pod_userns(&n, "ua"), pod_userns(&n, "ub"));
    let a = n.run_pod(&pa).await;
    // A pod-wide PID namespace too: its infra joins the pod's user namespace, so /proc mounts.
    let mut pb = pb;
    pb.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options.as_mut().unwrap().pid = cri::NamespaceMode::Pod as i32;
    let b = n.run_pod(&pb).await;
    let vol = n.env.p("vol");
    let out_a = probe(&mut n, &a, &pa, "ca", &vol).await;
    let out_b = probe(&mut n, &b, &pb, "cb", &vol).await;
    for out in [&out_a, &out_b] {
        for want in ["id 0", "bin 0", "root 0", "vol ok", "rootfs ok", "proc ok"] {
            assert!(out.lines().any(|l| l == want), "{want:?} missing in {out:?}");
        }
    }
    let (ma, mb) = (uid_map(&out_a), uid_map(&out_b));
    assert_eq!((ma.0, ma.2, mb.0, mb.2), (0, 65536, 0, 65536), "{ma:?} {mb:?}");
    let mut hosts = [ma.1, mb.1];
    hosts.sort();
    assert_eq!(hosts, [FIRST, FIRST + 65536], "two blocks, disjoint, from the configured range");
    // PodSandboxStatus reports the block the pod got.
    let st =
        n.rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: a.clone(), verbose: false })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
    let u = st.linux.and_then(|l| l.namespaces).and_then(|n| n.options).and_then(|o| o.userns_options).expect("userns_options");
    assert_eq!((u.mode, u.uids[0].host_id, u.gids[0].host_id, u.uids[0].length), (cri::NamespaceMode::Pod as i32, ma.1, ma.1, 65536));
    // The volume is id-mapped: what the pods' root wrote is the host's root's.
    for f in ["ca", "cb"] {
        let md = std::fs::metadata(vol.join(f)).unwrap();
        assert_eq!((md.uid(), md.gid()), (0, 0), "{f}");
    }
    // The range holds two pods: a third is refused.
    let e =
        n.rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(pod_userns(&n, "uc")), runtime_handler: String::new() })
            .await
            .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    // Removing a pod frees its block.
    n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: a.clone() }).await.unwrap();
    let pc = pod_userns(&n, "uc");
    let c = n.run_pod(&pc).await;
    let out_c = probe(&mut n, &c, &pc, "cc", &vol).await;
    assert_eq!(uid_map(&out_c).1, ma.1, "the freed block is given again");
    // After a kill -9 restart both blocks are still known to be in use.
    n.restart().await;
    let e =
        n.rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(pod_userns(&n, "ud")), runtime_handler: String::new() })
            .await
            .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: b.clone() }).await.unwrap();
    let pd = pod_userns(&n, "ud");
    let d = n.run_pod(&pd).await;
    let out_d = probe(&mut n, &d, &pd, "cd", &vol).await;
    assert_eq!(uid_map(&out_d).1, mb.1);
    for p in [c, d] {
        n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: p }).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_mappings_and_the_refusals_critest_checks() {
    let mut n = Node::start("userns-req").await;
    searchable(&n);
    let m = |c: u32, h: u32, l: u32| cri::IdMapping { container_id: c, host_id: h, length: l };
    // Refused whatever the handler: InvalidArgument.
    for (what, u) in [
        ("two mappings", userns(cri::NamespaceMode::Pod, vec![m(0, 1000, 100000), m(0, 2000, 100000)])),
        ("container id 0 not mapped", userns(cri::NamespaceMode::Pod, vec![m(1, 1000, 100000)])),
        ("CONTAINER", userns(cri::NamespaceMode::Container, vec![])),
        ("TARGET", userns(cri::NamespaceMode::Target, vec![])),
        ("NODE with mappings", userns(cri::NamespaceMode::Node, vec![m(0, 1000, 10)])),
    ] {
        let cfg = with_userns(n.pod_config("bad", false), u);
        let e = n.rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(cfg), runtime_handler: String::new() }).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what}: {e:?}");
    }
    let listed = n.rt.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }).await.unwrap().into_inner().items;
    assert!(listed.is_empty(), "a refused pod leaves nothing: {listed:?}");
    if !handler_can(&mut n).await {
        return;
    }
    // The mapping critest (and kubelet) send: used as given.
    let p = with_userns(n.pod_config("given", false), userns(cri::NamespaceMode::Pod, vec![m(0, 1000, 100000)]));
    let pod = n.run_pod(&p).await;
    let mut c = Node::container_config("given", &["cat", "/proc/self/uid_map"]);
    c.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options =
        p.linux.as_ref().unwrap().security_context.as_ref().unwrap().namespace_options.clone();
    let id = n.run(&pod, &p, c).await;
    let s = n.wait_exited(&id, Duration::from_secs(30)).await;
    assert_eq!(s.exit_code, 0, "{s:?}");
    let out = n.stdout_of(&p, "given");
    let v: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(v, ["0", "1000", "100000"], "{out:?}");
    // A container may not leave or change its pod's user namespace.
    for (what, u) in
        [("NODE", userns(cri::NamespaceMode::Node, vec![])), ("another mapping", userns(cri::NamespaceMode::Pod, vec![m(0, 5000, 100000)]))]
    {
        let mut c = Node::container_config("other", &["true"]);
        c.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options =
            Some(cri::NamespaceOption { userns_options: Some(u), ..Default::default() });
        let e = n
            .rt
            .create_container(cri::CreateContainerRequest { pod_sandbox_id: pod.clone(), config: Some(c), sandbox_config: Some(p.clone()) })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what}: {e:?}");
    }
    n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.unwrap();
}
