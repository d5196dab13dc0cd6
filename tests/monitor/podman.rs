//! podman uses the monitor: Debian's podman 4.3 with `--conmon` = the monitor under test and
//! `--runtime` = the runtime under test runs, logs, stops, attaches, execs, runs `-it` on a
//! pseudo-terminal, lists and removes containers. With `BERTH_MONITOR=conmon` the same tests
//! run against Debian's conmon.

use berth_tests::monitor::monitor_path;
use berth_tests::podman::{Podman, UNCONFINED};
use berth_tests::proc::{poll_until, wait_child};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn podman(test: &str) -> Podman {
    Podman::with_conmon(test, Some(monitor_path()))
}

#[test]
fn podman_run_logs_stop_ps_rm() {
    let pm = podman("mon-run");
    let mut flags = vec!["--rm"];
    flags.extend(UNCONFINED);
    let o = pm.run_container(&flags, &["sh", "-c", "echo hello-$((1+2)); echo to-stderr >&2; exit 7"]);
    assert_eq!(o.code, Some(7), "exit status through the monitor: {}", o.describe());
    assert_eq!(o.stdout.trim(), "hello-3", "{}", o.describe());
    assert!(o.stderr.contains("to-stderr"), "{}", o.describe());

    let id = pm.start_detached("svc", r#"trap "exit 3" TERM; echo ready; echo err-ready >&2; while :; do sleep 1 & wait $!; done"#);
    let logged = poll_until(T, || pm.run(&["logs", "svc"]).stdout.contains("ready"));
    assert!(logged, "podman logs reads the monitor's CRI log: {}", pm.run(&["logs", "svc"]).describe());
    assert!(pm.run(&["logs", "svc"]).stderr.contains("err-ready"));
    let ps = pm.ok(&["ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert!(ps.lines().any(|l| l.starts_with(&format!("{id} svc Up"))), "{ps}");
    pm.ok(&["stop", "-t", "10", "svc"]);
    assert_eq!(pm.inspect("svc", "{{.State.ExitCode}}"), "3", "the exit code the monitor recorded");
    let ps = pm.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("svc Exited (3)"), "{ps}");
    pm.ok(&["rm", "svc"]);
    assert!(pm.ok(&["ps", "-a", "-q"]).is_empty());
}

#[test]
fn podman_attach_and_exec() {
    let pm = podman("mon-attach");
    let mut flags = vec!["-d", "-i", "--name", "talk"];
    flags.extend(UNCONFINED);
    let o = pm.run_container(&flags, &["sh", "-c", "while read l; do echo got-$l; [ $l = quit ] && exit 6; done"]);
    assert!(o.success(), "{}", o.describe());
    let o = pm.run(&["exec", "talk", "sh", "-c", "echo exec-$((2+3)); echo exec-err >&2; exit 5"]);
    assert_eq!(o.code, Some(5), "{}", o.describe());
    assert_eq!(o.stdout.trim(), "exec-5", "{}", o.describe());
    assert_eq!(o.stderr.trim(), "exec-err", "{}", o.describe());
    // `podman attach` with input: the monitor's attach socket carries both ways.
    let mut c = pm.command(&["attach", "talk"]);
    let input = pm.dir().join("attach-input");
    std::fs::write(&input, "hello\nquit\n").unwrap();
    c.stdin(std::fs::File::open(&input).unwrap());
    let out = pm.dir().join("attach-out");
    c.stdout(std::fs::File::create(&out).unwrap()).stderr(std::fs::File::create(pm.dir().join("attach-err")).unwrap());
    let mut child = c.spawn().unwrap();
    let (status, timed_out) = wait_child(&mut child, T);
    assert!(!timed_out, "podman attach did not end");
    let seen = std::fs::read_to_string(&out).unwrap();
    assert!(
        seen.contains("got-hello") && seen.contains("got-quit"),
        "{seen:?} {}",
        std::fs::read_to_string(pm.dir().join("attach-err")).unwrap_or_default()
    );
    assert!(status.success(), "podman attach ends when the container does: {seen:?}");
    assert_eq!(pm.wait("talk"), 6, "the exit code the monitor recorded");
    pm.ok(&["rm", "talk"]);
}

#[test]
fn podman_run_it_on_a_pty() {
    let pm = podman("mon-tty");
    let mut flags = vec!["-it", "--rm"];
    flags.extend(UNCONFINED);
    let argv = pm.run_args(&flags, &["sh", "-c", "tty; stty size; read x; echo got-$x; exit 8"]);
    let (mut m, mut child) = pm.spawn_on_pty(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    let seen = m.read_until("24 80", T);
    m.write_all(b"hello\n");
    let seen = seen + &m.read_until("got-hello", T);
    let (status, timed_out) = wait_child(&mut child, T);
    assert!(!timed_out, "podman run -it did not end: {seen:?}");
    assert!(seen.contains("/dev/pts/0"), "{seen:?}");
    assert!(seen.contains("24 80"), "the client's window size reached the container: {seen:?}");
    assert!(seen.contains("got-hello"), "{seen:?}");
    assert_eq!(status.code(), Some(8), "{seen:?}");
    // And an interactive exec on a pty.
    pm.start_detached("svc", "while :; do sleep 1 & wait $!; done");
    let (mut m, mut child) = pm.spawn_on_pty(&["exec", "-it", "svc", "sh"]);
    m.write_all(b"tty; echo pty-$((6*7)); exit 9\n");
    let seen = m.read_until("pty-42", T);
    let (status, timed_out) = wait_child(&mut child, T);
    assert!(!timed_out && seen.contains("/dev/pts/"), "{seen:?}");
    assert_eq!(status.code(), Some(9), "{seen:?}");
    pm.ok(&["rm", "-f", "-t", "0", "svc"]);
}
