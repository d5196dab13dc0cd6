//! What reaches the container: only stdio (and preserved fds); cwd and root inside the rootfs.

use crate::*;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

#[test]
fn only_stdio_reaches_container() {
    let (mut b, rt, id) = setup!("fd_hygiene");
    b.args(&["sleep", "60"]);
    // An inheritable fd 7 in the runtime's environment must not leak in.
    let f = fs::File::open("/etc/hostname").unwrap();
    let raw = f.as_raw_fd();
    // SAFETY: the pre_exec closure only calls dup2 (async-signal-safe).
    rt.create_with(&id, &b, &[], |c| unsafe {
        c.pre_exec(move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    })
    .ok();
    rt.start(&id).ok();
    let pid = rt.pid(&id).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut fds: Vec<(i32, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            (e.file_name().to_string_lossy().parse().unwrap(), fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default())
        })
        .collect();
    fds.sort();
    let nums: Vec<i32> = fds.iter().map(|f| f.0).collect();
    assert_eq!(nums, [0, 1, 2], "only stdio in the container process: {fds:?}");
    assert_eq!(fds[1].1, b.stdout_path().display().to_string(), "stdout is the runtime's stdout");
    drop(f);
    rt.delete_force(&id).ok();
}

#[test]
fn root_and_cwd_inside_rootfs() {
    let (mut b, rt, id) = setup!("cwd_root");
    b.set("/process/cwd", json!("/tmp"));
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).ok();
    rt.start(&id).ok();
    let pid = rt.pid(&id).unwrap();
    let out = {
        // What the container sees.
        let id2 = rt.id("x");
        let mut b2 = Bundle::new("cwd_root_2");
        b2.set("/process/cwd", json!("/tmp"));
        b2.sh("pwd; ls /");
        rt.run(&id2, &b2).ok().stdout.clone()
    };
    assert!(out.starts_with("/tmp\n") && out.contains("bin") && !out.contains("config.json"), "{out}");
    // The host's view of the process: its root and cwd are inside the bundle's rootfs.
    // By inode: after pivot_root in its own mount namespace the links only read "/".
    use berth_tests::runtime::dev_ino;
    assert_eq!(dev_ino(format!("/proc/{pid}/root")), dev_ino(b.rootfs()), "process root is the rootfs");
    assert_eq!(dev_ino(format!("/proc/{pid}/cwd")), dev_ino(b.rootfs().join("tmp")), "process cwd is rootfs/tmp");
    assert_ne!(dev_ino(format!("/proc/{pid}/root")), dev_ino("/"), "not the host root");
    rt.delete_force(&id).ok();
}
