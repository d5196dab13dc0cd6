//! The runc-compatible CLI: global flags, create/start/run/state/kill/delete/list/spec.

use crate::*;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::time::Instant;

#[test]
fn run_foreground_returns_container_exit_code() {
    let (mut b, rt, id) = setup!("run_exit_code");
    b.sh("echo out-line; echo err-line >&2; exit 3");
    let o = rt.run(&id, &b);
    assert_eq!(o.code, Some(3), "run should return the container's exit code 3: {}", o.describe());
    assert!(o.stdout.contains("out-line"), "container stdout reaches run's stdout: {}", o.describe());
    assert!(o.stderr.contains("err-line"), "container stderr reaches run's stderr: {}", o.describe());
    // A foreground run deletes its container.
    assert!(rt.state(&id).is_none(), "after a foreground run the container is gone");
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn run_foreground_exit_zero() {
    let (mut b, rt, id) = setup!("run_exit_zero");
    b.args(&["true"]);
    rt.run(&id, &b).ok();
}

#[test]
fn run_detach_returns_at_once() {
    let (mut b, rt, id) = setup!("run_detach");
    b.args(&["sleep", "60"]);
    let t = Instant::now();
    rt.run_with(&id, &b, &["--detach"]).ok();
    assert!(t.elapsed() < Duration::from_secs(10), "run --detach took {:?}", t.elapsed());
    assert_eq!(rt.status(&id).as_deref(), Some("running"), "detached container is running");
    rt.kill(&id, "KILL").ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)), "container stops after KILL");
    rt.delete(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn state_through_lifecycle() {
    let (mut b, rt, id) = setup!("state_lifecycle");
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).ok();
    let s = rt.state(&id).expect("state after create");
    assert_eq!(s["status"], "created", "status after create: {s}");
    assert_eq!(s["id"], id.as_str(), "state id: {s}");
    assert!(s["ociVersion"].as_str().is_some_and(|v| v.starts_with("1.")), "ociVersion: {s}");
    let pid = s["pid"].as_i64().expect("pid in state");
    assert!(pid > 1 && std::path::Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} is a live process");
    let bundle = s["bundle"].as_str().expect("bundle in state");
    assert_eq!(fs::canonicalize(bundle).unwrap(), fs::canonicalize(b.dir()).unwrap(), "bundle path: {s}");
    assert!(s["rootfs"].as_str().is_some_and(|r| r.ends_with("rootfs")), "rootfs: {s}");
    let created = s["created"].as_str().expect("created");
    // RFC 3339: 2026-11-23T22:00:00.123456789Z (or an offset).
    let ok = created.len() >= 20
        && created.as_bytes()[4] == b'-'
        && created.as_bytes()[10] == b'T'
        && created.as_bytes()[13] == b':'
        && (created.ends_with('Z') || created[19..].contains('+') || created[19..].contains('-'));
    assert!(ok, "created is RFC 3339: {created}");
    // runc's `state` leaves owner empty (its `list` shows the user name); accept either.
    assert!(s["owner"] == "" || s["owner"] == "root", "owner is \"\" (runc) or the owner's name: {s}");
    if s["owner"] != "" {
        eprintln!("state_through_lifecycle: note: state owner is {} (runc 1.1 prints \"\")", s["owner"]);
    }
    rt.start(&id).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("running"), "status after start");
    assert_eq!(rt.pid(&id), Some(pid as i32), "pid unchanged by start");
    rt.kill(&id, "KILL").ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)), "stopped after KILL: {:?}", rt.state(&id));
    rt.delete(&id).ok();
    rt.state_out(&id).fails();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn root_flag_keeps_state_in_that_directory() {
    let (mut b, rt, id) = setup!("root_flag");
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).ok();
    assert!(rt.state_dir(&id).is_dir(), "state dir {} under --root", rt.state_dir(&id).display());
    // Another root does not see it.
    let other = Runtime::new("root_flag_other");
    let l = other.exec(&["list", "-q"]);
    l.ok();
    assert!(!l.stdout.contains(&id), "a different --root must not list {id}: {}", l.stdout);
    other.state_out(&id).fails();
    rt.delete_force(&id).ok();
    assert!(!rt.state_dir(&id).exists(), "state dir removed by delete");
}

#[test]
fn pid_file_contains_init_pid() {
    let (mut b, rt, id) = setup!("pid_file");
    b.args(&["sleep", "60"]);
    let pf = b.dir().join("init.pid");
    rt.create_with(&id, &b, &["--pid-file", pf.to_str().unwrap()], |_| {}).ok();
    let s = read(&pf);
    let pid: i32 = s.trim().parse().unwrap_or_else(|_| panic!("pid file holds a pid: {s:?}"));
    assert_eq!(Some(pid), rt.pid(&id), "pid file matches state pid");
    rt.delete_force(&id).ok();
}

#[test]
fn log_json_records_error() {
    let (b, rt, _id) = setup!("log_json");
    let log = rt.scratch().join("log.json");
    let o = rt.exec(&["--log", log.to_str().unwrap(), "--log-format", "json", "state", "bt-no-such-container"]);
    assert!(!o.success(), "state of an unknown container fails");
    let text = read(&log);
    let rec = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .unwrap_or_else(|| panic!("no JSON record with \"level\":\"error\" in the log: {text:?}; stderr: {}", o.stderr));
    assert!(rec["msg"].as_str().is_some_and(|m| !m.is_empty()), "error record has a msg: {rec}");
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(serde_json::from_str::<serde_json::Value>(l).is_ok(), "every log line is JSON: {l:?}");
    }
    drop(b);
}

#[test]
fn log_text_and_debug() {
    let (mut b, rt, id) = setup!("log_debug");
    b.args(&["true"]);
    let log = rt.scratch().join("debug.log");
    b.write();
    let o = rt.exec(&["--debug", "--log", log.to_str().unwrap(), "run", "--bundle", &b.dir_str(), &id]);
    o.ok();
    let text = read(&log);
    assert!(!text.trim().is_empty(), "--debug --log writes debug records to the log file");
    assert!(text.to_lowercase().contains("debug"), "debug records are marked as such: {text}");
}

#[test]
fn create_short_bundle_flag_and_cwd_default() {
    let (mut b, rt, id) = setup!("bundle_short");
    b.sh("echo short-b");
    b.write();
    let mut c = rt.command(&["create", "-b", &b.dir_str(), &id]);
    c.current_dir("/");
    let o = berth_tests::runtime::run_to_files(c, &b.stdout_path(), &b.stderr_path(), Duration::from_secs(30));
    o.ok();
    rt.start(&id).ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    assert!(b.stdout().contains("short-b"), "container output: {}", b.stdout());
    rt.delete(&id).ok();
    // Without --bundle the bundle is the current directory.
    let id2 = rt.id("cwd");
    let mut c = rt.command(&["create", &id2]);
    c.current_dir(b.dir());
    berth_tests::runtime::run_to_files(c, &b.stdout_path(), &b.stderr_path(), Duration::from_secs(30)).ok();
    let s = rt.state(&id2).unwrap();
    assert_eq!(fs::canonicalize(s["bundle"].as_str().unwrap()).unwrap(), fs::canonicalize(b.dir()).unwrap());
    rt.delete_force(&id2).ok();
}

#[test]
fn no_pivot_runs_container() {
    let (mut b, rt, id) = setup!("no_pivot");
    b.sh("ls /; echo pid=$$");
    let o = rt.run_with(&id, &b, &["--no-pivot"]);
    o.ok();
    assert!(o.stdout.contains("bin") && !o.stdout.contains("config.json"), "/ is the rootfs: {}", o.stdout);
    assert_eq!(field(&o.stdout, "pid"), Some("1"));
}

#[test]
fn no_new_keyring() {
    // By default the container joins a new session keyring `_ses.<id>` (runc's naming), visible
    // in /proc/keys (unmasked here); with --no-new-keyring it keeps the runtime's.
    let script = "cat /proc/keys 2>&1";
    let (mut b, rt, id) = setup!("keyring");
    b.unset("/linux/maskedPaths");
    b.sh(script);
    let with = rt.run(&id, &b);
    with.ok();
    let id2 = rt.id("nokr");
    let without = rt.run_with(&id2, &b, &["--no-new-keyring"]);
    without.ok();
    assert!(with.stdout.contains(&format!("_ses.{id}:")), "a new session keyring _ses.{id} by default: {}", with.stdout);
    assert!(!without.stdout.contains(&format!("_ses.{id2}:")), "--no-new-keyring must not create _ses.{id2}: {}", without.stdout);
}

/// Put `files[i]` at fd `3 + i` of the runtime (without CLOEXEC), so they are inherited.
fn with_extra_fds(c: &mut std::process::Command, files: &[fs::File]) {
    let fds: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
    // Allocated here: the child of a multi-threaded test process must not allocate.
    let mut tmp: Vec<i32> = Vec::with_capacity(fds.len());
    // SAFETY: the pre_exec closure only calls fcntl, dup2 and close (async-signal-safe) and
    // does not allocate (`tmp` has its capacity before the fork).
    unsafe {
        c.pre_exec(move || {
            // dup above the range first so that dup2 onto 3.. cannot clobber a source.
            tmp.clear();
            tmp.extend(fds.iter().map(|&fd| libc::fcntl(fd, libc::F_DUPFD, 100)));
            for (i, fd) in tmp.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(*fd);
            }
            Ok(())
        });
    }
}

#[test]
fn preserve_fds_passes_only_preserved() {
    let (mut b, rt, id) = setup!("preserve_fds");
    let f3 = b.dir().join("fd3");
    let f4 = b.dir().join("fd4");
    fs::write(&f3, "preserved-data\n").unwrap();
    fs::write(&f4, "not-preserved\n").unwrap();
    b.sh("cat /proc/self/fd/3; test -e /proc/self/fd/4 && echo fd4=yes || echo fd4=no; exec sleep 60");
    let files = [fs::File::open(&f3).unwrap(), fs::File::open(&f4).unwrap()];
    rt.create_with(&id, &b, &["--preserve-fds", "1"], |c| with_extra_fds(c, &files)).ok();
    rt.start(&id).ok();
    let pid = rt.pid(&id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.stdout().contains("fd4=") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = b.stdout();
    assert!(out.contains("preserved-data"), "fd 3 reaches the container: {out}");
    assert_eq!(field(&out, "fd4"), Some("no"), "fd 4 (not preserved) must not reach the container: {out}");
    // From the host: the running process has exactly 0 1 2 3.
    std::thread::sleep(Duration::from_millis(100));
    let mut fds: Vec<i32> =
        fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten().filter_map(|e| e.file_name().to_string_lossy().parse().ok()).collect();
    fds.sort();
    assert_eq!(fds, vec![0, 1, 2, 3], "fds of the container process");
    rt.delete_force(&id).ok();
}

fn running(rt: &Runtime, b: &mut Bundle, id: &str, script: &str) {
    b.sh(script);
    rt.create(id, b).ok();
    rt.start(id).ok();
    assert_eq!(rt.status(id).as_deref(), Some("running"));
}

/// Container init that exits 0 with a message on TERM.
const TRAP_TERM: &str = "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done";

fn wait_output(b: &Bundle, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if b.stdout().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn kill_term_as(name: &str, sig: &str) {
    let (mut b, rt, id) = setup!(name);
    running(&rt, &mut b, &id, TRAP_TERM);
    assert!(wait_output(&b, "ready"), "container ready");
    rt.kill(&id, sig).ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)), "{sig} stops the container");
    assert!(b.stdout().contains("got-term"), "the container saw SIGTERM from `kill {sig}`: {}", b.stdout());
    rt.delete(&id).ok();
}

#[test]
fn kill_by_name_term() {
    kill_term_as("kill_term", "TERM");
}

#[test]
fn kill_by_name_sigterm() {
    kill_term_as("kill_sigterm", "SIGTERM");
}

#[test]
fn kill_by_number_15() {
    kill_term_as("kill_15", "15");
}

#[test]
fn kill_by_number_9() {
    let (mut b, rt, id) = setup!("kill_9");
    running(&rt, &mut b, &id, TRAP_TERM);
    rt.kill(&id, "9").ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)), "9 stops the container");
    assert!(!b.stdout().contains("got-term"));
    rt.delete(&id).ok();
}

#[test]
fn kill_default_signal_is_term() {
    let (mut b, rt, id) = setup!("kill_default");
    running(&rt, &mut b, &id, TRAP_TERM);
    assert!(wait_output(&b, "ready"));
    rt.exec(&["kill", &id]).ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)), "kill without a signal sends TERM");
    assert!(b.stdout().contains("got-term"), "{}", b.stdout());
}

#[test]
fn kill_bad_signal_fails() {
    let (mut b, rt, id) = setup!("kill_bad");
    running(&rt, &mut b, &id, "sleep 60");
    rt.kill(&id, "SIGNOPE").fails();
    rt.kill(&id, "999").fails();
    assert_eq!(rt.status(&id).as_deref(), Some("running"), "a bad signal leaves the container running");
}

#[test]
fn kill_created_container() {
    let (mut b, rt, id) = setup!("kill_created");
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).ok();
    rt.kill(&id, "KILL").ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)), "KILL stops a created container");
    rt.delete(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn delete_stopped_container() {
    let (mut b, rt, id) = setup!("delete_stopped");
    b.args(&["true"]);
    rt.run_to_stop(&id, &b);
    rt.delete(&id).ok();
    rt.state_out(&id).fails();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn delete_running_refused_without_force() {
    let (mut b, rt, id) = setup!("delete_running");
    running(&rt, &mut b, &id, "sleep 60");
    let pid = rt.pid(&id).unwrap();
    rt.delete(&id).fails();
    assert_eq!(rt.status(&id).as_deref(), Some("running"), "refused delete leaves it running");
    rt.delete_force(&id).ok();
    rt.state_out(&id).fails();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || read(format!("/proc/{pid}/stat")).contains(") Z"),
        "init {pid} is gone"
    );
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn delete_created_container_without_force() {
    // runc deletes a created (never started) container without --force, killing its init.
    let (mut b, rt, id) = setup!("delete_created_noforce");
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).ok();
    let pid = rt.pid(&id).unwrap();
    rt.delete(&id).ok();
    rt.state_out(&id).fails();
    let st = read(format!("/proc/{pid}/stat"));
    assert!(st.is_empty() || st.contains(") Z "), "init {pid} killed: {st}");
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn delete_force_created_container() {
    let (mut b, rt, id) = setup!("delete_created");
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).ok();
    rt.delete_force(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn list_formats() {
    let (mut b, rt, id) = setup!("list");
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).ok();
    let t = rt.exec(&["list"]);
    t.ok();
    let header: Vec<&str> = t.stdout.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], "list header: {}", t.stdout);
    let row = t.stdout.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{id} listed: {}", t.stdout));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], rt.pid(&id).unwrap().to_string(), "PID column: {row}");
    assert_eq!(cols[2], "created", "STATUS column: {row}");
    let q = rt.exec(&["list", "-q"]);
    q.ok();
    assert_eq!(q.stdout.trim(), id, "list -q prints only ids");
    let j = rt.exec(&["list", "--format", "json"]);
    j.ok();
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap_or_else(|e| panic!("list --format json: {e}: {}", j.stdout));
    let arr = v.as_array().expect("a JSON array");
    assert_eq!(arr.len(), 1);
    assert_eq!(arr[0]["id"], id.as_str());
    assert_eq!(arr[0]["status"], "created");
    assert!(arr[0]["pid"].as_i64().is_some_and(|p| p > 0));
    rt.delete_force(&id).ok();
    let q = rt.exec(&["list", "-q"]);
    assert_eq!(q.stdout.trim(), "", "empty after delete");
}

#[test]
fn spec_writes_config_and_refuses_overwrite() {
    let rt = Runtime::new("spec");
    let dir = rt.scratch().join("specdir");
    fs::create_dir_all(&dir).unwrap();
    let mut c = rt.command(&["spec"]);
    c.current_dir(&dir);
    rt.exec_cmd(c).ok();
    let text = read(dir.join("config.json"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("spec config.json is JSON: {e}: {text}"));
    assert!(v["ociVersion"].as_str().is_some_and(|s| s.starts_with("1.")), "ociVersion: {v}");
    assert!(v["process"]["args"].is_array(), "process.args");
    assert_eq!(v["root"]["path"], "rootfs");
    assert!(v["mounts"].as_array().is_some_and(|m| m.iter().any(|m| m["destination"] == "/proc")), "mounts has /proc");
    let ns: Vec<&str> = v["linux"]["namespaces"].as_array().unwrap().iter().filter_map(|n| n["type"].as_str()).collect();
    for t in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&t), "spec namespaces include {t}: {ns:?}");
    }
    fs::write(dir.join("config.json"), "keep-me").unwrap();
    let mut c = rt.command(&["spec"]);
    c.current_dir(&dir);
    rt.exec_cmd(c).fails();
    assert_eq!(read(dir.join("config.json")), "keep-me", "spec must not overwrite an existing config.json");
}

#[test]
fn spec_rootless_has_user_namespace() {
    let rt = Runtime::new("spec_rootless");
    let dir = rt.scratch().join("specdir");
    fs::create_dir_all(&dir).unwrap();
    rt.exec(&["spec", "--rootless", "--bundle", dir.to_str().unwrap()]).ok();
    let v: serde_json::Value = serde_json::from_str(&read(dir.join("config.json"))).unwrap();
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n["type"] == "user"), "rootless spec has a user namespace: {ns:?}");
    let m = v["linux"]["uidMappings"].as_array().expect("uidMappings");
    assert!(!m.is_empty() && m[0]["size"].as_u64().is_some(), "uidMappings: {m:?}");
    assert!(v["linux"]["gidMappings"].as_array().is_some_and(|g| !g.is_empty()), "gidMappings");
}

#[test]
fn spec_bundle_flag() {
    let rt = Runtime::new("spec_bundle");
    let dir = rt.scratch().join("b");
    fs::create_dir_all(&dir).unwrap();
    rt.exec(&["spec", "--bundle", dir.to_str().unwrap()]).ok();
    assert!(dir.join("config.json").is_file(), "spec --bundle DIR writes DIR/config.json");
    assert!(!rt.scratch().join("config.json").exists());
}

#[test]
fn start_twice_fails() {
    let (mut b, rt, id) = setup!("start_twice");
    running(&rt, &mut b, &id, "sleep 60");
    rt.start(&id).fails();
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
}
