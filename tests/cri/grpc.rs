//! The daemon as kubelet sees it: Version, Status, requests missing what they need, the socket lifecycle.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use k8s_cri::v1 as cri;

use crate::common::{clients, stderr, Env};

#[tokio::test(flavor = "multi_thread")]
async fn version_status_and_bad_requests() {
    let env = Env::new("");
    // A default handler whose binary does not exist: RuntimeReady must be false.
    std::fs::write(
        env.p("conf.d/10.conf"),
        format!(
            "[runtime]\ndefault_handler = \"ghost\"\n[runtime.handlers.ghost]\npath = \"/nonexistent/ghost-runtime\"\n[network]\ncni_conf_dir = \"{}\"\n",
            env.p("no-cni").display()
        ),
    )
    .unwrap();
    let d = env.start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode");
    let (mut rt, _img) = clients(&d).await;

    let v = rt.version(cri::VersionRequest { version: "v1".into() }).await.unwrap().into_inner();
    assert_eq!(v.runtime_name, "berth");
    assert_eq!(v.runtime_api_version, "v1");

    let s = rt.status(cri::StatusRequest { verbose: true }).await.unwrap().into_inner();
    let conds = s.status.unwrap().conditions;
    let rr = conds.iter().find(|c| c.r#type == "RuntimeReady").unwrap();
    assert!(!rr.status && rr.message.contains("/nonexistent/ghost-runtime"), "{rr:?}");
    let nr = conds.iter().find(|c| c.r#type == "NetworkReady").unwrap();
    assert!(!nr.status && !nr.reason.is_empty(), "{nr:?}");
    let cfg: serde_json::Value = serde_json::from_str(&s.info["config"]).unwrap();
    assert_eq!(cfg["runtime"]["default_handler"], "ghost");
    assert_eq!(cfg["image"]["root"], env.image_root().display().to_string());
    let ghost = s.runtime_handlers.iter().find(|h| h.name == "ghost").unwrap();
    assert_eq!(ghost.features, Some(cri::RuntimeHandlerFeatures::default()), "a runtime that cannot answer `features` is granted nothing");
    assert_eq!(s.features.map(|f| f.supplemental_groups_policy), Some(true));

    // Without a CNI config, NetworkReady says why.
    assert!(nr.message.contains("no network config"), "{nr:?}");
    // CheckpointContainer is implemented (tests/cri/checkpoint.rs): an empty request is invalid.
    let e = rt.checkpoint_container(cri::CheckpointContainerRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("container_id is required"), "{}", e.message());
    let e = rt.run_pod_sandbox(cri::RunPodSandboxRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_ready_with_existing_binary() {
    let env = Env::new("");
    let conf = |monitor: &str| {
        format!("[runtime]\ndefault_handler = \"sh\"\nmonitor_path = \"{monitor}\"\n[runtime.handlers.sh]\npath = \"/bin/sh\"\n")
    };
    std::fs::write(env.p("conf.d/10.conf"), conf(&berth_tests::bin("berth-mon").display().to_string())).unwrap();
    let mut d = env.start();
    let (mut rt, _) = clients(&d).await;
    let s = rt.status(cri::StatusRequest { verbose: false }).await.unwrap().into_inner();
    assert!(s.info.is_empty());
    let rr = s.status.unwrap().conditions.into_iter().find(|c| c.r#type == "RuntimeReady").unwrap();
    assert!(rr.status, "{rr:?}");
    d.terminate();

    // The runtime is there but the monitor is not: every CreateContainer would fail, so the
    // runtime is not ready, and Status says which binary is missing.
    std::fs::write(env.p("conf.d/10.conf"), conf("/nonexistent/berth-mon")).unwrap();
    let d = env.start();
    let (mut rt, _) = clients(&d).await;
    let s = rt.status(cri::StatusRequest { verbose: false }).await.unwrap().into_inner();
    let rr = s.status.unwrap().conditions.into_iter().find(|c| c.r#type == "RuntimeReady").unwrap();
    assert!(!rr.status && rr.reason == "MonitorBinaryMissing" && rr.message.contains("/nonexistent/berth-mon"), "{rr:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn single_instance_stale_socket_and_clean_shutdown() {
    let env = Env::new("");
    // A stale socket left by a dead daemon is replaced.
    let stale = std::os::unix::net::UnixListener::bind(env.socket()).unwrap();
    drop(stale);
    assert!(std::fs::metadata(env.socket()).unwrap().file_type().is_socket());
    let mut d = env.start();
    let (mut rt, _) = clients(&d).await;
    rt.version(cri::VersionRequest::default()).await.unwrap();

    // A second daemon on the same state root is refused and leaves the socket alone.
    let o = env.cli(&[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("another berth-cri"), "{}", stderr(&o));
    rt.version(cri::VersionRequest::default()).await.unwrap();

    let st = d.terminate();
    assert!(st.success(), "exit status {st:?}: {}", d.log());
    assert!(!env.socket().exists(), "socket removed on SIGTERM");

    // A regular file where the socket should be is not deleted.
    std::fs::write(env.socket(), "precious").unwrap();
    let o = env.cli(&[]);
    assert!(!o.status.success() && stderr(&o).contains("not a socket"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(env.socket()).unwrap(), "precious");
}
