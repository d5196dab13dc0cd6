//! Drop-in check: Debian's podman 4.3 (rootful, Debian's conmon) with `--runtime` = the runtime
//! under test: run, run -d + logs, exec (plain and `-it` under a pty), ps, top, pause/unpause,
//! stop, kill, rm, and `run` under podman's default seccomp profile. The tests check podman's
//! expectations, so they pass with runc too (`BERTH_RUNTIME=runc`). Each test has a private
//! podman (tests/src/podman.rs) that also fails the test if anything is left behind.
//!
//! Podman talks to the runtime through conmon: `create --bundle … --pid-file …
//! [--console-socket …]`, `start`, `state`, `kill`, `delete [--force]`, `exec --detach
//! --pid-file … --process … [--console-socket …]`, `pause`, `resume`, all with
//! `--log-format=json --log FILE` (see `runtime_supports_json` in the fixture's config).

use berth_tests::host_cgroup;
use berth_tests::podman::{Podman, UNCONFINED};
use berth_tests::proc::{poll_until, wait_child};
use std::time::Duration;

/// A container that runs until signalled: TERM ends it with status 3, USR1 with 10. The traps
/// run at once because the loop waits on a background sleep, not a foreground one.
const SERVICE: &str = r#"trap "exit 3" TERM; trap "exit 10" USR1; echo ready; while :; do sleep 1 & wait $!; done"#;

/// `status` from the runtime's own `state` of container `id`.
fn runtime_status(pm: &Podman, id: &str) -> Option<String> {
    let o = pm.runtime_state(id);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).ok()?;
    v["status"].as_str().map(String::from)
}

#[test]
fn podman_run_foreground_output_and_exit_code() {
    let pm = Podman::new("run");
    let mut flags = vec!["--rm"];
    flags.extend(UNCONFINED);
    let o = pm.run_container(&flags, &["sh", "-c", "echo hello-$((1+2)); echo to-stderr >&2; exit 7"]);
    assert_eq!(o.code, Some(7), "the container's exit status is podman's: {}", o.describe());
    assert_eq!(o.stdout.trim(), "hello-3", "{}", o.describe());
    assert!(o.stderr.contains("to-stderr"), "the container's stderr reaches podman's: {}", o.describe());
    assert!(pm.ok(&["ps", "-a", "-q"]).is_empty(), "--rm removed the container");
}

#[test]
fn podman_run_detached_and_logs() {
    let pm = Podman::new("logs");
    // A container that finishes on its own: exit status through `podman wait`, output and
    // error streams through `podman logs`.
    let mut flags = vec!["-d", "--name", "once"];
    flags.extend(UNCONFINED);
    let o = pm.run_container(&flags, &["sh", "-c", "echo out-1; echo err-1 >&2; exit 4"]);
    assert!(o.success(), "{}", o.describe());
    assert_eq!(pm.wait("once"), 4);
    let o = pm.run(&["logs", "once"]);
    assert!(o.success(), "{}", o.describe());
    assert_eq!(o.stdout.trim(), "out-1", "{}", o.describe());
    assert_eq!(o.stderr.trim(), "err-1", "{}", o.describe());

    // A running one: podman's pid is the init the runtime reports in its own state.
    let id = pm.start_detached("svc", SERVICE);
    let pid = pm.pid("svc");
    let st = pm.runtime_state(&id);
    assert!(st.success(), "{} state {id}: {}", pm.runtime.display(), st.describe());
    let st: serde_json::Value = serde_json::from_str(&st.stdout).expect("state JSON");
    assert_eq!((st["status"].as_str(), st["pid"].as_i64()), (Some("running"), Some(pid as i64)), "{st}");
    assert_eq!(pm.inspect("svc", "{{.State.Status}}"), "running");
    // conmon copies the output asynchronously: no event tells when it reached the log.
    let logged = poll_until(Duration::from_secs(10), || pm.run(&["logs", "svc"]).stdout.contains("ready"));
    assert!(logged, "logs of a running container: {}", pm.run(&["logs", "svc"]).describe());
}

#[test]
fn podman_exec() {
    let pm = Podman::new("exec");
    let id = pm.start_detached("svc", SERVICE);
    let pid = pm.pid("svc");
    // Output and exit status of the exec'd process.
    let o = pm.run(&["exec", "svc", "sh", "-c", "echo exec-$((2+3)); exit 5"]);
    assert_eq!(o.code, Some(5), "{}", o.describe());
    assert_eq!(o.stdout.trim(), "exec-5", "{}", o.describe());
    // Environment, working directory and user from podman's process spec.
    let o = pm.ok(&["exec", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000:1000", "svc", "sh", "-c", "echo $FOO:$(pwd):$(id -u):$(id -g)"]);
    assert_eq!(o, "bar:/tmp:1000:1000");
    // It joins the container's namespaces (as the host names them) and sees its hostname.
    let o = pm.ok(&["exec", "svc", "sh", "-c", "for n in pid mnt uts; do readlink /proc/self/ns/$n; done; hostname"]);
    let host = |ns: &str| std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap().to_string_lossy().into_owned();
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines, [host("pid").as_str(), host("mnt").as_str(), host("uts").as_str(), &id[..12]], "{o}");
    assert_eq!(pm.inspect("svc", "{{.State.Status}}"), "running", "exec leaves the container running");
    pm.ok(&["stop", "svc"]);
}

#[test]
fn podman_exec_tty() {
    let pm = Podman::new("exec-tty");
    pm.start_detached("svc", SERVICE);
    let (mut m, mut child) = pm.spawn_on_pty(&["exec", "-it", "svc", "sh"]);
    // Typed ahead: the pty buffers it until podman forwards it to the container's terminal.
    m.write_all(b"tty; stty size; echo pty-$((6*7)); exit 9\n");
    let seen = m.read_until("pty-42", Duration::from_secs(30));
    let (status, timed_out) = wait_child(&mut child, Duration::from_secs(30));
    assert!(!timed_out, "podman exec -it did not end: {seen:?}");
    assert!(seen.contains("pty-42"), "interactive shell output on the terminal: {seen:?}");
    assert!(seen.contains("/dev/pts/"), "the exec'd shell has a terminal: {seen:?}");
    assert!(seen.contains("24 80"), "the terminal has the client's size: {seen:?}");
    assert_eq!(status.code(), Some(9), "exit status of the interactive shell: {seen:?}");
    pm.ok(&["stop", "svc"]);
}

#[test]
fn podman_run_tty() {
    let pm = Podman::new("run-tty");
    let mut flags = vec!["-it", "--rm"];
    flags.extend(UNCONFINED);
    let argv = pm.run_args(&flags, &["sh", "-c", "tty; stty size; read x; echo got-$x; exit 8"]);
    let (mut m, mut child) = pm.spawn_on_pty(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    let seen = m.read_until("24 80", Duration::from_secs(30));
    m.write_all(b"hello\n");
    let seen = seen + &m.read_until("got-hello", Duration::from_secs(30));
    let (status, timed_out) = wait_child(&mut child, Duration::from_secs(30));
    assert!(!timed_out, "podman run -it did not end: {seen:?}");
    assert!(seen.contains("/dev/pts/0"), "the container's terminal: {seen:?}");
    assert!(seen.contains("24 80"), "the terminal has the client's size: {seen:?}");
    assert!(seen.contains("got-hello"), "input typed on the client's terminal reaches the container: {seen:?}");
    assert_eq!(status.code(), Some(8), "{seen:?}");
}

#[test]
fn podman_ps_and_top() {
    let pm = Podman::new("ps-top");
    let id = pm.start_detached("svc", SERVICE);
    let ps = pm.ok(&["ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert!(ps.lines().any(|l| l.starts_with(&format!("{id} svc Up"))), "ps lists the running container: {ps}");
    let top = pm.ok(&["top", "svc", "pid", "user", "args"]);
    let header = top.lines().next().unwrap_or_default().split_whitespace().collect::<Vec<_>>();
    assert_eq!(header, ["PID", "USER", "COMMAND"], "{top}");
    assert!(
        top.lines().skip(1).any(|l| l.split_whitespace().take(3).collect::<Vec<_>>() == ["1", "root", "sh"] && l.contains("echo ready")),
        "top shows the container's init as pid 1: {top}"
    );
    pm.ok(&["stop", "svc"]);
    assert!(pm.ok(&["ps", "-q"]).is_empty(), "a stopped container is not listed as running");
    let ps = pm.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("svc Exited (3)"), "ps -a shows the exit status: {ps}");
}

#[test]
fn podman_pause_unpause() {
    let pm = Podman::new("pause");
    let id = pm.start_detached("svc", SERVICE);
    let pid = pm.pid("svc");
    assert_eq!(host_cgroup::frozen(pid), Some(false), "a running container's cgroup is not frozen");
    pm.ok(&["pause", "svc"]);
    assert_eq!(pm.inspect("svc", "{{.State.Status}}"), "paused");
    assert_eq!(pm.ok(&["ps", "-a", "--format", "{{.Status}}"]), "Paused");
    assert_eq!(host_cgroup::frozen(pid), Some(true), "the kernel froze the container's cgroup");
    assert_eq!(runtime_status(&pm, &id).as_deref(), Some("paused"), "the runtime's state says paused");
    pm.ok(&["unpause", "svc"]);
    assert_eq!(pm.inspect("svc", "{{.State.Status}}"), "running");
    assert_eq!(host_cgroup::frozen(pid), Some(false), "unpause thawed the cgroup");
    assert_eq!(runtime_status(&pm, &id).as_deref(), Some("running"));
    // Thawed for real: the init handles TERM again.
    let o = pm.run(&["stop", "-t", "20", "svc"]);
    assert!(o.success(), "{}", o.describe());
    assert_eq!(pm.inspect("svc", "{{.State.ExitCode}}"), "3");
}

#[test]
fn podman_stop_kill_rm() {
    let pm = Podman::new("stop-kill-rm");
    let ids = ["a", "b", "c", "d"].map(|n| pm.start_detached(n, SERVICE));

    // stop: SIGTERM, which the init handles (no fallback to SIGKILL).
    let o = pm.run(&["stop", "-t", "20", "a"]);
    assert!(o.success(), "{}", o.describe());
    assert!(!o.stderr.contains("SIGKILL"), "the TERM trap ended the container: {}", o.describe());
    assert_eq!(pm.inspect("a", "{{.State.Status}} {{.State.ExitCode}}"), "exited 3");
    // kill: a signal by name, and the default SIGKILL.
    pm.ok(&["kill", "--signal", "USR1", "b"]);
    assert_eq!(pm.wait("b"), 10, "exit status of the USR1 trap");
    pm.ok(&["kill", "c"]);
    assert_eq!(pm.wait("c"), 137, "SIGKILL status");
    // rm of stopped containers, rm -f of a running one.
    pm.ok(&["rm", "a", "b", "c"]);
    pm.ok(&["rm", "-f", "d"]);
    assert!(pm.ok(&["ps", "-a", "-q"]).is_empty(), "every container removed");
    for id in &ids {
        assert!(!pm.runtime_state(id).success(), "{} still knows {id} after podman rm", pm.runtime.display());
    }
    assert!(pm.container_cgroups().is_empty(), "container cgroups left after rm: {:?}", pm.container_cgroups());
}

#[test]
fn podman_run_default_seccomp_profile() {
    let pm = Podman::new("seccomp");
    // podman's default profile (containers-common's seccomp.json) allows personality(2) only for
    // a few personas and answers every syscall it does not list with ENOSYS (defaultErrnoRet 38):
    // `linux64` asks for PER_LINUX (allowed), `linux64 -R` adds ADDR_NO_RANDOMIZE (not listed).
    let script = "grep '^Seccomp:' /proc/self/status; linux64 true && echo plain=ok; linux64 -R true; echo no-randomize=$?";
    let o = pm.run_container(&["--rm"], &["sh", "-c", script]);
    assert!(o.success(), "{}", o.describe());
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines, ["Seccomp:\t2", "plain=ok", "no-randomize=1"], "under podman's default profile: {}", o.describe());
    assert!(o.stderr.contains("Function not implemented"), "the profile's ENOSYS: {}", o.describe());
    // An exec'd process gets the container's profile too.
    let o = pm.run_container(&["-d", "--name", "svc"], &["sh", "-c", SERVICE]);
    assert!(o.success(), "{}", o.describe());
    let o = pm.run(&["exec", "svc", "sh", "-c", script]);
    assert!(o.success(), "{}", o.describe());
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines, ["Seccomp:\t2", "plain=ok", "no-randomize=1"], "exec under podman's default profile: {}", o.describe());
    pm.ok(&["stop", "svc"]);
    // Without the profile the same calls all succeed: the filter made the difference.
    let mut flags = vec!["--rm"];
    flags.extend(UNCONFINED);
    let o = pm.run_container(&flags, &["sh", "-c", script]);
    assert!(o.success(), "{}", o.describe());
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines, ["Seccomp:\t0", "plain=ok", "no-randomize=0"], "unconfined: {}", o.describe());
}
