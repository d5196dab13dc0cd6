//! Cgroups minimum: own cgroup (berth: cgroup2, i.e. /sys/fs/cgroup/unified on this hybrid
//! host), kill --all / delete --force reach every process, unappliable limits fail clearly.

use crate::*;
use berth_tests::runtime::processes_in;
use std::time::Instant;

const SPAWNER: &str = "sleep 100 & sleep 100 & (sleep 100 &) ; echo ready; sleep 100";

fn wait_procs(b: &Bundle, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = processes_in(&b.rootfs());
        if p.len() >= n || Instant::now() > deadline {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_no_procs(b: &Bundle) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p: Vec<i32> = processes_in(&b.rootfs()).into_iter().filter(|p| !read(format!("/proc/{p}/stat")).contains(") Z ")).collect();
        if p.is_empty() || Instant::now() > deadline {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn own_cgroup_in_unified_hierarchy() {
    let (mut b, rt, id) = setup!("cg_own");
    // runc 1.1 on a hybrid host also joins the container to <unified>/<id>, next to its v1
    // cgroups; berth uses only the unified hierarchy.
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).ok();
    let pid = rt.pid(&id).unwrap();
    let cg = read(format!("/proc/{pid}/cgroup"));
    let path = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or_else(|| panic!("0:: line: {cg}")).to_string();
    assert_ne!(path, "/", "the container has its own cgroup: {cg}");
    let mine = read("/proc/self/cgroup");
    let my_path = mine.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("").to_string();
    assert_ne!(path, my_path, "not the runtime's cgroup");
    let dir = std::path::PathBuf::from(format!("/sys/fs/cgroup/unified{path}"));
    assert!(dir.is_dir(), "{} exists", dir.display());
    assert!(read(dir.join("cgroup.procs")).lines().any(|l| l == pid.to_string()), "init in {}", dir.display());
    rt.delete_force(&id).ok();
    assert!(!dir.exists(), "cgroup {} removed by delete", dir.display());
}

#[test]
fn kill_all_reaches_every_process() {
    let (mut b, rt, id) = setup!("cg_kill_all");
    b.sh(SPAWNER);
    rt.create(&id, &b).ok();
    rt.start(&id).ok();
    let procs = wait_procs(&b, 4);
    assert!(procs.len() >= 4, "container has init + 3 sleeps: {procs:?}");
    rt.exec(&["kill", "--all", &id, "KILL"]).ok();
    let left = wait_no_procs(&b);
    assert!(left.is_empty(), "kill --all left processes: {left:?}");
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    rt.delete(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn delete_force_reaches_every_process() {
    let (mut b, rt, id) = setup!("cg_delete_force");
    b.sh(SPAWNER);
    rt.create(&id, &b).ok();
    rt.start(&id).ok();
    let procs = wait_procs(&b, 4);
    assert!(procs.len() >= 4, "container has init + 3 sleeps: {procs:?}");
    rt.delete_force(&id).ok();
    let left = wait_no_procs(&b);
    assert!(left.is_empty(), "delete --force left processes: {left:?}");
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn host_pid_namespace_kill_all() {
    // Without a pid namespace the kernel does not kill the children with init: the runtime must.
    let (mut b, rt, id) = setup!("cg_hostpid_kill");
    b.remove_namespace("pid");
    b.sh(SPAWNER);
    rt.create(&id, &b).ok();
    rt.start(&id).ok();
    let procs = wait_procs(&b, 4);
    assert!(procs.len() >= 4, "{procs:?}");
    rt.delete_force(&id).ok();
    let left = wait_no_procs(&b);
    assert!(left.is_empty(), "delete --force left processes of a host-pidns container: {left:?}");
}

#[test]
fn unappliable_memory_limit_fails() {
    let (mut b, rt, id) = setup!("cg_memory");
    if rt.skip_runc(
        "unappliable_memory_limit_fails",
        "runc 1.1 applies memory limits through the cgroup v1 memory controller on this hybrid host",
    ) {
        return;
    }
    b.set("/linux/resources/memory", json!({"limit": 64 << 20}));
    b.args(&["true"]);
    let o = rt.create(&id, &b);
    o.fails_mentioning(&["memory"]);
    rt.assert_nothing_left(&id, &b);
}
