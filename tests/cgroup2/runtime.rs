//! berth's cgroup on a pure cgroup v2 host: placement under the hierarchy root, limits
//! written to the container's cgroup, OOM kills seen in memory.events, `kill --all`
//! through cgroup.kill, and removal on delete.

use berth_tests::bundle::Bundle;
use berth_tests::runtime::Runtime;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

fn container_cgroup(id: &str) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup/berth").join(id)
}

fn cgroup_mount(b: &mut Bundle) {
    b.add_namespace("cgroup", None);
    b.add_mount(json!({"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup2",
        "options": ["nosuid", "noexec", "nodev", "ro"]}));
}

#[test]
fn limits_are_written_to_the_container_cgroup() {
    if berth_tests::cgroup2::skip("limits_are_written_to_the_container_cgroup") {
        return;
    }
    if !berth_tests::runtime::runtime_path().to_string_lossy().contains("berth") {
        eprintln!("limits_are_written_to_the_container_cgroup: SKIPPED for {}: checks berth's default cgroup /sys/fs/cgroup/berth/<id> and cpu weight curve", berth_tests::runtime::runtime_path().display());
        return;
    }
    let mut b = Bundle::new("cg2-limits");
    let rt = Runtime::new("cg2-limits");
    let id = rt.id("");
    cgroup_mount(&mut b);
    b.set("/linux/resources/memory", json!({"limit": 33554432, "swap": 33554432}));
    b.set("/linux/resources/pids", json!({"limit": 20}));
    b.set("/linux/resources/cpu", json!({"shares": 1024, "quota": 50000, "period": 100000}));
    b.sh("cd /sys/fs/cgroup && cat memory.max memory.swap.max pids.max cpu.max cpu.weight; cat /proc/self/cgroup");
    let o = rt.run(&id, &b);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().map(str::trim).collect();
    // cgroup2 weight for shares 1024 with runc's and crun's current curve: 100 (the v2 default).
    assert_eq!(lines, vec!["33554432", "0", "20", "50000 100000", "100", "0::/"], "{}", o.stderr);
    assert!(!container_cgroup(&id).exists(), "cgroup removed after run");
}

#[test]
fn oom_kill_is_recorded_in_memory_events() {
    if berth_tests::cgroup2::skip("oom_kill_is_recorded_in_memory_events") {
        return;
    }
    if !berth_tests::runtime::runtime_path().to_string_lossy().contains("berth") {
        eprintln!("oom_kill_is_recorded_in_memory_events: SKIPPED for {}: checks berth's default cgroup /sys/fs/cgroup/berth/<id> and cpu weight curve", berth_tests::runtime::runtime_path().display());
        return;
    }
    let mut b = Bundle::new("cg2-oom");
    let rt = Runtime::new("cg2-oom");
    let id = rt.id("");
    b.set("/linux/resources/memory", json!({"limit": 16777216, "swap": 16777216}));
    // busybox dd allocates its 64 MiB block and fills it from /dev/zero.
    b.args(&["/bin/busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    rt.create(&id, &b).ok();
    let cg = container_cgroup(&id);
    assert!(cg.join("memory.max").exists(), "container cgroup {} exists", cg.display());
    rt.start(&id).ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(20)), "container stopped");
    let events = std::fs::read_to_string(cg.join("memory.events")).unwrap();
    let oom_kills: u64 = events.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    assert!(oom_kills >= 1, "memory.events: {events}");
    rt.delete(&id).ok();
    assert!(!cg.exists(), "cgroup removed by delete");
}

/// Starts a container whose shell leaves two background sleeps and execs a third (so three
/// processes); returns its cgroup.
fn start_with_children(rt: &Runtime, b: &mut Bundle, id: &str) -> PathBuf {
    b.sh("sleep 1000 & sleep 1000 & sleep 1000");
    rt.create(id, b).ok();
    rt.start(id).ok();
    let cg = container_cgroup(id);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while procs(&cg) < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(procs(&cg), 3, "three sleeps in {}", cg.display());
    cg
}

fn procs(cg: &std::path::Path) -> usize {
    std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default().lines().count()
}

#[test]
fn kill_all_reaches_every_process() {
    if berth_tests::cgroup2::skip("kill_all_reaches_every_process") {
        return;
    }
    if !berth_tests::runtime::runtime_path().to_string_lossy().contains("berth") {
        eprintln!(
            "kill_all_reaches_every_process: SKIPPED for {}: checks berth's default cgroup /sys/fs/cgroup/berth/<id> and cpu weight curve",
            berth_tests::runtime::runtime_path().display()
        );
        return;
    }
    let mut b = Bundle::new("cg2-killall");
    let rt = Runtime::new("cg2-killall");
    let id = rt.id("");
    let cg = start_with_children(&rt, &mut b, &id);
    rt.exec(&["kill", "--all", &id, "KILL"]).ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)), "container stopped");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while procs(&cg) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(procs(&cg), 0, "no process left in the cgroup");
    rt.delete(&id).ok();
    assert!(!cg.exists(), "cgroup removed");
}

#[test]
fn delete_force_reaches_every_process() {
    if berth_tests::cgroup2::skip("delete_force_reaches_every_process") {
        return;
    }
    if !berth_tests::runtime::runtime_path().to_string_lossy().contains("berth") {
        eprintln!("delete_force_reaches_every_process: SKIPPED for {}: checks berth's default cgroup /sys/fs/cgroup/berth/<id> and cpu weight curve", berth_tests::runtime::runtime_path().display());
        return;
    }
    let mut b = Bundle::new("cg2-delforce");
    let rt = Runtime::new("cg2-delforce");
    let id = rt.id("");
    let cg = start_with_children(&rt, &mut b, &id);
    rt.delete_force(&id).ok();
    assert!(!cg.exists(), "cgroup removed, so every process in it is gone");
}
