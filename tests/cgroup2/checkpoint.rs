//! Checkpoint and restore with CRIU on the pure cgroup v2 guest (where `criu check` passes:
//! tests/vm/prepare loads the netfilter and sock-diag modules it needs). A busybox shell
//! counts in a variable and prints every value; after `checkpoint` (the container stopped,
//! its processes gone) and `restore` the numbers go on from where they were: the shell's
//! memory came back, not a fresh start at 1. Also with a network namespace joined by path
//! and a bind mount (what a pod's container has), and a paused container stays paused.

use berth_tests::bundle::Bundle;
use berth_tests::runtime::{processes_in, run_to_files, Runtime, TIMEOUT};
use std::path::Path;
use std::time::{Duration, Instant};

const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; usleep 50000; done";

/// True (after saying why) when the test cannot run here; in the guest CRIU must work.
fn skip(test: &str, rt: &Runtime) -> bool {
    if berth_tests::cgroup2::skip(test) {
        return true;
    }
    if rt.skip_unless_berth(test, "berth's checkpoint/restore") {
        return true;
    }
    let out = std::process::Command::new("criu").arg("check").output().expect("run criu check (scripts/deps.sh installs criu)");
    assert!(
        out.status.success(),
        "{test}: criu check fails in the guest: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// The numbers the container printed so far (a torn last line is left out).
fn numbers(p: &Path) -> Vec<u64> {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let complete = &s[..s.rfind('\n').map(|i| i + 1).unwrap_or(0)];
    complete.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Waits until the last number in `p` is at least `n`.
#[track_caller]
fn wait_count(p: &Path, n: u64, what: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = numbers(p).last().copied().unwrap_or(0);
        if last >= n {
            return last;
        }
        assert!(Instant::now() < deadline, "{what}: the counter in {} stayed at {last} (wanted {n})", p.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `p` holds at least `n` numbers; returns them.
#[track_caller]
fn wait_lines(p: &Path, n: usize, what: &str) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = numbers(p);
        if v.len() >= n {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {} holds only {v:?} (wanted {n} numbers)", p.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A started container running [`COUNTER`], or None when the test cannot run here.
fn counting(test: &str, name: &str) -> Option<(Bundle, Runtime, String)> {
    let mut b = Bundle::new(name);
    let rt = Runtime::new(name);
    if skip(test, &rt) {
        return None;
    }
    let id = rt.id("");
    b.sh(COUNTER);
    rt.create(&id, &b).ok();
    rt.start(&id).ok();
    Some((b, rt, id))
}

fn restore(rt: &Runtime, b: &Bundle, id: &str, images: &Path, out: &Path, extra: &[&str]) -> berth_tests::runtime::Out {
    let dir = b.dir_str();
    let img = images.to_string_lossy().into_owned();
    let mut args = vec!["restore", "--detach", "--bundle", &dir, "--image-path", &img];
    args.extend_from_slice(extra);
    args.push(id);
    run_to_files(rt.command(&args), out, &b.stderr_path(), TIMEOUT)
}

#[test]
fn checkpoint_then_restore_continues_the_counter() {
    let test = "checkpoint_then_restore_continues_the_counter";
    let Some((b, rt, id)) = counting(test, "cg2-ckpt") else { return };
    let old_pid = rt.pid(&id).expect("pid");
    let out = b.stdout_path();
    wait_count(&out, 5, "before checkpoint");

    let images = rt.scratch().join("images");
    let pid_file = rt.scratch().join("restored.pid");
    rt.exec(&["checkpoint", "--image-path", images.to_str().unwrap(), &id]).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("stopped"), "checkpoint without --leave-running stops the container");
    assert!(processes_in(&b.rootfs()).is_empty(), "no container process after the checkpoint");
    let before = numbers(&out);
    let last = *before.last().unwrap();
    assert!(images.join("descriptors.json").exists() && images.join("inventory.img").exists(), "CRIU images in {}", images.display());

    // Same id: restore replaces the stopped container's leftovers.
    restore(&rt, &b, &id, &images, &out, &["--pid-file", pid_file.to_str().unwrap()]).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    let pid = rt.pid(&id).expect("restored pid");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap().trim(), pid.to_string(), "--pid-file names the restored init");
    assert_ne!(pid, old_pid, "a new init process (host pid)");
    wait_count(&out, last + 5, "after restore");

    // Every number once, in order, across the restore: the shell's `i` was restored.
    let all = numbers(&out);
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(all, expected, "the counter continues from {last} after restore");
    assert!(all.len() as u64 > last + 1);

    rt.delete_force(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn checkpoint_leave_running_then_restore_after_delete() {
    let test = "checkpoint_leave_running_then_restore_after_delete";
    let Some((b, rt, id)) = counting(test, "cg2-ckpt-lr") else { return };
    let out = b.stdout_path();
    wait_count(&out, 5, "before checkpoint");
    let images = rt.scratch().join("images-lr");
    let work = rt.scratch().join("work-lr");
    rt.exec(&["checkpoint", "--leave-running", "--image-path", images.to_str().unwrap(), "--work-path", work.to_str().unwrap(), &id]).ok();
    assert!(work.join("dump.log").exists(), "criu's log goes to --work-path");
    let at_checkpoint = numbers(&out).last().copied().unwrap();
    assert_eq!(rt.status(&id).as_deref(), Some("running"), "--leave-running");
    let later = wait_count(&out, at_checkpoint + 5, "after a --leave-running checkpoint");
    rt.delete_force(&id).ok();

    let out2 = rt.scratch().join("restored.out");
    restore(&rt, &b, &id, &images, &out2, &["--work-path", work.to_str().unwrap()]).ok();
    assert!(work.join("restore.log").exists());
    let resumed = wait_lines(&out2, 3, "after restore");
    // The restored shell goes on from the value it had when it was dumped (frozen between
    // the last number read before and the first read after the checkpoint returned).
    assert!(
        resumed[0] > 1 && resumed[0] <= later,
        "restored counter starts at {} (dumped near {at_checkpoint}, ran on to {later})",
        resumed[0]
    );
    assert_eq!(resumed[1], resumed[0] + 1);
    rt.delete_force(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn checkpoint_leave_running_keeps_a_paused_container_paused() {
    let test = "checkpoint_leave_running_keeps_a_paused_container_paused";
    let Some((b, rt, id)) = counting(test, "cg2-ckpt-paused") else { return };
    let out = b.stdout_path();
    wait_count(&out, 3, "before pause");
    rt.exec(&["pause", &id]).ok();
    let images = rt.scratch().join("images-paused");
    rt.exec(&["checkpoint", "--leave-running", "--image-path", images.to_str().unwrap(), &id]).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("paused"), "a paused container stays paused after a --leave-running checkpoint");
    rt.exec(&["resume", &id]).ok();
    let last = numbers(&out).last().copied().unwrap();
    wait_count(&out, last + 3, "after resume");
    rt.delete_force(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

/// A named network namespace (`ip netns add`), deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new(name: &str) -> NetNs {
        let st = std::process::Command::new("ip").args(["netns", "add", name]).status().expect("ip netns add");
        assert!(st.success(), "ip netns add {name}");
        NetNs(name.into())
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// What a pod's container has: a network namespace joined by path (external to CRIU: not
/// dumped, joined again) and a bind mount (CRIU binds the bundle's source again), here the
/// directory the counter writes to.
#[test]
fn checkpoint_restore_with_a_joined_netns_and_a_bind_mount() {
    let test = "checkpoint_restore_with_a_joined_netns_and_a_bind_mount";
    let mut b = Bundle::new("cg2-ckpt-ns");
    let rt = Runtime::new("cg2-ckpt-ns");
    if skip(test, &rt) {
        return;
    }
    let id = rt.id("");
    let ns = NetNs::new(&format!("bt-ckpt-{}", std::process::id()));
    b.add_namespace("network", Some(&ns.path()));
    let data = rt.scratch().join("data");
    std::fs::create_dir_all(&data).unwrap();
    b.add_mount(serde_json::json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]}));
    b.sh("i=0; while :; do i=$((i+1)); echo $i >> /data/count; readlink /proc/self/ns/net > /data/netns; usleep 50000; done");
    rt.create(&id, &b).ok();
    rt.start(&id).ok();
    let count = data.join("count");
    wait_count(&count, 5, "before checkpoint");
    // The shell rewrites the file every round (truncate, then write): read until it has a line.
    let netns = |p: &Path| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = std::fs::read_to_string(p.join("netns")).unwrap_or_default();
            if s.ends_with('\n') {
                return s.trim().to_string();
            }
            assert!(Instant::now() < deadline, "the container stopped writing {}", p.join("netns").display());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let joined = format!("net:[{}]", std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(ns.path()).unwrap()));
    assert_eq!(netns(&data), joined, "the container is in the named netns");

    let images = rt.scratch().join("images-ns");
    rt.exec(&["checkpoint", "--image-path", images.to_str().unwrap(), &id]).ok();
    let last = *numbers(&count).last().unwrap();
    restore(&rt, &b, &id, &images, &b.stdout_path(), &[]).ok();
    wait_count(&count, last + 5, "after restore");
    let all = numbers(&count);
    assert_eq!(all, (1..=all.len() as u64).collect::<Vec<_>>(), "the counter goes on in the bind-mounted file from {last}");
    // Written by the restored shell (the file is recreated after this removal).
    std::fs::remove_file(data.join("netns")).unwrap();
    assert_eq!(netns(&data), joined, "restored into the same named netns");
    rt.delete_force(&id).ok();
    rt.assert_nothing_left(&id, &b);
}
