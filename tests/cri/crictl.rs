//! crictl 1.36 driving berth-cri as an operator would: runp, create, start, ps, logs, exec,
//! inspect, stop, rm, stopp, rmp. crictl is not shipped with the project (it is built from
//! cri-tools, see docs/TESTBED.md): it is found through `CRICTL`, `BERTH_CRICTL` or PATH, and
//! the crictl tests skip with one line without it. What they cover is also covered through
//! the tests' own CRI client (`pods.rs`, `streaming.rs`).

use crate::node::{Node, IMAGE};
use std::path::PathBuf;
use std::process::Command;

/// crictl from `CRICTL`, `BERTH_CRICTL` or PATH; `None` (and the skip line printed) without it.
pub fn crictl_path() -> Option<PathBuf> {
    let found =
        ["CRICTL", "BERTH_CRICTL"].iter().filter_map(std::env::var_os).map(PathBuf::from).find(|p| !p.as_os_str().is_empty()).or_else(
            || {
                std::env::var_os("PATH")
                    .into_iter()
                    .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
                    .map(|d| d.join("crictl"))
                    .find(|p| p.is_file())
            },
        );
    match found {
        Some(p) if p.is_file() => Some(p),
        Some(p) => {
            eprintln!("skipped: crictl not found at {} (set CRICTL)", p.display());
            None
        }
        None => {
            eprintln!("skipped: crictl not found (set CRICTL)");
            None
        }
    }
}

fn crictl_bin() -> PathBuf {
    crictl_path().expect("crictl checked before the node started")
}

fn crictl(n: &Node, args: &[&str]) -> (bool, String, String) {
    let bin = crictl_bin();
    let ep = format!("unix://{}", n.daemon.socket.display());
    let o = Command::new(bin)
        .args(["--runtime-endpoint", &ep, "--image-endpoint", &ep, "--timeout", "60s"])
        .args(args)
        .env("HOME", n.env.p(""))
        .output()
        .expect("run crictl");
    (o.status.success(), String::from_utf8_lossy(&o.stdout).trim().to_string(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[track_caller]
fn ok(n: &Node, args: &[&str]) -> String {
    let (s, out, err) = crictl(n, args);
    assert!(s, "crictl {args:?} failed: {err}\n{out}\ndaemon log:\n{}", n.daemon.log());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn crictl_pod_and_container_lifecycle() {
    if crictl_path().is_none() {
        return;
    }
    let n = Node::start("crictl").await;
    let logs = n.env.p("logs/crictl-pod");
    let pod = serde_json::json!({
        "metadata": {"name": "crictl-pod", "namespace": "bt", "uid": format!("crictl-{}", std::process::id()), "attempt": 0},
        "hostname": "crictl-pod",
        "log_directory": logs,
        "linux": {"security_context": {"namespace_options": {"network": 2, "pid": 1}}}
    });
    let ctr = serde_json::json!({
        "metadata": {"name": "talker"},
        "image": {"image": IMAGE},
        "command": ["sh", "-c", "echo said-by-crictl; sleep 600"],
        "log_path": "talker/0.log",
        "linux": {"security_context": {"seccomp": {"profile_type": 1}}}
    });
    let (pf, cf) = (n.env.p("pod.json"), n.env.p("ctr.json"));
    std::fs::write(&pf, pod.to_string()).unwrap();
    std::fs::write(&cf, ctr.to_string()).unwrap();
    let (pf, cf) = (pf.to_str().unwrap(), cf.to_str().unwrap());
    let v = ok(&n, &["version"]);
    assert!(v.contains("berth"), "{v}");
    let pod_id = ok(&n, &["runp", pf]);
    assert_eq!(pod_id.len(), 64);
    let ctr_id = ok(&n, &["create", "--no-pull", &pod_id, cf, pf]);
    ok(&n, &["start", &ctr_id]);
    let ps = ok(&n, &["ps", "-a"]);
    assert!(ps.contains("talker") && ps.contains("Running"), "{ps}");
    assert!(ok(&n, &["pods"]).contains("crictl-pod"));
    let mut logs_out = String::new();
    for _ in 0..100 {
        logs_out = ok(&n, &["logs", &ctr_id]);
        if logs_out.contains("said-by-crictl") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(logs_out.contains("said-by-crictl"), "{logs_out}");
    assert_eq!(ok(&n, &["exec", "-s", &ctr_id, "sh", "-c", "echo in-$((40+2))"]), "in-42");
    let inspect: serde_json::Value = serde_json::from_str(&ok(&n, &["inspect", &ctr_id])).unwrap();
    assert_eq!(inspect["status"]["state"], "CONTAINER_RUNNING", "{inspect}");
    let inspectp: serde_json::Value = serde_json::from_str(&ok(&n, &["inspectp", &pod_id])).unwrap();
    assert_eq!(inspectp["status"]["state"], "SANDBOX_READY");
    ok(&n, &["stop", "--timeout", "1", &ctr_id]);
    assert!(ok(&n, &["ps", "-a"]).contains("Exited"));
    ok(&n, &["rm", &ctr_id]);
    ok(&n, &["stopp", &pod_id]);
    ok(&n, &["rmp", &pod_id]);
    assert!(!ok(&n, &["pods", "-q"]).contains(&pod_id));
}
