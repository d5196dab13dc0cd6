//! The monitor's lifecycle: the pid on the sync pipe, the exit files, detaching and
//! surviving its caller, attach, the terminal, bad command lines and runtime failures.

use crate::*;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;

#[test]
fn sync_pipe_reports_the_container_pid_and_exit_files_its_code() {
    let (mut m, _b, _rt) = setup("mon-pid", |b| {
        b.sh("echo hello; exit 3");
    });
    let pid = launch(&mut m, &[]);
    let st = m.runtime(&["state", &m.cid.clone()]);
    st.ok();
    let state: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(state["pid"].as_i64(), Some(pid as i64), "sync pid is the runtime's init pid");
    assert_eq!(state["status"], "created");
    // The monitor detached: its first process is gone and its pid file names the daemon.
    let mon = m.pid().expect("conmon pidfile written");
    assert_ne!(mon, std::process::id() as i32);
    m.runtime(&["start", &m.cid.clone()]).ok();
    assert_eq!(m.exit_code(T), 3);
    assert_eq!(fs::read_to_string(m.path("persist/exit")).unwrap().trim(), "3");
    assert_eq!(stream_bytes(&m.records(), "stdout"), b"hello\n");
}

#[test]
fn a_signal_death_is_128_plus_the_signal() {
    let (mut m, _b, _rt) = setup("mon-sig", |b| {
        b.args(&["sleep", "100"]);
    });
    launch_and_start(&mut m, &[]);
    m.runtime(&["kill", &m.cid.clone(), "KILL"]).ok();
    assert_eq!(m.exit_code(T), 137);
}

#[test]
fn the_monitor_outlives_its_caller_and_ignores_hup_and_term() {
    if skip_unless_berth_mon("outlives_caller", "conmon forwards SIGTERM to the container, which then exits") {
        return;
    }
    let (mut m, _b, _rt) = setup("mon-survive", |b| {
        b.sh("i=0; while [ $i -lt 400 ]; do echo tick $i; i=$((i+1)); read -t 0.01 x; done; exit 7");
    });
    // The caller: a shell that starts the monitor and is then SIGKILLed.
    launch_and_start(&mut m, &[]);
    let mon = m.pid().unwrap();
    // SAFETY: kill(2) on the monitor this test started; integers only.
    unsafe {
        libc::kill(mon, libc::SIGHUP);
        libc::kill(mon, libc::SIGTERM);
        libc::kill(mon, libc::SIGINT);
    }
    // The caller's end of the sync pipe goes away too.
    m.sync = None;
    m.start = None;
    assert_eq!(m.exit_code(Duration::from_secs(60)), 7, "the container ran to its end and its exit was recorded");
    let out = String::from_utf8(stream_bytes(&m.records(), "stdout")).unwrap();
    assert!(out.contains("tick 0\n") && out.contains("tick 399\n"), "all output logged: {} bytes", out.len());
}

#[test]
fn the_caller_killed_mid_life_loses_nothing() {
    let (mut m, _b, _rt) = setup("mon-caller", |b| {
        b.sh("read x; echo after $x; exit 4");
    });
    // The caller is a shell whose child the monitor stays (`--sync`: no double fork), killed
    // with SIGKILL while the container runs.
    let mut a = m.args();
    a.extend(["--sync".to_string(), "-i".into(), "-l".into(), format!("k8s-file:{}", m.log_path().display())]);
    let mut caller = m.spawn_via(&["sh", "-c", "\"$@\"; echo monitor returned", "sh"], &a);
    let pid = m.sync_msg(T)["data"].as_i64().unwrap();
    assert!(pid > 0);
    m.runtime(&["start", &m.cid.clone()]).ok();
    caller.kill().unwrap();
    caller.wait().unwrap();
    m.sync = None;
    m.start = None;
    let c = m.attach();
    (&c).write_all(b"ok\n").unwrap();
    assert!(berth_tests::proc::poll_until(T, || m.exit_file().exists()), "exit recorded after the caller died");
    assert_eq!(fs::read_to_string(m.exit_file()).unwrap().trim(), "4");
    assert!(m.wait_exit(T));
    assert_eq!(stream_bytes(&m.records(), "stdout"), b"after ok\n");
}

#[test]
fn attach_round_trip_with_two_clients() {
    let (mut m, _b, _rt) = setup("mon-attach", |b| {
        b.sh("while read l; do echo \"got $l\"; echo \"err $l\" >&2; done; echo bye");
    });
    launch(&mut m, &["-i"]);
    let a = m.attach();
    let b2 = m.attach();
    m.runtime(&["start", &m.cid.clone()]).ok();
    (&a).write_all(b"one\n").unwrap();
    assert!(attach_read_until(&a, 2, "got one\n", T).contains("got one\n"));
    assert!(attach_read_until(&b2, 2, "got one\n", T).contains("got one\n"), "second client sees the output too");
    (&b2).write_all(b"two\n").unwrap();
    let e = attach_read_until(&a, 3, "err two\n", T);
    assert!(e.contains("err two"), "stderr tagged 3: {e:?}");
    // Closing a client's sending side ends the container's stdin (no --leave-stdin-open).
    // SAFETY: shutdown on a socket the test owns; integers only.
    unsafe { libc::shutdown(a.as_raw_fd(), libc::SHUT_WR) };
    assert!(attach_read_until(&b2, 2, "bye\n", T).contains("bye"));
    assert_eq!(m.exit_code(T), 0);
    let out = String::from_utf8(stream_bytes(&m.records(), "stdout")).unwrap();
    assert_eq!(out, "got one\ngot two\nbye\n");
}

#[test]
fn terminal_resize_reaches_the_container() {
    let (mut m, _b, _rt) = setup("mon-tty", |b| {
        b.terminal(true).sh("read x; stty size; echo done");
    });
    launch(&mut m, &["-t", "-i"]);
    let a = m.attach();
    m.runtime(&["start", &m.cid.clone()]).ok();
    fs::OpenOptions::new().write(true).open(m.ctl_path()).unwrap().write_all(b"1 33 111\n").unwrap();
    // The resize is applied before the line that makes the container look.
    std::thread::sleep(Duration::from_millis(50));
    (&a).write_all(b"\n").unwrap();
    let out = attach_read_until(&a, 2, "done", T);
    assert!(out.contains("33 111"), "stty size after resize: {out:?}");
    assert!(out.contains("\r\n"), "ONLCR: newlines reach the client as CRLF: {out:?}");
    assert_eq!(m.exit_code(T), 0);
}

#[test]
fn runtime_failure_is_reported_on_the_sync_pipe_and_leaves_nothing() {
    let (mut m, b, _rt) = setup("mon-fail", |b| {
        b.args(&["/no/such/binary"]);
        b.set("/root/path", serde_json::json!("missing-rootfs"));
    });
    b.write();
    let mut a = m.args();
    a.extend(["-l".into(), format!("k8s-file:{}", m.log_path().display())]);
    let o = m.launch(&a);
    assert!(o.success(), "detaching succeeds: {}", o.describe());
    let msg = m.sync_msg(T);
    assert_eq!(msg["data"].as_i64(), Some(-1), "{msg}");
    assert!(!msg["message"].as_str().unwrap_or("").is_empty(), "the runtime's error is passed on: {msg}");
    assert!(m.wait_exit(T));
    if is_berth_mon() {
        // (Debian's conmon 2.1.6 leaves it.)
        assert!(m.path("sockets").read_dir().unwrap().next().is_none(), "no attach symlink left");
    }
    assert!(!m.exit_file().exists(), "no exit file for a container that never existed");
}

#[test]
fn bad_command_lines_are_refused() {
    let bin = monitor_path();
    let run = |args: &[&str]| std::process::Command::new(&bin).args(args).output().unwrap();
    let o = run(&["--frobnicate"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(err.to_lowercase().contains("frobnicate"), "{err}");
    let o = run(&["-u", "x", "-r", "/bin/true", "-l", "none"]);
    assert_eq!(o.status.code(), Some(1));
    let o = run(&["-c", "x", "-u", "x", "-r", "/no/runtime", "-l", "none"]);
    assert_eq!(o.status.code(), Some(1));
    let o = run(&["--version"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("conmon version 2."), "podman parses this line");
}
