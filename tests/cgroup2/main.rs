//! Tests that need a pure cgroup v2 host: they run inside the VM test bed (tests/vm) and skip elsewhere.
//!
//! Run them all in one guest with `tests/vm/suite` (extra arguments go to the test harness).
//! Each test creates its own uniquely named child cgroups through `Cgroup`, whose drop kills
//! what is left in them and removes them, also when an assertion fails.
//!
//! Processes that must live inside a cgroup are either host binaries (`sh`, `sleep`) or this
//! test executable re-executed as a helper (`helper_child_process`, selected by
//! `BERTH_CG2_HELPER`), placed in the cgroup between fork and exec.

// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_tests::cgroup2::{fs_magic, Cgroup, CGROUP2_SUPER_MAGIC, CONTROLLERS, ROOT};
use berth_tests::require_pure_cgroup2;

mod apparmor;
mod checkpoint;
mod cri;
mod cri_checkpoint;
mod devices;
mod limits;
mod monitor;
mod runtime;
mod systemd;

const HELPER_ENV: &str = "BERTH_CG2_HELPER";

/// This test executable, re-run so that it executes only `helper_child_process` in `mode`.
fn helper(mode: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("current_exe"));
    c.args(["--exact", "helper_child_process", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(HELPER_ENV, mode)
        .stdin(Stdio::null());
    c
}

/// Not a test of its own: the body of the helper processes the tests below start inside a
/// cgroup. Without `BERTH_CG2_HELPER` it returns at once (and it is ignored by default).
#[test]
#[ignore = "helper process for the cgroup2 tests; runs only when BERTH_CG2_HELPER is set"]
fn helper_child_process() {
    let Ok(mode) = std::env::var(HELPER_ENV) else { return };
    match mode.as_str() {
        // Allocate 64 MiB and touch every page.
        "hog" => {
            let mut v = vec![0u8; 64 << 20];
            for i in (0..v.len()).step_by(4096) {
                v[i] = 1;
            }
            std::hint::black_box(&v);
            println!("HELPER survived");
        }
        // Burn CPU until killed.
        "spin" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        // Fork children (which only pause) until fork fails; report errno and pids.current.
        "forkloop" => {
            let mut forked = 0u32;
            let errno = loop {
                if forked >= 64 {
                    break 0;
                }
                // SAFETY: the child only closes fds and pauses (async-signal-safe), so forking this multi-
                // threaded test process is sound.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: close and pause are async-signal-safe; the child never returns.
                    unsafe {
                        // Let the parent's stdout pipe reach EOF when the parent exits.
                        libc::close(1);
                        libc::close(2);
                        loop {
                            libc::pause();
                        }
                    }
                }
                if pid < 0 {
                    break std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
                }
                forked += 1;
            };
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
            let rel = own.trim().strip_prefix("0::").expect("cgroup v2 membership line");
            let current = std::fs::read_to_string(format!("{ROOT}{rel}/pids.current")).unwrap();
            println!("HELPER forked={forked} errno={errno} pids_current={}", current.trim());
        }
        other => panic!("unknown helper mode {other}"),
    }
}

/// `key=value` field of the helper's `HELPER ...` line.
fn helper_field(stdout: &str, key: &str) -> String {
    let line = stdout.lines().find(|l| l.starts_with("HELPER ")).unwrap_or_else(|| panic!("no HELPER line in:\n{stdout}"));
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .to_string()
}

#[test]
fn cgroup2_is_the_only_cgroup_mount() {
    require_pure_cgroup2!(cgroup2_is_the_only_cgroup_mount);
    assert_eq!(fs_magic(ROOT.as_ref()).unwrap(), CGROUP2_SUPER_MAGIC);

    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let cgroup_mounts: Vec<(String, String)> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mount_point = pre.split_whitespace().nth(4)?;
            let fstype = post.split_whitespace().next()?;
            fstype.starts_with("cgroup").then(|| (mount_point.to_string(), fstype.to_string()))
        })
        .collect();
    assert_eq!(
        cgroup_mounts,
        vec![(ROOT.to_string(), "cgroup2".to_string())],
        "expected cgroup2 at {ROOT} as the only cgroup mount; mountinfo:\n{mountinfo}"
    );

    // Unified membership only: a single "0::<path>" line, no v1 hierarchies.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let lines: Vec<&str> = own.lines().collect();
    assert!(lines.len() == 1 && lines[0].starts_with("0::"), "/proc/self/cgroup:\n{own}");
}

#[test]
fn all_eight_controllers_available_and_enableable() {
    require_pure_cgroup2!(all_eight_controllers_available_and_enableable);
    let words = |s: String| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let root_ctrls = words(std::fs::read_to_string(format!("{ROOT}/cgroup.controllers")).unwrap());
    let root_enabled = words(std::fs::read_to_string(format!("{ROOT}/cgroup.subtree_control")).unwrap());
    for c in CONTROLLERS {
        assert!(root_ctrls.iter().any(|x| x == c), "{c} missing from root cgroup.controllers {root_ctrls:?}");
        assert!(root_enabled.iter().any(|x| x == c), "{c} not enabled in root cgroup.subtree_control {root_enabled:?}");
    }

    // Enable each controller, one by one, for a child's subtree; a grandchild then gets all
    // eight and their interface files.
    let parent = Cgroup::new("ctrl");
    assert_eq!(words(parent.read("cgroup.controllers")), CONTROLLERS, "controllers offered to a child");
    for c in CONTROLLERS {
        parent.write("cgroup.subtree_control", &format!("+{c}"));
    }
    assert_eq!(words(parent.read("cgroup.subtree_control")), CONTROLLERS);
    let leaf = parent.child("leaf");
    assert_eq!(words(leaf.read("cgroup.controllers")), CONTROLLERS);
    for f in [
        "cpuset.cpus",
        "cpu.max",
        "cpu.weight",
        "io.max",
        "memory.max",
        "memory.swap.max",
        "hugetlb.2MB.max",
        "pids.max",
        "rdma.max",
        "misc.max",
    ] {
        assert!(leaf.path().join(f).exists(), "{f} missing in a leaf with all controllers");
    }
    // Disabling works too (the leaf has no children of its own).
    parent.write("cgroup.subtree_control", "-rdma");
    assert!(!words(leaf.read("cgroup.controllers")).iter().any(|c| c == "rdma"));
}

#[test]
fn memory_max_oom_kills_the_process() {
    require_pure_cgroup2!(memory_max_oom_kills_the_process);
    let cg = Cgroup::new("oom");
    cg.write("memory.max", "16777216");
    cg.write("memory.swap.max", "0");
    assert_eq!(cg.read("memory.max").trim(), "16777216");

    let out = cg.spawn(helper("hog").stdout(Stdio::piped()).stderr(Stdio::piped())).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "allocating 64 MiB under memory.max=16 MiB must be OOM-killed; got {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("HELPER survived"), "{stdout}");
    let events = cg.read("memory.events");
    assert_eq!(cg.stat("memory.events", "oom_kill"), 1, "memory.events:\n{events}");
    assert!(cg.stat("memory.events", "max") >= 1, "memory.events:\n{events}");
    let peak: u64 = cg.read("memory.peak").trim().parse().unwrap();
    assert!(peak <= 16 << 20, "memory.peak {peak} above memory.max");
}

#[test]
fn pids_max_stops_a_fork_loop() {
    require_pure_cgroup2!(pids_max_stops_a_fork_loop);
    let cg = Cgroup::new("pids");
    cg.write("pids.max", "8");
    let out = cg.spawn(helper("forkloop").stdout(Stdio::piped()).stderr(Stdio::piped())).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "helper failed: {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let forked: u32 = helper_field(&stdout, "forked").parse().unwrap();
    let errno: i32 = helper_field(&stdout, "errno").parse().unwrap();
    let current: u32 = helper_field(&stdout, "pids_current").parse().unwrap();
    assert_eq!(errno, libc::EAGAIN, "fork must fail with EAGAIN at pids.max; {stdout}");
    assert_eq!(current, 8, "pids.current at the limit; {stdout}");
    assert!((1..8).contains(&forked), "forked {forked} children under pids.max=8");
    assert!(cg.stat("pids.events", "max") >= 1, "pids.events:\n{}", cg.read("pids.events"));
}

#[test]
fn cgroup_freeze_stops_and_thaw_resumes_a_busy_loop() {
    require_pure_cgroup2!(cgroup_freeze_stops_and_thaw_resumes_a_busy_loop);
    let cg = Cgroup::new("freeze");
    let mut child = cg.spawn(helper("spin").stdout(Stdio::null()).stderr(Stdio::null()));
    let usage = || cg.stat("cpu.stat", "usage_usec");
    let grow_over = |d: Duration| {
        let a = usage();
        std::thread::sleep(d);
        usage() - a
    };
    let second = Duration::from_secs(1);

    let running = grow_over(second);
    assert!(running >= 100_000, "busy loop used only {running} us of CPU in 1 s");

    cg.write("cgroup.freeze", "1");
    assert!(
        Cgroup::wait_for(Duration::from_secs(10), || cg.read("cgroup.events").contains("frozen 1")),
        "cgroup.events never showed frozen 1:\n{}",
        cg.read("cgroup.events")
    );
    let frozen = grow_over(second);
    assert!(frozen < 5_000, "frozen cgroup still used {frozen} us of CPU in 1 s");

    cg.write("cgroup.freeze", "0");
    assert!(
        Cgroup::wait_for(Duration::from_secs(10), || cg.read("cgroup.events").contains("frozen 0")),
        "cgroup.events never showed frozen 0:\n{}",
        cg.read("cgroup.events")
    );
    let thawed = grow_over(second);
    assert!(thawed >= 100_000, "thawed busy loop used only {thawed} us of CPU in 1 s");

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cgroup_kill_ends_every_process() {
    require_pure_cgroup2!(cgroup_kill_ends_every_process);
    let cg = Cgroup::new("kill");
    let mut child = cg.spawn(Command::new("/bin/sh").args(["-c", "sleep 1000 & sleep 1000 & sleep 1000 & wait"]));
    assert!(
        Cgroup::wait_for(Duration::from_secs(10), || cg.procs().len() == 4),
        "expected sh and 3 sleeps in the cgroup, got {:?}",
        cg.procs()
    );
    assert!(cg.read("cgroup.events").contains("populated 1"));

    cg.write("cgroup.kill", "1");
    let status = Cgroup::wait_child(&mut child, Duration::from_secs(10)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("sh still running 10 s after cgroup.kill")
    });
    assert_eq!(status.signal(), Some(libc::SIGKILL), "sh: {status:?}");
    assert!(
        Cgroup::wait_for(Duration::from_secs(10), || cg.read("cgroup.events").contains("populated 0")),
        "cgroup still populated after cgroup.kill: procs {:?}",
        cg.procs()
    );
    assert!(cg.procs().is_empty());
}
