//! `exec`: a new process in a running container — its namespaces, cgroup, identity,
//! environment, terminal, exit code, refusals — and the two classic escapes through
//! exec (CVE-2019-5736: a handle on the host's runtime binary; CVE-2024-21626: a host fd
//! or cwd), with the container trying all the while.

use crate::*;
use berth_tests::console::ConsoleSocket;
use berth_tests::runtime::{dev_ino, runtime_path};
use std::path::Path;

/// A started container whose init sleeps (optionally after `prep`), plus its bundle.
fn running(name: &str, f: impl FnOnce(&mut Bundle)) -> (Bundle, Runtime, String) {
    let (mut b, rt, id) = setup!(name);
    b.sh("sleep 1000");
    f(&mut b);
    rt.create(&id, &b).ok();
    rt.start(&id).ok();
    assert!(rt.wait_status(&id, "running", Duration::from_secs(10)), "{id} is running");
    (b, rt, id)
}

fn exec(rt: &Runtime, id: &str, args: &[&str]) -> Out {
    let mut v = vec!["exec"];
    v.extend(args.iter().take_while(|a| **a != "--"));
    v.push(id);
    if let Some(i) = args.iter().position(|a| *a == "--") {
        v.extend(&args[i + 1..]);
    }
    rt.exec(&v)
}

#[test]
fn exec_env_cwd_user_groups() {
    let (_b, rt, id) = running("exec_identity", |_| {});
    let o = exec(
        &rt,
        &id,
        &[
            "-e",
            "FOO=bar",
            "-e",
            "PATH=/bin:/sbin",
            "--cwd",
            "/tmp",
            "-u",
            "1000:1001",
            "-g",
            "5",
            "-g",
            "6",
            "--",
            "sh",
            "-c",
            "echo foo=$FOO; echo path=$PATH; echo cwd=$(pwd); echo uid=$(id -u) gid=$(id -g); echo groups=$(id -G)",
        ],
    );
    o.ok();
    assert_eq!(field(&o.stdout, "foo"), Some("bar"), "{}", o.stdout);
    assert_eq!(field(&o.stdout, "path"), Some("/bin:/sbin"), "--env replaces the container's PATH: {}", o.stdout);
    assert_eq!(field(&o.stdout, "cwd"), Some("/tmp"));
    assert_eq!(field(&o.stdout, "uid"), Some("1000 gid=1001"));
    let groups: Vec<&str> = field(&o.stdout, "groups").unwrap().split_whitespace().collect();
    assert!(groups.contains(&"5") && groups.contains(&"6"), "additional gids: {groups:?}");
}

#[test]
fn exec_exit_code_propagates() {
    let (_b, rt, id) = running("exec_code", |_| {});
    assert_eq!(exec(&rt, &id, &["--", "sh", "-c", "exit 7"]).code, Some(7));
    assert_eq!(exec(&rt, &id, &["--", "true"]).code, Some(0));
    let killed = exec(&rt, &id, &["--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(killed.code, Some(137), "a process killed by SIGKILL exits 128+9: {}", killed.describe());
}

#[test]
fn exec_joins_namespaces_and_cgroup() {
    let (b, rt, id) = running("exec_ns", |_| {});
    let init = rt.pid(&id).unwrap().to_string();
    let pidfile = b.dir().join("exec.pid");
    exec(&rt, &id, &["-d", "--pid-file", pidfile.to_str().unwrap(), "--", "sleep", "100"]).ok();
    let pid = read(&pidfile).trim().to_string();
    assert!(pid.parse::<i32>().is_ok(), "pid file holds a pid: {pid:?}");
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "user"] {
        assert_eq!(ns_link(&pid, ns), ns_link(&init, ns), "{ns} namespace of the exec process");
    }
    assert_eq!(read(format!("/proc/{pid}/cgroup")), read(format!("/proc/{init}/cgroup")), "cgroup of the exec process");
    assert_eq!(dev_ino(format!("/proc/{pid}/root")), dev_ino(format!("/proc/{init}/root")), "root of the exec process");
    // Inside its pid namespace the process is not pid 1 (the init is).
    let o = exec(&rt, &id, &["--", "sh", "-c", "echo self=$$; echo host=$(cat /etc/hostname 2>/dev/null; hostname)"]);
    o.ok();
    let own: i32 = field(&o.stdout, "self").unwrap().parse().unwrap();
    assert!(own > 1, "exec'd shell has a container pid: {own}");
    assert!(o.stdout.contains("berth-test"), "the container's hostname: {}", o.stdout);
}

#[test]
fn exec_caps_and_no_new_privs() {
    let (_b, rt, id) = running("exec_caps", |_| {});
    let script = "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status";
    let o = exec(&rt, &id, &["--", "sh", "-c", script]);
    o.ok();
    // CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE: bits 29, 5, 10.
    assert!(o.stdout.contains("CapBnd:\t0000000020000420"), "container's bounding set: {}", o.stdout);
    let o = exec(&rt, &id, &["--cap", "CAP_NET_RAW", "--", "sh", "-c", script]);
    o.ok();
    // + CAP_NET_RAW (bit 13).
    assert!(o.stdout.contains("CapBnd:\t0000000020002420"), "--cap adds to the bounding set: {}", o.stdout);
    assert!(o.stdout.contains("CapEff:\t0000000020002420"), "--cap adds to the effective set: {}", o.stdout);
    assert!(o.stdout.contains("NoNewPrivs:\t1"), "{}", o.stdout);
}

#[test]
fn exec_process_file() {
    let (b, rt, id) = running("exec_process", |_| {});
    let p = b.dir().join("process.json");
    std::fs::write(
        &p,
        serde_json::to_vec(&json!({
            "terminal": false, "user": {"uid": 2, "gid": 3}, "args": ["sh", "-c", "echo from-file uid=$(id -u) gid=$(id -g) x=$X"],
            "env": ["PATH=/bin", "X=y"], "cwd": "/"
        }))
        .unwrap(),
    )
    .unwrap();
    let o = exec(&rt, &id, &["--process", p.to_str().unwrap()]);
    o.ok();
    assert!(o.stdout.contains("from-file uid=2 gid=3 x=y"), "{}", o.stdout);
    std::fs::write(&p, b"{not json").unwrap();
    exec(&rt, &id, &["--process", p.to_str().unwrap()]).fails();
}

#[test]
fn exec_tty_via_console_socket() {
    let (b, rt, id) = running("exec_tty", |_| {});
    let sock = ConsoleSocket::listen(&rt.scratch().join("exec-console.sock"));
    let pidfile = b.dir().join("tty.pid");
    exec(
        &rt,
        &id,
        &[
            "--tty",
            "--console-socket",
            &sock.path_str(),
            "-d",
            "--pid-file",
            pidfile.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "test -t 0 && echo tty-yes; read x; echo got:$x",
        ],
    )
    .ok();
    let mut m = sock.master(Duration::from_secs(10)).expect("pty master over the console socket");
    let seen = m.read_until("tty-yes", Duration::from_secs(10));
    assert!(seen.contains("tty-yes"), "exec'd process has a terminal: {seen:?}");
    m.write_all(b"hi\n");
    let seen = m.read_until("got:hi", Duration::from_secs(10));
    assert!(seen.contains("got:hi"), "input reaches the process: {seen:?}");
}

#[test]
fn exec_refused_in_stopped_container() {
    let (mut b, rt, id) = setup!("exec_stopped");
    b.args(&["true"]);
    rt.run_to_stop(&id, &b);
    exec(&rt, &id, &["--", "true"]).fails_mentioning(&["stopped"]);
    exec(&rt, "bt-no-such-container", &["--", "true"]).fails_mentioning(&["not exist", "does not exist"]);
}

#[test]
fn exec_refused_in_paused_container_unless_ignore_paused() {
    let (_b, rt, id) = running("exec_paused", |_| {});
    rt.exec(&["pause", &id]).ok();
    assert!(rt.wait_status(&id, "paused", Duration::from_secs(10)));
    exec(&rt, &id, &["--", "true"]).fails_mentioning(&["paused"]);
    if rt.skip_runc(
        "exec_refused_in_paused_container_unless_ignore_paused",
        "runc 1.1's exec --ignore-paused -d waits for the frozen process to exec, so it hangs until resume",
    ) {
        return;
    }
    // With --ignore-paused the process is set up, joins the frozen cgroup, and runs on resume.
    let pidfile = rt.scratch().join("paused.pid");
    let marker = "/tmp/ran-after-resume";
    exec(&rt, &id, &["--ignore-paused", "-d", "--pid-file", pidfile.to_str().unwrap(), "--", "touch", marker]).ok();
    let pid = read(&pidfile).trim().to_string();
    assert!(read(format!("/proc/{pid}/cgroup")).contains(&id), "the process is in the container's cgroup");
    rt.exec(&["resume", &id]).ok();
    assert!(rt.wait_status(&id, "running", Duration::from_secs(10)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !_b.rootfs().join(marker.trim_start_matches('/')).exists() {
        assert!(std::time::Instant::now() < deadline, "the process ran after resume");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exec_bad_input() {
    let (_b, rt, id) = running("exec_bad", |_| {});
    exec(&rt, &id, &[]).fails();
    exec(&rt, &id, &["--", "/no/such/binary"]).fails();
    exec(&rt, &id, &["-u", "nobody-by-name", "--", "true"]).fails();
    if rt.is_berth() {
        // runc 1.1 only warns about an unknown capability; berth refuses it.
        exec(&rt, &id, &["--cap", "CAP_NOT_A_CAP", "--", "true"]).fails_mentioning(&["CAP_NOT_A_CAP"]);
    }
    exec(&rt, &id, &["--cwd", "relative/dir", "--", "true"]).fails();
    // The container is unharmed.
    exec(&rt, &id, &["--", "true"]).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
}

/// CVE-2019-5736: while execs run, a container root keeps opening every /proc/<pid>/exe
/// it can see; none of them may ever be the host's runtime binary.
#[test]
fn exec_never_exposes_the_runtime_binary() {
    let host_bin = dev_ino(runtime_path()).expect("runtime binary");
    let (b, rt, id) = running("exec_cve_5736", |b| {
        b.sh("while :; do for p in /proc/[0-9]*; do \
              if command exec 3<$p/exe; then echo \"$p $(stat -L -c %d:%i /proc/self/fd/3)\" >> /tmp/seen; exec 3<&-; fi; \
              if command exec 4>>$p/exe; then echo \"$p WRITABLE\" >> /tmp/seen; exec 4>&-; fi; \
              done 2>/dev/null; done");
    });
    for _ in 0..40 {
        exec(&rt, &id, &["--", "true"]).ok();
    }
    let seen = read(b.rootfs().join("tmp/seen"));
    assert!(!seen.is_empty(), "the attacker loop ran (it sees at least its own processes)");
    let bad = format!("{}:{}", host_bin.0, host_bin.1);
    for line in seen.lines() {
        assert!(!line.ends_with(&bad), "a container process opened the host's runtime binary: {line}");
        // Every exe it can see is being executed, so even the container's own is busy.
        assert!(!line.contains("WRITABLE"), "a container process got a writable exe: {line}");
    }
    let _ = id;
}

/// CVE-2024-21626: an exec's cwd given as /proc/self/fd/N must never land outside the
/// container, and the process must hold no fd but its stdio; meanwhile the container keeps
/// reading every fd link it can see, and none may name a host path.
#[test]
fn exec_leaks_no_host_fd_or_cwd() {
    let (b, rt, id) = running("exec_cve_21626", |b| {
        b.sh("while :; do for f in /proc/[0-9]*/fd/* /proc/[0-9]*/cwd; do l=$(readlink $f) && echo \"$f $l\" >> /tmp/links; done 2>/dev/null; done");
    });
    for n in 3..12 {
        let cwd = format!("/proc/self/fd/{n}");
        let o = exec(&rt, &id, &["--cwd", &cwd, "--", "sh", "-c", "pwd; ls .. >/dev/null && echo listed"]);
        if o.success() {
            let pwd = o.stdout.lines().next().unwrap_or_default().to_string();
            assert!(pwd.starts_with('/') && !pwd.contains("unreachable"), "cwd {cwd} resolved outside the container: {pwd:?}");
        }
    }
    // The shell's own fds, listed by a child (ls) so that only the shell's are shown.
    let o = exec(&rt, &id, &["--", "sh", "-c", "ls /proc/$$/fd; true"]);
    o.ok();
    let mut fds: Vec<&str> = o.stdout.split_whitespace().collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "the exec'd process holds only its stdio");
    for _ in 0..20 {
        exec(&rt, &id, &["--", "true"]).ok();
    }
    let links = read(b.rootfs().join("tmp/links"));
    assert!(!links.is_empty(), "the attacker loop ran");
    let host_paths = [rt.root_str(), b.dir_str(), "/sys/fs/cgroup".to_string(), runtime_path().to_string_lossy().into_owned()];
    for l in links.lines() {
        let (link, target) = l.split_once(' ').unwrap_or_default();
        // stdio is the caller's to hand over (here: the bundle's output files).
        if ["/fd/0", "/fd/1", "/fd/2"].iter().any(|s| link.ends_with(s)) {
            continue;
        }
        // The shells' saved copies of their stdio (ash keeps one at fd 10).
        if [b.stdout_path(), b.stderr_path()].iter().any(|p| Path::new(target) == p) {
            continue;
        }
        for h in &host_paths {
            assert!(!target.starts_with(h.as_str()), "a container process saw a host path through {l}");
        }
        assert!(!target.contains("unreachable"), "a container process saw a host cwd through {l}");
    }
}

/// Exec'd processes get the container's seccomp profile.
#[test]
fn exec_gets_the_container_seccomp_profile() {
    let (_b, rt, id) = running("exec_seccomp", |b| {
        b.set(
            "/linux/seccomp",
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
            }),
        );
    });
    let o = exec(&rt, &id, &["--", "sh", "-c", "mkdir /tmp/blocked 2>&1; echo rc=$?"]);
    o.ok();
    assert_eq!(field(&o.stdout, "rc"), Some("1"), "mkdir is refused in the exec'd process: {}", o.stdout);
    assert!(o.stdout.to_lowercase().contains("operation not permitted"), "EPERM from the filter: {}", o.stdout);
    let o = exec(&rt, &id, &["--", "sh", "-c", "grep Seccomp: /proc/self/status"]);
    assert!(o.stdout.contains("Seccomp:\t2"), "filter mode: {}", o.stdout);
}
