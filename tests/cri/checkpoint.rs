//! CheckpointContainer on this host: CRIU refuses the build VM's 6.18 kernel ("vdso:
//! Unexpected rt vDSO area bounds"), so the RPC must fail with criu's complaint in the
//! message, leave no archive (not even a partial one) and no scratch directory, and the
//! container must still run. Requests that cannot work are refused before anything runs.
//! The archive and the restore from it are tested in the VM bed (tests/cgroup2/cri_checkpoint.rs).

use crate::node::Node;
use k8s_cri::v1 as cri;

/// criu's first `Error` message from `criu check`, or None where criu works (or is missing).
fn criu_complaint() -> Option<String> {
    let out = std::process::Command::new("criu").arg("check").output().ok()?;
    if out.status.success() {
        return None;
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find(|l| l.contains("Error"))?;
    Some(line.split_once("): ").map(|(_, m)| m).unwrap_or(line).trim().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_container_refused_by_criu_leaves_it_running_and_no_archive() {
    let test = "checkpoint_container_refused_by_criu_leaves_it_running_and_no_archive";
    if !berth_tests::runtime::runtime_path().display().to_string().contains("berth") {
        eprintln!("{test}: skipped: checks berth's checkpoint");
        return;
    }
    let Some(complaint) = criu_complaint() else {
        eprintln!("{test}: skipped: `criu check` passes here (or criu is missing); the VM bed tests the round trip");
        return;
    };
    let mut n = Node::start("ckpt").await;
    let pcfg = n.pod_config("ckpt", true);
    let pod = n.run_pod(&pcfg).await;
    let id = n.run(&pod, &pcfg, Node::container_config("c", &["sleep", "600"])).await;
    let out = n.env.p("out");
    std::fs::create_dir_all(&out).unwrap();
    let location = out.join("c.tar");

    let e =
        n.rt.checkpoint_container(cri::CheckpointContainerRequest {
            container_id: id.clone(),
            location: location.display().to_string(),
            timeout: 60,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Internal, "{e:?}");
    assert!(
        e.message().contains("criu dump failed") && e.message().contains(&complaint),
        "the error carries criu's complaint {complaint:?}: {}",
        e.message()
    );
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "nothing written next to the location: {left:?}");
    assert!(crate::common::tree(&n.env.p("")).iter().all(|p| !p.contains("checkpoint.tmp")), "the scratch directory is removed");
    let st = n.status(&id).await;
    assert_eq!(st.state, cri::ContainerState::ContainerRunning as i32, "still running after the failed checkpoint: {st:?}");

    // Refused up front: no location, a relative one, a directory, an unknown container.
    for (loc, cid) in [("", id.as_str()), ("rel.tar", id.as_str()), (out.to_str().unwrap(), id.as_str())] {
        let e =
            n.rt.checkpoint_container(cri::CheckpointContainerRequest { container_id: cid.into(), location: loc.into(), timeout: 0 })
                .await
                .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{loc:?}: {e:?}");
    }
    let e =
        n.rt.checkpoint_container(cri::CheckpointContainerRequest {
            container_id: "nope".into(),
            location: location.display().to_string(),
            timeout: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    assert_eq!(n.status(&id).await.state, cri::ContainerState::ContainerRunning as i32);
}
