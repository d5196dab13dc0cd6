//! Recursive read-only mounts (KEP-3857): Status announces them per handler from the
//! runtime's `features`, CreateContainer refuses what the CRI forbids, and a granted one
//! makes the host path's submounts read-only in the container too.

use crate::node::Node;
use berth_tests::bundle::TempDir;
use k8s_cri::v1 as cri;
use std::time::Duration;

fn volume(host: &std::path::Path, path: &str, readonly: bool, rro: bool, propagation: cri::MountPropagation) -> cri::Mount {
    cri::Mount {
        container_path: path.into(),
        host_path: host.display().to_string(),
        readonly,
        recursive_read_only: rro,
        propagation: propagation as i32,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recursive_read_only_volumes() {
    let mut n = Node::start("rro").await;
    // berth and Debian's runc 1.1 both list `rro` in their `features`; a handler whose
    // binary is missing (the built-in `crun` default points at /usr/bin/crun, present or
    // not) must not claim it blindly.
    let handler = if berth_tests::runtime::runtime_path().display().to_string().contains("runc") { "runc" } else { "berth" };
    let st = n.rt.status(cri::StatusRequest { verbose: false }).await.unwrap().into_inner();
    let h = st.runtime_handlers.iter().find(|h| h.name == handler).unwrap_or_else(|| panic!("{handler} in {:?}", st.runtime_handlers));
    assert_eq!(h.features.as_ref().map(|f| f.recursive_read_only_mounts), Some(true), "handler {}: {:?}", h.name, h.features);
    assert_eq!(st.runtime_handlers[0].name, "", "the default handler, as kubelet names it");
    assert_eq!(st.runtime_handlers[0].features, h.features);

    // A host path with a submount (detached by the TempDir, which drops before the node).
    let host = TempDir::new("bt-rro");
    let sub = host.path().join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let ok = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&sub).status().unwrap();
    assert!(ok.success());

    let pcfg = n.pod_config("rro", true);
    let pod = n.run_pod(&pcfg).await;
    let with = |name: &str, m: cri::Mount| {
        let mut c = Node::container_config(name, &["sh", "-c", "touch /v/sub/x 2>/dev/null && echo sub=writable || echo sub=readonly; touch /v/top 2>/dev/null && echo top=writable || echo top=readonly"]);
        c.mounts = vec![m];
        c
    };
    let create = |n: &mut Node, c: cri::ContainerConfig| {
        let req = cri::CreateContainerRequest { pod_sandbox_id: pod.clone(), config: Some(c), sandbox_config: Some(pcfg.clone()) };
        let mut rt = n.rt.clone();
        async move { rt.create_container(req).await }
    };
    use cri::MountPropagation::*;
    // The CRI's rules: only with readonly, only with private propagation.
    let e = create(&mut n, with("rw", volume(host.path(), "/v", false, true, PropagationPrivate))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let e = create(&mut n, with("slave", volume(host.path(), "/v", true, true, PropagationHostToContainer))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // (A handler without rro is refused with FailedPrecondition: container/spec/mounts.rs's unit test.)
    let id = n.run(&pod, &pcfg, with("rec", volume(host.path(), "/v", true, true, PropagationPrivate))).await;
    let s = n.wait_exited(&id, Duration::from_secs(30)).await;
    assert_eq!(s.exit_code, 0);
    let out = n.stdout_of(&pcfg, "rec");
    assert!(out.contains("sub=readonly") && out.contains("top=readonly"), "rro reaches the submount: {out}");
    assert!(!sub.join("x").exists());
    // Plain readonly: only the top of the rbind is read-only (what rro exists to fix).
    let id = n.run(&pod, &pcfg, with("plain", volume(host.path(), "/v", true, false, PropagationPrivate))).await;
    n.wait_exited(&id, Duration::from_secs(30)).await;
    let out = n.stdout_of(&pcfg, "plain");
    assert!(out.contains("sub=writable") && out.contains("top=readonly"), "{out}");
    n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.unwrap();
}
