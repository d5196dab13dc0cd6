//! CVE-2019-5736 through berth-cri, as a tenant would try it (the attacker of
//! `tests/src/escape.rs`): a container whose command is the runtime (`/evil/sh` →
//! `/proc/self/exe`, with the image's own `ld.so`), and an exec — what an exec probe or
//! `crictl exec` runs — in a container that replaced its `/bin/sh` by such a link. Each
//! attacker keeps an fd on the runtime's executable and keeps trying to append to it after
//! every runtime process has exited. The real binaries (the handler under test, `berth-mon`,
//! `berth-pause`) must come out unchanged.

use crate::node::Node;
use berth_tests::escape::{fingerprints, judge, layer, Report};
use berth_tests::registry::{busybox_layer, docker_archive_with};
use k8s_cri::v1 as cri;
use std::time::{Duration, Instant};

const EVIL: &str = "localhost/berth-test/evil:latest";

async fn sh(n: &mut Node, ctr: &str, cmd: &[&str]) -> String {
    let r = cri::ExecSyncRequest { container_id: ctr.into(), cmd: cmd.iter().map(|s| s.to_string()).collect(), timeout: 20 };
    let r = n.rt.exec_sync(r).await.unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e:?}\n{}", n.daemon.log())).into_inner();
    String::from_utf8_lossy(&r.stdout).into_owned()
}

async fn tries(n: &mut Node, ctr: &str) -> u32 {
    sh(n, ctr, &["/bin/busybox", "cat", "/tmp/tries"]).await.trim().parse().unwrap_or(0)
}

/// Let the attacker in `ctr` try `more` times, stop it, and read its report.
async fn let_it_try(n: &mut Node, ctr: &str, more: u32) -> Report {
    let (start, deadline) = (tries(n, ctr).await, Instant::now() + Duration::from_secs(60));
    while tries(n, ctr).await < start + more {
        assert!(Instant::now() < deadline, "the attacker in {ctr} stopped trying");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sh(n, ctr, &["/bin/busybox", "touch", "/tmp/stop"]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sh(n, ctr, &["/bin/busybox", "cat", "/tmp/result"]).await.contains("done") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Report {
        exe_link: sh(n, ctr, &["/bin/busybox", "cat", "/tmp/exe-link"]).await,
        result: sh(n, ctr, &["/bin/busybox", "cat", "/tmp/result"]).await,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cve_2019_5736_through_the_cri() {
    let binaries = fingerprints(&[berth_tests::runtime::runtime_path(), berth_tests::bin("berth-mon"), berth_tests::bin("berth-pause")]);
    let mut n = Node::start("cve5736").await;
    let archive = n.env.p("evil.tar");
    docker_archive_with(&archive, &[busybox_layer(), layer()], EVIL, serde_json::json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}));
    let o = n.env.cli(&["image", "import", archive.to_str().unwrap()]);
    assert!(o.status.success(), "import: {}", String::from_utf8_lossy(&o.stderr));
    let image = || Some(cri::ImageSpec { image: EVIL.into(), ..Default::default() });

    let pcfg = n.pod_config("cve5736", false);
    let pod = n.run_pod(&pcfg).await;

    // The container's command is the runtime.
    let mut cfg = Node::container_config("init-route", &["/evil/sh"]);
    cfg.image = image();
    let init = n.run(&pod, &pcfg, cfg).await;

    // An exec in a container whose /bin/sh is now a link to /proc/self/exe: `sh -c ...`, as
    // a probe would run it, resolves to the runtime's binary.
    let arm = "rm /bin/sh && ln -s /proc/self/exe /bin/sh && touch /tmp/bg && echo armed > /tmp/armed; exec sleep 1000";
    let mut cfg = Node::container_config("exec-route", &["sh", "-c", arm]);
    cfg.image = image();
    let victim = n.run(&pod, &pcfg, cfg).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sh(&mut n, &victim, &["/bin/busybox", "cat", "/tmp/armed"]).await.contains("armed") {
        assert!(Instant::now() < deadline, "the exec-route container did not arm itself");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sh(&mut n, &victim, &["sh", "-c", "true"]).await;

    let r = let_it_try(&mut n, &init, 40).await;
    judge("CreateContainer route", &r, &binaries);
    let r = let_it_try(&mut n, &victim, 40).await;
    judge("ExecSync route", &r, &binaries);
}

/// The pod's PID 1 in a pod-wide PID namespace is `berth-pause`: even a container granted
/// CAP_SYS_PTRACE sees nothing of the host through it — an empty root, no environment, no
/// fds, and a sealed copy as its executable that takes no write.
#[tokio::test(flavor = "multi_thread")]
async fn the_pods_pid_1_is_no_window_on_the_host() {
    let binaries = fingerprints(&[berth_tests::bin("berth-pause")]);
    let mut n = Node::start("pause-confined").await;
    let mut pcfg = n.pod_config("pause-confined", false);
    pcfg.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options.as_mut().unwrap().pid =
        cri::NamespaceMode::Pod as i32;
    let pod = n.run_pod(&pcfg).await;
    let mut cfg = Node::container_config("prober", &["sleep", "1000"]);
    cfg.linux.as_mut().unwrap().security_context.as_mut().unwrap().capabilities =
        Some(cri::Capability { add_capabilities: vec!["SYS_PTRACE".into()], ..Default::default() });
    let ctr = n.run(&pod, &pcfg, cfg).await;
    let probe = "echo \"cmd=$(tr '\\0' ' ' < /proc/1/cmdline)\"; echo \"root=$(ls -A /proc/1/root/ 2>&1 | tr '\\n' ' ')\"; \
                 echo \"environ=$(tr '\\0' ' ' < /proc/1/environ)\"; echo \"exe=$(readlink /proc/1/exe)\"; \
                 echo \"fds=$(ls /proc/1/fd/ 2>&1 | tr '\\n' ' ')\"; \
                 if (echo PWNED >> /proc/1/exe) 2>/dev/null; then echo exe-written; fi; \
                 if [ -e /proc/1/root/etc ] || [ -e /proc/1/root/usr ]; then echo host-visible; fi";
    let out = sh(&mut n, &ctr, &["sh", "-c", probe]).await;
    let field = |k: &str| out.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or("").trim().to_string();
    assert!(field("cmd").contains("berth-pause"), "PID 1 is not the pod's pause: {out}");
    assert_eq!(field("root"), "", "/proc/1/root shows files: {out}");
    assert_eq!(field("environ"), "", "/proc/1/environ is not empty: {out}");
    assert!(field("exe").starts_with("/memfd:berth-pause"), "/proc/1/exe is not the sealed copy: {out}");
    assert_eq!(field("fds"), "", "PID 1 holds fds: {out}");
    assert!(!out.contains("exe-written") && !out.contains("host-visible"), "{out}");
    for (p, before) in &binaries {
        assert_eq!(&berth_tests::escape::sha256_of(p), before, "{} changed", p.display());
    }
}
