//! Exec sessions: exec sync with output and a timeout (CRI-O's ExecSync), and an attached
//! exec (podman's `exec`): attach pipe, start pipe, output over the attach socket.

use crate::*;
use serde_json::json;
use std::fs;

/// A running container (`sleep`) and its monitor.
fn running(name: &str) -> (Monitor, Bundle, Runtime) {
    let (mut m, b, rt) = setup(name, |b| {
        b.args(&["sleep", "1000"]);
    });
    launch_and_start(&mut m, &[]);
    (m, b, rt)
}

/// A second monitor for an exec session in `m`'s container.
fn exec_monitor(m: &Monitor, rt: &Runtime, b: &Bundle, session: &str, args: &[&str]) -> (Monitor, Vec<String>) {
    let mut e = Monitor::new(rt, b, &m.cid);
    e.root = m.root.clone();
    let spec = e.path("process.json");
    fs::write(&spec, json!({"args": args, "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}, "terminal": false}).to_string())
        .unwrap();
    let s = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    let a = vec![
        "--api-version".into(),
        "1".into(),
        "-c".into(),
        m.cid.clone(),
        "-u".into(),
        session.into(),
        "-r".into(),
        s(e.runtime.clone()),
        "-p".into(),
        s(e.path("exec.pid")),
        "-P".into(),
        s(e.path("monitor.pid")),
        "--exit-dir".into(),
        s(e.path("exits")),
        "-l".into(),
        format!("k8s-file:{}", e.log_path().display()),
        "--runtime-arg".into(),
        "--root".into(),
        "--runtime-arg".into(),
        s(m.root.clone()),
        "-e".into(),
        "--exec-process-spec".into(),
        s(spec),
    ];
    (e, a)
}

#[test]
fn exec_sync_returns_output_and_status() {
    let (m, b, rt) = running("mon-execsync");
    let (mut e, mut a) = exec_monitor(&m, &rt, &b, "sess1", &["sh", "-c", "echo out; echo err >&2; exit 5"]);
    a.extend(["-T".into(), "10".into()]);
    let o = e.launch(&a);
    assert!(o.success(), "{}", o.describe());
    let pid = e.sync_msg(T);
    assert!(pid["data"].as_i64().unwrap() > 0, "first the exec pid: {pid}");
    let st = e.sync_msg(T);
    assert_eq!(st["data"].as_i64(), Some(5), "then the exit status: {st}");
    assert!(st.get("message").is_none(), "{st}");
    let recs = e.records();
    assert_eq!(stream_bytes(&recs, "stdout"), b"out\n");
    assert_eq!(stream_bytes(&recs, "stderr"), b"err\n");
    assert!(e.wait_exit(T));
    // The exit dir of an exec session is named after the container id (conmon's rule).
    assert_eq!(fs::read_to_string(e.path("exits").join(&m.cid)).unwrap().trim(), "5");
    drop(m);
}

#[test]
fn exec_sync_is_killed_at_the_timeout() {
    let (m, b, rt) = running("mon-exectimeout");
    let (mut e, mut a) = exec_monitor(&m, &rt, &b, "sess2", &["sh", "-c", "echo started; sleep 100"]);
    a.extend(["-T".into(), "1".into()]);
    let begun = std::time::Instant::now();
    let o = e.launch(&a);
    assert!(o.success(), "{}", o.describe());
    let pid = e.sync_msg(T)["data"].as_i64().unwrap() as i32;
    assert!(pid > 0);
    let st = e.sync_msg(T);
    assert_eq!(st["data"].as_i64(), Some(-1), "{st}");
    assert_eq!(st["message"], "command timed out");
    assert!(begun.elapsed() < Duration::from_secs(10), "killed at the timeout, not at the end of the sleep");
    assert!(e.wait_exit(T));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z")).unwrap_or(true),
        "the exec process is gone"
    );
    assert_eq!(stream_bytes(&e.records(), "stdout"), b"started\n");
    drop(m);
}

#[test]
fn attached_exec_waits_for_its_client() {
    let (m, b, rt) = running("mon-execattach");
    let (mut e, mut a) = exec_monitor(&m, &rt, &b, "sess3", &["sh", "-c", "echo early; echo late >&2"]);
    let sdir = e.bundle.join("exec-sess3");
    fs::create_dir_all(&sdir).unwrap();
    e.bundle = sdir.clone();
    a.extend([
        "-b".into(),
        sdir.to_string_lossy().into_owned(),
        "--full-attach".into(),
        "--exec-attach".into(),
        "-l".into(),
        "none".into(),
    ]);
    let o = e.launch(&a);
    assert!(o.success(), "{}", o.describe());
    let ready = recv_msg(e.attach_pipe.as_ref().unwrap(), T).expect("attach pipe message");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&ready).unwrap()["data"], 0);
    let c = connect_seqpacket(&sdir.join("attach"));
    // Only now may the process run: nothing it writes can be missed.
    use std::io::Write;
    (&e.start.as_ref().unwrap().try_clone().unwrap()).write_all(b"0").unwrap();
    let pid = e.sync_msg(T);
    assert!(pid["data"].as_i64().unwrap() > 0, "{pid}");
    assert!(attach_read_until(&c, 2, "early", T).contains("early"));
    assert!(attach_read_until(&c, 3, "late", T).contains("late"));
    assert_eq!(e.sync_msg(T)["data"].as_i64(), Some(0));
    assert!(e.wait_exit(T));
    let _ = fs::remove_dir_all(&sdir);
    drop(m);
}
