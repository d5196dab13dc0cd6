//! Drop-in check: containerd 1.6 and its runc shim (`containerd-shim-runc-v2`) drive the
//! runtime under test through `ctr run --runc-binary`, exactly as they drive runc: run, task
//! exec, task ps, pause/resume, kill, delete, and `run --seccomp` (containerd's default
//! profile). Each test has its own containerd (tests/src/containerd.rs), which also checks
//! that nothing is left behind.

use berth_tests::containerd::Containerd;
use berth_tests::host_cgroup;
use berth_tests::proc::Running;
use std::time::Duration;

/// A task that runs until signalled: TERM ends it with status 3, USR1 with 10. The traps run
/// at once because the loop waits on a background sleep, not a foreground one.
const SERVICE: &str = r#"trap "exit 3" TERM; trap "exit 10" USR1; while :; do sleep 1 & wait $!; done"#;

fn task_id(ctd: &Containerd, suffix: &str) -> String {
    format!("{}-{suffix}", ctd.namespace)
}

/// The task's exit status, as the attached `ctr run` / `ctr tasks start` that waited for it
/// exits with it (ctr then deletes the task).
#[track_caller]
fn exit_status(r: Running) -> Option<i32> {
    let o = r.wait(Duration::from_secs(30));
    assert!(!o.timed_out, "the task did not end: {}", o.describe());
    o.code
}

/// (status, pid) from the runtime's own `state` of `id`.
fn runtime_state(ctd: &Containerd, id: &str) -> Option<(String, i32)> {
    let o = ctd.runtime_state(id);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).ok()?;
    Some((v["status"].as_str()?.to_string(), v["pid"].as_i64()? as i32))
}

#[test]
fn containerd_run_foreground_output_and_exit_code() {
    let ctd = Containerd::start("run");
    let id = task_id(&ctd, "fg");
    let o = ctd.run(&["--rm"], &id, &["sh", "-c", "echo hello-$((1+2)); exit 7"]);
    assert_eq!(o.code, Some(7), "{}", o.describe());
    assert_eq!(o.stdout.trim(), "hello-3", "{}", o.describe());
    assert!(ctd.ok(&["containers", "ls", "-q"]).is_empty(), "--rm removed the container");
}

#[test]
fn containerd_run_kill_and_delete() {
    let ctd = Containerd::start("kill");
    let id = task_id(&ctd, "d");
    let task = ctd.run_attached(&[], &id, SERVICE);
    let (pid, status) = ctd.task(&id).expect("task listed");
    assert_eq!(status, "RUNNING");
    // The shim's runtime is the one under test: its own state names the same init.
    assert_eq!(runtime_state(&ctd, &id), Some(("running".into(), pid)), "{}", ctd.runtime_state(&id).describe());

    // A signal by name reaches the init (its trap picks the exit status).
    ctd.ok(&["tasks", "kill", "--signal", "USR1", &id]);
    assert_eq!(exit_status(task), Some(10), "exit status of the USR1 trap");
    // The task is deleted from the runtime; the container (and its snapshot) stays.
    assert!(ctd.task(&id).is_none(), "ctr deleted the task");
    assert!(!ctd.runtime_state(&id).success(), "runtime still has {id} after the task's delete");
    assert!(ctd.container_cgroups().is_empty(), "cgroups left after the task's delete: {:?}", ctd.container_cgroups());
    // A new task of the same container; the default signal is TERM.
    let task = ctd.start_attached(&id);
    ctd.ok(&["tasks", "kill", &id]);
    assert_eq!(exit_status(task), Some(3), "exit status of the TERM trap");
    ctd.ok(&["containers", "rm", &id]);

    // SIGKILL; and delete --force of a running (detached) task.
    let id2 = task_id(&ctd, "k");
    let task = ctd.run_attached(&["--rm"], &id2, SERVICE);
    ctd.ok(&["tasks", "kill", "--signal", "KILL", &id2]);
    assert_eq!(exit_status(task), Some(137), "SIGKILL status");
    let id3 = task_id(&ctd, "f");
    ctd.run_detached(&id3, SERVICE);
    ctd.ok(&["tasks", "rm", "--force", &id3]);
    assert!(ctd.task(&id3).is_none(), "tasks rm --force removed the running task");
    assert!(!ctd.runtime_state(&id3).success(), "runtime still has {id3} after tasks rm --force");
    ctd.ok(&["containers", "rm", &id3]);
    assert!(ctd.ok(&["containers", "ls", "-q"]).is_empty());
    ctd.ok(&["images", "rm", "--sync", berth_tests::containerd::IMAGE]);
}

#[test]
fn containerd_task_exec() {
    let ctd = Containerd::start("exec");
    let id = task_id(&ctd, "x");
    let task = ctd.run_attached(&["--rm"], &id, SERVICE);
    let (pid, _) = ctd.task(&id).expect("task listed");
    // Output and exit status of the exec'd process travel through the shim.
    let o = ctd.exec(&["--exec-id", "e1"], &id, &["sh", "-c", "echo exec-$((2+3)); exit 6"]);
    assert_eq!(o.code, Some(6), "{}", o.describe());
    assert_eq!(o.stdout.trim(), "exec-5", "{}", o.describe());
    // It joins the task's namespaces, with the working directory and user ctr asked for.
    let o = ctd.exec(
        &["--exec-id", "e2", "--cwd", "/tmp", "--user", "1000"],
        &id,
        &["sh", "-c", "readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt; pwd; id -u"],
    );
    assert!(o.success(), "{}", o.describe());
    let host = |ns: &str| std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap().to_string_lossy().into_owned();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines, [host("pid").as_str(), host("mnt").as_str(), "/tmp", "1000"], "{}", o.describe());
    // The task is unaffected.
    assert_eq!(ctd.task(&id).map(|t| t.1).as_deref(), Some("RUNNING"));
    ctd.ok(&["tasks", "kill", &id]);
    assert_eq!(exit_status(task), Some(3));
}

#[test]
fn containerd_task_ps() {
    let ctd = Containerd::start("ps");
    let id = task_id(&ctd, "p");
    let task = ctd.run_attached(&["--rm"], &id, SERVICE);
    let (pid, _) = ctd.task(&id).expect("task listed");
    // A second process, exec'd detached, so ps has more than the init to list.
    let o = ctd.exec(&["--detach", "--exec-id", "sleeper"], &id, &["sleep", "300"]);
    assert!(o.success(), "{}", o.describe());
    // `ctr tasks ps` asks the shim, which asks the runtime (`ps --format json`).
    let ps = ctd.ok(&["tasks", "ps", &id]);
    let pids: Vec<i32> = ps.lines().skip(1).filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect();
    assert!(pids.contains(&pid), "tasks ps lists the init {pid}: {ps}");
    let sleeper =
        pids.iter().copied().find(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.starts_with("sleep\x00300")));
    assert!(sleeper.is_some(), "tasks ps lists the exec'd sleep: {ps}");
    for p in &pids {
        let ns = std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
        assert_eq!(ns, std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok(), "pid {p} of tasks ps is in the task's pid namespace");
    }
    ctd.ok(&["tasks", "kill", "--signal", "KILL", &id]);
    assert_eq!(exit_status(task), Some(137));
}

#[test]
fn containerd_pause_resume() {
    let ctd = Containerd::start("pause");
    let id = task_id(&ctd, "z");
    let task = ctd.run_attached(&["--rm"], &id, SERVICE);
    let (pid, _) = ctd.task(&id).expect("task listed");
    assert_eq!(host_cgroup::frozen(pid), Some(false), "a running task's cgroup is not frozen");
    ctd.ok(&["tasks", "pause", &id]);
    assert_eq!(ctd.task(&id).map(|t| t.1).as_deref(), Some("PAUSED"));
    assert_eq!(host_cgroup::frozen(pid), Some(true), "the kernel froze the task's cgroup");
    assert_eq!(runtime_state(&ctd, &id).map(|s| s.0).as_deref(), Some("paused"), "the runtime's state says paused");
    ctd.ok(&["tasks", "resume", &id]);
    assert_eq!(ctd.task(&id).map(|t| t.1).as_deref(), Some("RUNNING"));
    assert_eq!(host_cgroup::frozen(pid), Some(false), "resume thawed the cgroup");
    assert_eq!(runtime_state(&ctd, &id).map(|s| s.0).as_deref(), Some("running"));
    // Thawed for real: the init handles TERM again.
    ctd.ok(&["tasks", "kill", &id]);
    assert_eq!(exit_status(task), Some(3));
}

#[test]
fn containerd_run_default_seccomp_profile() {
    let ctd = Containerd::start("seccomp");
    // containerd's default profile (`ctr run --seccomp`) allows personality(2) only for a few
    // personas and answers what it does not list with EPERM: `linux64` asks for PER_LINUX
    // (allowed), `linux64 -R` adds ADDR_NO_RANDOMIZE (not listed).
    let script = "grep '^Seccomp:' /proc/self/status; linux64 true && echo plain=ok; linux64 -R true; echo no-randomize=$?";
    let o = ctd.run(&["--rm", "--seccomp"], &task_id(&ctd, "s"), &["sh", "-c", script]);
    assert!(o.success(), "{}", o.describe());
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines, ["Seccomp:\t2", "plain=ok", "no-randomize=1"], "under containerd's default profile: {}", o.describe());
    assert!(o.stderr.contains("Operation not permitted"), "the profile's EPERM: {}", o.describe());
    // An exec'd process gets the task's profile too.
    let id = task_id(&ctd, "x");
    let task = ctd.run_attached(&["--rm", "--seccomp"], &id, SERVICE);
    let o = ctd.exec(&["--exec-id", "e1"], &id, &["sh", "-c", script]);
    assert!(o.success(), "{}", o.describe());
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines, ["Seccomp:\t2", "plain=ok", "no-randomize=1"], "exec under containerd's default profile: {}", o.describe());
    ctd.ok(&["tasks", "kill", &id]);
    assert_eq!(exit_status(task), Some(3));
    // Without the profile the same calls all succeed: the filter made the difference.
    let o = ctd.run(&["--rm"], &task_id(&ctd, "u"), &["sh", "-c", script]);
    assert!(o.success(), "{}", o.describe());
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines, ["Seccomp:\t0", "plain=ok", "no-randomize=0"], "unconfined: {}", o.describe());
}
