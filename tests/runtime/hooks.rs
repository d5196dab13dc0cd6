//! OCI hooks: all six kinds, state on stdin, args/env, timeout, failures.

use crate::*;
use std::fs;
use std::time::Instant;

fn lines(p: &std::path::Path) -> Vec<String> {
    read(p).lines().map(|s| s.to_string()).collect()
}

fn pos(v: &[String], s: &str) -> usize {
    v.iter().position(|l| l == s).unwrap_or_else(|| panic!("hook {s} did not run: {v:?}"))
}

#[test]
fn all_hooks_run_in_order_with_state() {
    let (mut b, rt, id) = setup!("hooks_all");
    let host = b.bind_dir("hooks", "/hooks");
    let log = host.join("log");
    let l = log.display().to_string();
    let h = host.display().to_string();
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        b.sh_hook(kind, &format!("echo {kind} >> {l}; cat > {h}/state-{kind}.json"));
    }
    // createContainer runs in the container's namespaces before pivot_root: host paths resolve.
    b.sh_hook("createContainer", &format!("echo createContainer >> {l}; cat > {h}/state-createContainer.json"));
    // startContainer runs in the container after pivot_root: container paths.
    b.sh_hook("startContainer", "echo startContainer >> /hooks/log; cat > /hooks/state-startContainer.json");
    b.sh("echo user-process >> /hooks/log");
    rt.create(&id, &b).ok();
    let pid = rt.pid(&id).unwrap();
    let after_create = lines(&log);
    for k in ["prestart", "createRuntime", "createContainer"] {
        pos(&after_create, k);
    }
    assert!(
        !after_create.iter().any(|l| l == "startContainer" || l == "user-process"),
        "only create-time hooks ran before start: {after_create:?}"
    );
    if after_create.iter().any(|l| l == "poststart") {
        // runc 1.1 runs poststart hooks at the end of `create` (a known runc deviation).
        assert!(rt.is_runc(), "poststart must run after start, not on create: {after_create:?}");
        eprintln!("all_hooks_run_in_order_with_state: runc ran poststart during create (known runc 1.1 deviation, tolerated for runc)");
    }
    assert!(pos(&after_create, "prestart") < pos(&after_create, "createContainer"));
    assert!(pos(&after_create, "createRuntime") < pos(&after_create, "createContainer"));
    rt.start(&id).ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lines(&log).iter().any(|l| l == "poststart") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after_start = lines(&log);
    let (cc, sc, ps, up) = (
        pos(&after_start, "createContainer"),
        pos(&after_start, "startContainer"),
        pos(&after_start, "poststart"),
        pos(&after_start, "user-process"),
    );
    assert!(cc < sc && cc < ps && sc < up, "createContainer < startContainer < user process, poststart after create: {after_start:?}");
    assert!(!after_start.iter().any(|l| l == "poststop"));
    rt.delete(&id).ok();
    let all = lines(&log);
    assert_eq!(all.last().map(|s| s.as_str()), Some("poststop"), "poststop runs last, on delete: {all:?}");
    for kind in ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] {
        let s = read(host.join(format!("state-{kind}.json")));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{kind} got state JSON on stdin ({e}): {s:?}"));
        assert_eq!(v["id"], id.as_str(), "{kind} state id: {v}");
        if kind == "startContainer" || kind == "createContainer" {
            // Run inside the container's pid namespace: runc reports the pid as seen there (1).
            assert!(matches!(v["pid"].as_i64(), Some(p) if p == pid as i64 || p == 1), "{kind} state pid: {v}");
        } else if kind != "poststop" {
            assert_eq!(v["pid"].as_i64(), Some(pid as i64), "{kind} state pid: {v}");
        }
        assert!(
            v["bundle"].as_str().is_some_and(|p| p.contains(&b.dir_str()) || fs::canonicalize(p).ok() == fs::canonicalize(b.dir()).ok()),
            "{kind} state bundle: {v}"
        );
    }
}

#[test]
fn hook_args_and_env_honoured() {
    let (mut b, rt, id) = setup!("hooks_args");
    let out = b.dir().join("hook.out");
    b.add_hook(
        "createRuntime",
        json!({
            "path": "/bin/busybox",
            "args": ["sh", "-c", format!("echo \"$0|$1|$FOO|$PATH\" > {}", out.display()), "arg0x", "arg1x"],
            "env": ["FOO=foo-value", "PATH=/hookpath"]
        }),
    );
    b.args(&["true"]);
    rt.run(&id, &b).ok();
    assert_eq!(read(&out).trim(), "arg0x|arg1x|foo-value|/hookpath", "hook args/env");
}

#[test]
fn hook_timeout_kills_and_fails_create() {
    let (mut b, rt, id) = setup!("hooks_timeout");
    // `exec sleep`: one process, so the kill of the hook cannot leave a grandchild holding
    // the hook's output pipe (runc then waits for that pipe).
    let pidfile = b.dir().join("hook.pid");
    b.add_hook(
        "createRuntime",
        json!({"path": "/bin/busybox", "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 20", pidfile.display())], "timeout": 1}),
    );
    b.args(&["true"]);
    let t = Instant::now();
    let o = rt.create(&id, &b);
    let took = t.elapsed();
    o.fails();
    assert!(took < Duration::from_secs(10), "create gave up after the 1s hook timeout, took {took:?}");
    rt.assert_nothing_left(&id, &b);
    std::thread::sleep(Duration::from_millis(200));
    let hp = read(&pidfile).trim().to_string();
    assert!(!hp.is_empty(), "the hook ran");
    let st = read(format!("/proc/{hp}/stat"));
    assert!(st.is_empty() || st.contains(") Z "), "the hook process {hp} was killed: {st}");
}

#[test]
fn failing_create_runtime_hook_fails_create_cleanly() {
    let (mut b, rt, id) = setup!("hooks_fail");
    b.sh_hook("createRuntime", "echo hook-error >&2; exit 7");
    b.args(&["sleep", "60"]);
    let o = rt.create(&id, &b);
    o.fails();
    rt.assert_nothing_left(&id, &b);
    assert!(rt.state(&id).is_none());
}

#[test]
fn failing_prestart_hook_fails_create_cleanly() {
    let (mut b, rt, id) = setup!("hooks_prestart_fail");
    b.sh_hook("prestart", "exit 1");
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).fails();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn failing_poststop_hook_does_not_fail_delete() {
    let (mut b, rt, id) = setup!("hooks_poststop");
    let marker = b.dir().join("poststop-ran");
    b.sh_hook("poststop", &format!("touch {}; exit 1", marker.display()));
    b.args(&["true"]);
    rt.run_to_stop(&id, &b);
    rt.delete(&id).ok();
    assert!(marker.exists(), "poststop ran");
    rt.assert_nothing_left(&id, &b);
}
