//! State that holds secrets is root's alone: a local, unprivileged user (`nobody`) keeps
//! trying to read every file under berth-cri's state root — records, CRI configs, bundles,
//! exec processes — and to reach the pods' /dev/shm while pods and execs come and go; the
//! containers' environment (where Kubernetes puts secrets) must never come out. The state
//! root itself is made world-searchable here, as an admin's `mkdir` would leave it, so only
//! the per-object modes stand in the way.

use crate::node::Node;
use k8s_cri::v1 as cri;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Run `script` as nobody (no groups): (exit success, stdout).
fn as_nobody(script: &str) -> (bool, String) {
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c", script])
        .output()
        .expect("setpriv (util-linux)");
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Every path under `root` whose mode lets others (or the group) read it and that holds
/// `needle`.
fn readable_secrets(root: &Path, needle: &str, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(root) else { return };
    for e in rd.flatten() {
        let (p, Ok(m)) = (e.path(), e.path().symlink_metadata()) else { continue };
        if m.is_dir() {
            readable_secrets(&p, needle, out);
        } else if m.is_file()
            && m.permissions().mode() & 0o044 != 0
            && std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            out.push(format!("{} ({:o})", p.display(), m.permissions().mode() & 0o7777));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_user_reads_no_container_secret_from_the_state_root() {
    let mut n = Node::start("private-state").await;
    let secret = format!("s3cr3t-token-{}", std::process::id());
    for d in [n.env.p(""), n.env.p("state")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let state = n.env.p("state");
    let pcfg = n.pod_config("private-state", false);
    let pod = n.run_pod(&pcfg).await;
    let mut cfg = Node::container_config("holder", &["sleep", "1000"]);
    cfg.envs.push(cri::KeyValue { key: "API_TOKEN".into(), value: secret.clone() });
    let ctr = n.run(&pod, &pcfg, cfg).await;
    let grep = format!(
        "grep -rl '{secret}' {} 2>/dev/null; ls {}/sandboxes/{pod}/shm 2>/dev/null && echo SHM-REACHED; exit 0",
        state.display(),
        state.display()
    );
    for round in 0..5 {
        // Something new each round: an exec (its process file), another container.
        let r =
            cri::ExecSyncRequest { container_id: ctr.clone(), cmd: vec!["sh".into(), "-c".into(), "echo $API_TOKEN".into()], timeout: 10 };
        let out = n.rt.exec_sync(r).await.unwrap().into_inner();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), secret, "the container has its secret");
        let mut c = Node::container_config(&format!("more-{round}"), &["sleep", "1000"]);
        c.envs.push(cri::KeyValue { key: "API_TOKEN".into(), value: secret.clone() });
        n.create(&pod, &pcfg, c).await;
        let (_, seen) = as_nobody(&grep);
        assert!(seen.trim().is_empty(), "round {round}: nobody got at: {seen}");
    }
    let mut open = Vec::new();
    readable_secrets(&state, &secret, &mut open);
    assert!(open.is_empty(), "files holding a container's environment readable by others: {open:?}");
    let mode = std::fs::metadata(state.join("sandboxes").join(&pod)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the pod's directory (its /dev/shm inside)");
}
