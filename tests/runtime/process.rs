//! The container process: rlimits, oom_score_adj, capabilities, no_new_privs, user, umask,
//! cwd, env, args.

use crate::*;

/// Lines of /proc/self/status read by the shell itself (builtin `read`), so no exec changes
/// what is shown.
const STATUS_OF_SHELL: &str = "while IFS= read -r l; do echo \"$l\"; done < /proc/self/status";

fn status_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{key} in status: {out}"))
}

#[test]
fn rlimit_nofile_lowered() {
    let out = sh_output(
        "rlimit",
        |b| {
            b.set(
                "/process/rlimits",
                json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}, {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600}]),
            );
        },
        "grep -E 'Max (open files|processes)' /proc/self/limits",
    );
    let nofile: Vec<&str> = out.lines().find(|l| l.starts_with("Max open files")).unwrap().split_whitespace().collect();
    assert_eq!(&nofile[3..5], ["100", "200"], "RLIMIT_NOFILE soft/hard: {out}");
    let nproc: Vec<&str> = out.lines().find(|l| l.starts_with("Max processes")).unwrap().split_whitespace().collect();
    assert_eq!(&nproc[2..4], ["500", "600"], "RLIMIT_NPROC soft/hard: {out}");
}

#[test]
fn rlimit_raise_hard_fails() {
    // SAFETY: rlimit is two integers: all-zero is a valid value.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes one rlimit to the live struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    assert!(r.rlim_max != libc::RLIM_INFINITY);
    let above = (r.rlim_max * 2).min(1 << 20).max(r.rlim_max + 1);
    let o = sh_run(
        "rlimit_raise",
        |b| {
            b.set("/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "soft": above, "hard": above}]));
        },
        "echo started",
    );
    o.fails_mentioning(&["rlimit", "limit", "operation not permitted", "permission"]);
    assert!(!o.stdout.contains("started"), "the container process must not run");
}

#[test]
fn oom_score_adj_raised() {
    let cur: i32 = read("/proc/self/oom_score_adj").trim().parse().unwrap();
    let want = (cur + 100).min(1000);
    let out = sh_output(
        "oom_raise",
        |b| {
            b.set("/process/oomScoreAdj", json!(want));
        },
        "cat /proc/self/oom_score_adj",
    );
    assert_eq!(out.trim(), want.to_string());
}

#[test]
fn oom_score_adj_lowered_fails() {
    let cur: i32 = read("/proc/self/oom_score_adj").trim().parse().unwrap();
    if cur <= -1000 {
        eprintln!("oom_score_adj_lowered_fails: SKIPPED: oom_score_adj is already -1000");
        return;
    }
    let o = sh_run(
        "oom_lower",
        |b| {
            b.set("/process/oomScoreAdj", json!(cur - 1));
        },
        "echo started",
    );
    o.fails_mentioning(&["oom"]);
    assert!(!o.stdout.contains("started"), "the container process must not run");
}

fn caps_mask(names: &[u32]) -> String {
    format!("{:016x}", names.iter().fold(0u64, |m, b| m | (1 << b)))
}

#[test]
fn capabilities_all_sets_root() {
    // CAP_CHOWN=0 CAP_KILL=5 CAP_NET_BIND_SERVICE=10
    let out = sh_output(
        "caps_root",
        |b| {
            b.caps(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        },
        STATUS_OF_SHELL,
    );
    let m = caps_mask(&[0, 5, 10]);
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&out, k), m, "{k}");
    }
}

#[test]
fn capabilities_distinct_sets_non_root() {
    // For a non-root user (no file caps on busybox) execve makes permitted = effective =
    // ambient, keeps inheritable and bounding: so each set is visible on its own.
    let out = sh_output(
        "caps_user",
        |b| {
            b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
            b.set(
                "/process/capabilities",
                json!({
                    "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
                    "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                    "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                    "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                    "ambient": ["CAP_KILL"]
                }),
            );
        },
        STATUS_OF_SHELL,
    );
    assert_eq!(status_field(&out, "CapBnd"), caps_mask(&[0, 5, 7, 10]), "CapBnd");
    assert_eq!(status_field(&out, "CapInh"), caps_mask(&[5, 10]), "CapInh");
    assert_eq!(status_field(&out, "CapAmb"), caps_mask(&[5]), "CapAmb");
    assert_eq!(status_field(&out, "CapPrm"), caps_mask(&[5]), "CapPrm (= ambient after execve)");
    assert_eq!(status_field(&out, "CapEff"), caps_mask(&[5]), "CapEff (= ambient after execve)");
}

#[test]
fn capabilities_missing_means_none() {
    let out = sh_output(
        "caps_none",
        |b| {
            b.set("/process/capabilities", json!({}));
            b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
        },
        STATUS_OF_SHELL,
    );
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&out, k), "0000000000000000", "{k}");
    }
}

#[test]
fn unknown_capability_fails() {
    if Runtime::new("caps_bad").skip_runc(
        "unknown_capability_fails",
        "runc 1.1 only warns \"ignoring unknown or unavailable capabilities\" and runs the container",
    ) {
        return;
    }
    sh_run(
        "caps_bad",
        |b| {
            b.caps(&["CAP_NOT_A_CAP"]);
        },
        "true",
    )
    .fails_mentioning(&["CAP_NOT_A_CAP", "capabilit"]);
}

#[test]
fn no_new_privileges() {
    let on = sh_output(
        "nnp_on",
        |b| {
            b.set("/process/noNewPrivileges", json!(true));
        },
        STATUS_OF_SHELL,
    );
    assert_eq!(status_field(&on, "NoNewPrivs"), "1");
    let off = sh_output(
        "nnp_off",
        |b| {
            b.set("/process/noNewPrivileges", json!(false));
        },
        STATUS_OF_SHELL,
    );
    assert_eq!(status_field(&off, "NoNewPrivs"), "0");
}

#[test]
fn user_uid_gid_additional_gids() {
    let out = sh_output(
        "user",
        |b| {
            b.set("/process/user", json!({"uid": 1000, "gid": 1000, "additionalGids": [100, 65534]}));
        },
        "echo u=$(id -u) g=$(id -g); echo groups=$(id -G)",
    );
    assert!(out.contains("u=1000 g=1000"), "{out}");
    let groups: Vec<&str> = field(&out, "groups").unwrap().split_whitespace().collect();
    for g in ["100", "65534"] {
        assert!(groups.contains(&g), "additional gid {g} in {groups:?}");
    }
    assert!(!groups.contains(&"0"), "root group dropped: {groups:?}");
}

#[test]
fn umask() {
    let out = sh_output(
        "umask",
        |b| {
            b.set("/process/user/umask", json!(0o027));
        },
        "umask; touch /tmp/f; stat -c %a /tmp/f",
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l, ["0027", "640"], "{out}");
}

#[test]
fn cwd_env_and_path_lookup() {
    let (mut b, rt, id) = setup!("cwd_env");
    b.set("/process/cwd", json!("/tmp"));
    b.env("FOO=bar baz");
    b.args(&["sh", "-c", "pwd; echo foo=$FOO; echo path=$PATH"]);
    let o = rt.run(&id, &b);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines, ["/tmp", "foo=bar baz", "path=/bin"], "{}", o.stdout);
}

#[test]
fn args_resolved_on_container_path() {
    // "echo" resolved on the container's PATH (/bin/echo → busybox), not the host's.
    let (mut b, rt, id) = setup!("args_path");
    b.args(&["echo", "hi", "there"]);
    let o = rt.run(&id, &b);
    o.ok();
    assert_eq!(o.stdout, "hi there\n");
    // A PATH without the binary → failure.
    let id2 = rt.id("nopath");
    b.set("/process/env", json!(["PATH=/nonexistent"]));
    let o = rt.run(&id2, &b);
    assert_ne!(o.code, Some(0), "echo is not on PATH=/nonexistent: {}", o.describe());
}

#[test]
fn missing_executable_fails_create_or_run() {
    let (mut b, rt, id) = setup!("no_exe");
    b.args(&["/bin/does-not-exist"]);
    let o = rt.run(&id, &b);
    assert_ne!(o.code, Some(0), "{}", o.describe());
    assert!(
        o.stderr.to_lowercase().contains("does-not-exist") || o.stderr.contains("no such file"),
        "error names the binary: {}",
        o.describe()
    );
}
