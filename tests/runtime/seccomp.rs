//! linux.seccomp through the runtime: deny lists, argument conditions, every action, the
//! NOTIFY hand-over to an agent, podman's default profile, placement around no_new_privs.
//!
//! A small static C program (`probe`, compiled with gcc once per test run) makes the
//! syscalls: `probe NR [ARGS]` prints `r=<return> e=<errno>`; `probe -32 NR ...` makes the
//! call through `int $0x80` (the i386 ABI, so the filter's x86 section decides) and
//! `probe -x32 NR ...` sets the x32 bit.

use crate::*;
use serde_json::Value;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const PROBE_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "hello")) { printf("hello from libc\n"); return 0; }
    if (argc > 2 && !strcmp(argv[1], "loop")) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        return 0;
    }
    int i = 1, mode = 0;
    if (i < argc && !strcmp(argv[i], "-32")) { mode = 32; i++; }
    else if (i < argc && !strcmp(argv[i], "-x32")) { mode = 1; i++; }
    if (i >= argc) return 2;
    long nr = strtol(argv[i++], 0, 0);
    unsigned long a[6] = {0};
    for (int j = 0; j < 6 && i < argc; j++, i++) a[j] = strtoull(argv[i], 0, 0);
    long r; int e = 0;
    if (mode == 32) {
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a[0]), "c"(a[1]), "d"(a[2]), "S"(a[3]), "D"(a[4]) : "memory");
        if (r < 0 && r > -4096) { e = -r; r = -1; }
    } else {
        if (mode == 1) nr |= 0x40000000;
        errno = 0;
        r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r == -1) e = errno;
    }
    printf("r=%ld e=%d\n", r, e);
    return 0;
}
"#;

// x86_64 numbers
const GETPPID: u64 = 110;
const PERSONALITY: u64 = 135;
const KEYCTL: u64 = 250;
const BPF: u64 = 321;
const PTRACE: u64 = 101;
const MKDIRAT: u64 = 258;
const SETUID: u64 = 105;
const GETPRIORITY: u64 = 140;
// i386 numbers
const I386_GETPPID: u64 = 64;

/// The probe binary, built once.
fn probe_bin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        // Build output, not a host temp dir: nothing to clean up after the run.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("seccomp-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("probe.c");
        std::fs::write(&src, PROBE_C).unwrap();
        let out = dir.join("probe");
        let o = std::process::Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&out).arg(&src).output().expect("run gcc");
        assert!(o.status.success(), "gcc: {}", String::from_utf8_lossy(&o.stderr));
        out
    })
}

fn with_probe(b: &mut Bundle) {
    std::fs::copy(probe_bin(), b.rootfs().join("bin/probe")).unwrap();
}

fn amd64(seccomp: Value) -> Value {
    let mut s = seccomp;
    s["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    s
}

/// `probe` output lines `r=.. e=..` → errno per line.
fn errnos(out: &str) -> Vec<i32> {
    out.lines().filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("e=")).map(|e| e.parse().unwrap())).collect()
}

/// Runs `script` with the probe and `seccomp` (None: no filter); returns stdout.
fn run_probe(test: &str, seccomp: Option<Value>, f: impl FnOnce(&mut Bundle), script: &str) -> String {
    sh_output(
        test,
        |b| {
            with_probe(b);
            if let Some(s) = seccomp {
                b.set("/linux/seccomp", s);
            }
            f(b);
        },
        script,
    )
}

const DENY: [&str; 14] = [
    "unshare",
    "mount",
    "umount2",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "ptrace",
    "kexec_load",
    "reboot",
    "swapon",
    "swapoff",
    "setns",
    "open_by_handle_at",
];

fn deny_list() -> Value {
    amd64(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": DENY, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
}

#[test]
fn deny_list_blocks_and_programs_still_run() {
    // CAP_SYS_ADMIN, so that without the filter these calls succeed (checked below):
    // the EPERMs come from the filter, not from missing capabilities.
    let caps = |b: &mut Bundle| {
        b.caps(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_KILL"]);
    };
    let script = format!(
        "unshare -m true; echo unshare=$?; mount -t tmpfs none /mnt; echo mount=$?; \
         probe {KEYCTL} 0 0xfffffffd; probe {BPF} 0 0 0; probe {PTRACE} 0; probe hello; ls / >/dev/null && echo ls=ok"
    );
    let open = run_probe("sc_deny_open", None, caps, &script);
    assert!(open.contains("unshare=0") && open.contains("mount=0"), "without the filter these work: {open}");
    let e = errnos(&open);
    assert_eq!(e[0], 0, "keyctl works without the filter: {open}");
    assert_eq!(e[2], 0, "ptrace(TRACEME) works without the filter: {open}");

    let out = run_probe("sc_deny", Some(deny_list()), caps, &script);
    assert!(out.contains("unshare=1") && !out.contains("mount=0"), "unshare and mount are refused: {out}");
    assert_eq!(errnos(&out), vec![1, 1, 1], "keyctl, bpf, ptrace get EPERM: {out}");
    assert!(out.contains("hello from libc") && out.contains("ls=ok"), "libc program and busybox run: {out}");
}

#[test]
fn argument_conditions_on_full_64bit_values() {
    // personality allowed only as the query (0xffffffff); anything else EINVAL.
    let s = amd64(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
         "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_NE"}]}]}));
    let script = format!("probe {PERSONALITY} 0xffffffff; probe {PERSONALITY} 0x8; probe {PERSONALITY} 0x1ffffffff; probe {PERSONALITY} 0");
    let out = run_probe("sc_args", Some(s), |_| {}, &script);
    // 0x1ffffffff differs from the value only in the high half: 64-bit compare refuses it.
    assert_eq!(errnos(&out), vec![0, 22, 22, 22], "{out}");
    let open = run_probe("sc_args_open", None, |_| {}, &script);
    assert_eq!(errnos(&open), vec![0, 0, 0, 0], "without the filter all succeed: {open}");
}

#[test]
fn every_action_behaves_as_named() {
    let rule = |action: &str, extra: Value| {
        // (not getppid: the shell itself calls that)
        let mut r = json!({"names": ["getpriority"], "action": action});
        if let Value::Object(m) = extra {
            r.as_object_mut().unwrap().extend(m);
        }
        amd64(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [r]}))
    };
    let script = format!("probe {GETPRIORITY} 0 0; echo status=$?");
    let cases: [(&str, Value, &str); 9] = [
        ("SCMP_ACT_ERRNO", json!({"errnoRet": 77}), "e=77"),
        ("SCMP_ACT_ERRNO", json!({}), "e=1"),
        ("SCMP_ACT_TRACE", json!({"errnoRet": 5}), "e=38"), // no tracer: ENOSYS
        ("SCMP_ACT_ALLOW", json!({}), " e=0"),              // (r = 20 - nice)
        ("SCMP_ACT_LOG", json!({}), " e=0"),
        ("SCMP_ACT_KILL", json!({}), "status=159"), // 128 + SIGSYS
        ("SCMP_ACT_KILL_THREAD", json!({}), "status=159"),
        ("SCMP_ACT_KILL_PROCESS", json!({}), "status=159"),
        ("SCMP_ACT_TRAP", json!({}), "status=159"),
    ];
    for (action, extra, want) in cases {
        let out = run_probe("sc_action", Some(rule(action, extra.clone())), |_| {}, &script);
        assert!(out.contains(want) && !out.contains("r=-1 e=0"), "{action} {extra}: want {want:?} in {out:?}");
        if want.starts_with("status=") {
            assert!(!out.contains("r="), "{action}: the probe must not get to print: {out}");
        }
    }
}

#[test]
fn multi_arch_filter_covers_i386_and_x32() {
    let s = amd64(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 66}]}));
    let script = format!("probe {GETPPID}; probe -32 {I386_GETPPID}; probe -x32 {GETPPID}");
    let out = run_probe("sc_arch", Some(s), |_| {}, &script);
    assert_eq!(errnos(&out), vec![66, 66, 66], "x86_64, i386 (int 0x80) and x32 getppid: {out}");

    // Only the native ABI: an i386 or x32 syscall kills the process.
    let s = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 66}]});
    let script = format!("probe {GETPPID}; probe -32 {I386_GETPPID}; echo i386=$?; probe -x32 {GETPPID}; echo x32=$?");
    let out = run_probe("sc_arch_native", Some(s), |_| {}, &script);
    assert!(out.contains("e=66") && out.contains("i386=159") && out.contains("x32=159"), "{out}");
}

#[test]
fn profile_blocking_setuid_and_capset_with_no_new_privs() {
    // With no_new_privs the filter goes in after berth changed user and capabilities.
    let s = amd64(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["setuid", "setgid", "setresuid", "setresgid", "setgroups", "capset", "prctl"], "action": "SCMP_ACT_ERRNO"}]}));
    let out = run_probe(
        "sc_nnp",
        Some(s),
        |b| {
            b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
            b.set("/process/noNewPrivileges", json!(true));
        },
        &format!("id -u; probe {SETUID} 0; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"),
    );
    assert!(out.starts_with("1000\n"), "runs as the spec's user: {out}");
    assert_eq!(errnos(&out), vec![1], "{out}");
    assert!(out.contains("Seccomp:\t2") && out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn filter_without_no_new_privs() {
    // Without no_new_privs the filter needs CAP_SYS_ADMIN: installed before the caps drop.
    let s = amd64(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30}]}));
    let out = run_probe(
        "sc_no_nnp",
        Some(s),
        |b| {
            b.set("/process/noNewPrivileges", json!(false));
            b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
        },
        &format!("probe {MKDIRAT} -100 /tmp/x 0755; grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status"),
    );
    assert_eq!(errnos(&out), vec![30], "{out}");
    assert!(out.contains("Seccomp:\t2") && out.contains("NoNewPrivs:\t0"), "{out}");
}

#[test]
fn denied_execve_fails_clearly() {
    // A profile that refuses execve stops the container process; berth says why.
    let mut b = Bundle::new("sc_execve");
    b.set(
        "/linux/seccomp",
        amd64(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["execve", "execveat"], "action": "SCMP_ACT_ERRNO"}]})),
    );
    b.args(&["true"]);
    let rt = Runtime::new("sc_execve");
    let id = rt.id("");
    let o = rt.run(&id, &b);
    assert!(!o.success(), "the process cannot start: {}", o.describe());
    assert!(o.stderr.to_lowercase().contains("operation not permitted") || o.stderr.contains("EPERM"), "{}", o.describe());
}

#[test]
fn bad_profiles_fail_before_anything_is_created() {
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({"defaultAction": "SCMP_ACT_BOGUS"}), &["seccomp", "action", "unknown variant"]),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_WHATEVER"}]}]}),
            &["seccomp", "operator", "unknown variant", "op"],
        ),
    ];
    for (s, words) in cases {
        let mut b = Bundle::new("sc_bad");
        b.set("/linux/seccomp", s);
        b.sh("echo started");
        let rt = Runtime::new("sc_bad");
        let id = rt.id("");
        let o = rt.run(&id, &b);
        o.fails_mentioning(words);
        assert!(!o.stdout.contains("started"));
        rt.assert_nothing_left(&id, &b);
    }
    // errnoRet on an action without errno: the spec says fail (runc 1.1 ignores it).
    let rt = Runtime::new("sc_bad_errno");
    if rt.skip_runc("bad_profiles_fail_before_anything_is_created/errnoRet", "runc 1.1 ignores errnoRet on SCMP_ACT_ALLOW") {
        return;
    }
    let mut b = Bundle::new("sc_bad_errno");
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 3}]}),
    );
    let id = rt.id("");
    rt.run(&id, &b).fails_mentioning(&["errnoret"]);
    rt.assert_nothing_left(&id, &b);
}

/// podman's (containers-common's) default profile, converted as podman converts it for an
/// amd64 host with the given capabilities.
fn podman_default_profile(caps: &[&str]) -> Value {
    let path = "/usr/share/containers/seccomp.json";
    let p: Value = serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e} (install golang-github-containers-common: scripts/deps.sh)")),
    )
    .unwrap();
    let host = "amd64";
    let has = |v: &Value, k: &str| v.get(k).and_then(|x| x.as_array()).filter(|a| !a.is_empty()).cloned();
    let mut syscalls = vec![];
    for s in p["syscalls"].as_array().unwrap() {
        let inc = &s["includes"];
        let exc = &s["excludes"];
        if has(exc, "arches").is_some_and(|a| a.iter().any(|x| x == host)) {
            continue;
        }
        if has(exc, "caps").is_some_and(|a| a.iter().any(|c| caps.contains(&c.as_str().unwrap()))) {
            continue;
        }
        if has(inc, "arches").is_some_and(|a| !a.iter().any(|x| x == host)) {
            continue;
        }
        if has(inc, "caps").is_some_and(|a| !a.iter().all(|c| caps.contains(&c.as_str().unwrap()))) {
            continue;
        }
        let mut r = json!({"names": s["names"], "action": s["action"]});
        if let Some(e) = s.get("errnoRet") {
            r["errnoRet"] = e.clone();
        }
        if let Some(a) = s.get("args").filter(|a| a.as_array().is_some_and(|a| !a.is_empty())) {
            r["args"] = a.clone();
        }
        syscalls.push(r);
    }
    let arches = p["archMap"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["architecture"] == "SCMP_ARCH_X86_64")
        .map(|m| {
            let mut v = vec![m["architecture"].clone()];
            v.extend(m["subArchitectures"].as_array().unwrap().iter().cloned());
            v
        })
        .unwrap();
    json!({"defaultAction": p["defaultAction"], "defaultErrnoRet": p["defaultErrnoRet"], "architectures": arches, "syscalls": syscalls})
}

#[test]
fn podman_default_profile_runs_busybox() {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let s = podman_default_profile(&caps);
    let script = format!(
        "echo hi > /tmp/f && cat /tmp/f && ls / | grep -c . >/dev/null && mkdir /tmp/d && rmdir /tmp/d && \
         ps >/dev/null && wc -l /proc/self/status >/dev/null && sleep 0 && date >/dev/null && \
         grep -E '^Seccomp(_filters)?:' /proc/self/status; probe hello; \
         unshare -n true; echo unshare=$?; probe {KEYCTL} 0 0xfffffffd; probe {BPF} 0 0 0; probe {PERSONALITY} 0xffffffff; \
         probe {PERSONALITY} 0x1; probe 1000"
    );
    let out = run_probe(
        "sc_podman",
        Some(s),
        |b| {
            b.caps(&caps);
        },
        &script,
    );
    assert!(out.starts_with("hi\n") && out.contains("Seccomp:\t2") && out.contains("hello from libc"), "{out}");
    assert!(out.contains("unshare=1"), "unshare refused (no CAP_SYS_ADMIN): {out}");
    // podman's profile allows keyctl; bpf gets EPERM without CAP_SYS_ADMIN; the personality
    // query is allowed, another persona gets the default action (ENOSYS in this profile),
    // and so does a syscall number newer than the profile.
    assert_eq!(errnos(&out), vec![0, 1, 0, 38, 38], "{out}");
}

// SECCOMP_IOCTL_NOTIF_RECV / _SEND: _IOWR('!', 0, struct seccomp_notif (80 bytes)) and
// _IOWR('!', 1, struct seccomp_notif_resp (24 bytes)).
const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;

#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// Receives one connection's container process state and the listener fd (SCM_RIGHTS).
fn accept_listener(sock: &std::os::unix::net::UnixListener) -> (Value, OwnedFd) {
    let (conn, _) = sock.accept().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut cbuf = [0u8; 64];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is integers and pointers: all-zero (null) is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.len();
    // SAFETY: msg points at the live iovec and control buffer of the lengths it states.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n > 0, "recvmsg from the runtime: {}", std::io::Error::last_os_error());
    // SAFETY: msg is the header recvmsg just filled.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    assert!(!cmsg.is_null(), "the fd comes with the state (SCM_RIGHTS)");
    // SAFETY: cmsg is non-null (asserted) and points into the live control buffer.
    let (level, typ) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
    assert_eq!((level, typ), (libc::SOL_SOCKET, libc::SCM_RIGHTS));
    // SAFETY: SCM_RIGHTS data holds at least one int; read unaligned from the live control buffer.
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32) };
    // SAFETY: the kernel installed this fd for us with the message; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The rest of the JSON if the runtime split its sends (it must close then). A complete
    // first part is not waited on: runc 1.1 keeps the connection open until it exits.
    let mut data = buf[..n as usize].to_vec();
    if serde_json::from_slice::<Value>(&data).is_err() {
        use std::io::Read;
        (&conn).read_to_end(&mut data).unwrap();
    }
    (serde_json::from_slice(&data).unwrap_or_else(|e| panic!("state JSON: {e}: {}", String::from_utf8_lossy(&data))), fd)
}

/// Answers `answers.len()` notifications: (errno to fail with, or 0 for success with value 0).
fn answer(fd: &OwnedFd, answers: &[i32]) -> Vec<(i32, u32)> {
    let mut seen = vec![];
    for &e in answers {
        let mut n = Notif::default();
        // SAFETY: NOTIF_RECV writes one seccomp_notif to the live struct.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV, &mut n) };
        assert_eq!(r, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
        seen.push((n.nr, n.pid));
        let resp = NotifResp { id: n.id, val: 0, error: -e, flags: 0 };
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from the live struct.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND, &resp) };
        assert_eq!(r, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    }
    seen
}

#[test]
fn notify_agent_answers_a_syscall() {
    let (mut b, rt, id) = setup!("sc_notify");
    with_probe(&mut b);
    let sock_path = rt.scratch().join("agent.sock");
    let sock = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    b.set(
        "/linux/seccomp",
        amd64(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock_path,
        "listenerMetadata": "test-agent=1",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]})),
    );
    b.sh(&format!("probe {MKDIRAT} -100 /tmp/a 0755; probe {MKDIRAT} -100 /tmp/b 0755; [ -d /tmp/b ] && echo b=exists || echo b=absent"));
    if rt.is_runc() {
        // runc 1.1 does not know SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV.
        b.unset("/linux/seccomp/flags");
    }
    let agent = std::thread::spawn(move || {
        let (state, fd) = accept_listener(&sock);
        // ENOMEDIUM for the first mkdirat, "success" (without making it) for the second.
        let seen = answer(&fd, &[libc::ENOMEDIUM, 0]);
        (state, seen)
    });
    let o = rt.run(&id, &b);
    let (state, seen) = agent.join().expect("agent");
    o.ok();
    assert_eq!(errnos(&o.stdout), vec![libc::ENOMEDIUM, 0], "{}", o.describe());
    assert!(o.stdout.contains("b=absent"), "the agent answered success without making it: {}", o.stdout);
    assert!(seen.iter().all(|(nr, _)| *nr as u64 == MKDIRAT), "{seen:?}");

    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "test-agent=1", "{state}");
    assert!(state["ociVersion"].as_str().is_some_and(|v| v.starts_with('1')), "{state}");
    let pid = state["pid"].as_i64().unwrap();
    assert!(pid > 0 && state["state"]["pid"].as_i64() == Some(pid), "{state}");
    assert_eq!(state["state"]["id"], json!(id), "{state}");
    assert_eq!(state["state"]["status"], "creating", "{state}");
    assert_eq!(state["state"]["bundle"], json!(b.dir_str()), "{state}");
}

#[test]
fn notify_agent_missing_fails_create() {
    let (mut b, rt, id) = setup!("sc_notify_gone");
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": rt.scratch().join("nobody-listens.sock"),
        "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    b.sh("echo started");
    let o = rt.run(&id, &b);
    o.fails_mentioning(&["seccomp", "connect", "no such file"]);
    assert!(!o.stdout.contains("started"));
    rt.assert_nothing_left(&id, &b);
}
