//! Namespaces: new ones of every type, joining by path, user namespace mappings, uts names.

use crate::*;
use std::fs;
use std::process::Command;

/// Run a container printing `readlink /proc/self/ns/<t>` for each type; compare with the host.
#[test]
fn new_namespaces_differ_from_host() {
    let types = [("pid", "pid"), ("net", "network"), ("ipc", "ipc"), ("uts", "uts"), ("mnt", "mount"), ("cgroup", "cgroup")];
    let mut script = String::new();
    for (t, _) in types {
        script.push_str(&format!("echo {t}=$(readlink /proc/self/ns/{t}); "));
    }
    let out = sh_output(
        "ns_new",
        |b| {
            b.add_namespace("cgroup", None);
        },
        &script,
    );
    for (t, _) in types {
        let inside = field(&out, t).unwrap_or_else(|| panic!("no {t}= line: {out}"));
        assert!(inside.starts_with(&format!("{t}:[")), "ns link inside: {inside}");
        assert_ne!(inside, ns_link("self", t), "container must have its own {t} namespace");
    }
}

#[test]
fn without_namespace_shares_host() {
    // No uts/ipc entries → the container shares the host's.
    let out = sh_output(
        "ns_shared",
        |b| {
            b.remove_namespace("uts").remove_namespace("ipc").unset("/hostname");
        },
        "echo uts=$(readlink /proc/self/ns/uts); echo ipc=$(readlink /proc/self/ns/ipc)",
    );
    assert_eq!(field(&out, "uts").unwrap(), ns_link("self", "uts"));
    assert_eq!(field(&out, "ipc").unwrap(), ns_link("self", "ipc"));
}

#[test]
fn pid_namespace_init_is_pid_1() {
    let out = sh_output("ns_pid", |_| {}, "echo pid=$$; ls /proc | grep -c '^[0-9]'");
    assert_eq!(field(&out, "pid"), Some("1"), "{out}");
}

#[test]
fn network_namespace_has_only_lo() {
    let out = sh_output("ns_net", |_| {}, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    let ifs: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(ifs, ["lo"], "interfaces in a new netns: {out}");
}

#[test]
fn uts_hostname() {
    let out = sh_output(
        "ns_uts",
        |b| {
            b.set("/hostname", json!("bt-host"));
        },
        "echo host=$(hostname)",
    );
    assert_eq!(field(&out, "host"), Some("bt-host"), "{out}");
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(host.trim(), "bt-host", "host hostname untouched");
}

#[test]
fn uts_domainname() {
    if Runtime::new("ns_domainname").skip_runc("uts_domainname", "runc 1.1 ignores the spec's `domainname` (support came in runc 1.2)") {
        return;
    }
    let out = sh_output(
        "ns_domainname",
        |b| {
            b.set("/domainname", json!("bt.example"));
        },
        "echo dom=$(cat /proc/sys/kernel/domainname)",
    );
    assert_eq!(field(&out, "dom"), Some("bt.example"), "{out}");
}

#[test]
fn user_namespace_mappings() {
    let (mut b, rt, id) = setup!("ns_user");
    b.userns(200000, 65536);
    b.sh("cat /proc/self/uid_map; cat /proc/self/gid_map; echo uid=$(id -u); echo gid=$(id -g); touch /tmp/owned; sleep 60");
    rt.create(&id, &b).ok();
    let pid = rt.pid(&id).unwrap();
    rt.start(&id).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !b.stdout().contains("gid=") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = b.stdout();
    let maps: Vec<Vec<&str>> = out.lines().take(2).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(maps.first().map(|m| m.as_slice()), Some(&["0", "200000", "65536"][..]), "uid_map: {out}");
    assert_eq!(maps.get(1).map(|m| m.as_slice()), Some(&["0", "200000", "65536"][..]), "gid_map: {out}");
    assert_eq!(field(&out, "uid"), Some("0"), "{out}");
    assert_eq!(field(&out, "gid"), Some("0"), "{out}");
    let status = read(format!("/proc/{pid}/status"));
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.split_whitespace().skip(1).all(|u| u == "200000"), "host sees the mapped uid: {uid_line}");
    std::thread::sleep(Duration::from_millis(100));
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(b.rootfs().join("tmp/owned")).expect("file created in the container");
    assert_eq!(md.uid(), 200000, "a file made by container root is owned by the mapped uid");
    assert_ne!(ns_link(&pid.to_string(), "user"), ns_link("self", "user"));
    rt.delete_force(&id).ok();
}

#[test]
fn cgroup_namespace_root() {
    let out = sh_output(
        "ns_cgroup",
        |b| {
            b.add_namespace("cgroup", None);
        },
        "cat /proc/self/cgroup",
    );
    assert!(out.lines().any(|l| l == "0::/"), "in a cgroup ns /proc/self/cgroup shows 0::/ : {out}");
}

#[test]
fn time_namespace_offsets() {
    let (mut b, rt, id) = setup!("ns_time");
    if rt.skip_runc("time_namespace_offsets", "runc 1.1 rejects the time namespace (`namespace {\"time\" \"\"} does not exist`); time namespaces and linux.timeOffsets came in runc 1.2") {
        return;
    }
    b.add_namespace("time", None);
    b.set("/linux/timeOffsets", json!({"monotonic": {"secs": 864000, "nanosecs": 0}, "boottime": {"secs": 1728000, "nanosecs": 0}}));
    b.sh("cat /proc/self/timens_offsets; echo up=$(cut -d. -f1 /proc/uptime)");
    let o = rt.run(&id, &b);
    o.ok();
    assert!(o.stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["monotonic", "864000", "0"]), "{}", o.stdout);
    let host_up: u64 = read("/proc/uptime").split('.').next().unwrap().parse().unwrap();
    let up: u64 = field(&o.stdout, "up").unwrap().parse().unwrap();
    assert!(up >= host_up + 1728000 - 5, "boottime offset shows in /proc/uptime: {up} vs host {host_up}");
}

#[test]
fn join_network_namespace_of_other_container() {
    let b1 = Bundle::new("ns_join_a");
    let mut b2 = Bundle::new("ns_join_b");
    let rt = Runtime::new("ns_join");
    let mut b1 = b1;
    b1.args(&["sleep", "60"]);
    let a = rt.id("a");
    rt.create(&a, &b1).ok();
    let apid = rt.pid(&a).unwrap();
    b2.add_namespace("network", Some(&format!("/proc/{apid}/ns/net")));
    b2.sh("echo net=$(readlink /proc/self/ns/net)");
    let bid = rt.id("b");
    let o = rt.run(&bid, &b2);
    o.ok();
    let want = ns_link(&apid.to_string(), "net");
    assert_eq!(field(&o.stdout, "net"), Some(want.as_str()), "second container joined the first's netns");
    assert_ne!(want, ns_link("self", "net"));
    rt.delete_force(&a).ok();
}

#[test]
fn join_bind_mounted_namespace_file() {
    let (mut b, rt, id) = setup!("ns_join_file");
    let nsfile = rt.scratch().join("netns");
    fs::write(&nsfile, "").unwrap();
    let st = Command::new("unshare").arg(format!("--net={}", nsfile.display())).arg("true").status().expect("unshare");
    assert!(st.success(), "unshare --net=FILE");
    // Unmounted when the test ends, whatever happens (the Runtime's TempDir detaches mounts).
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _g = Umount(nsfile.clone());
    let want = fs::metadata(&nsfile).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    b.add_namespace("network", Some(nsfile.to_str().unwrap()));
    b.sh("readlink /proc/self/ns/net");
    let o = rt.run(&id, &b);
    o.ok();
    assert_eq!(o.stdout.trim(), format!("net:[{want}]"), "container joined the bind-mounted netns");
}

#[test]
fn join_missing_namespace_path_fails() {
    let o = sh_run(
        "ns_join_missing",
        |b| {
            b.add_namespace("network", Some("/proc/999999999/ns/net"));
        },
        "true",
    );
    o.fails();
}

#[test]
fn rootfs_propagation_private_and_shared() {
    let runc = Runtime::new("propagation").is_runc();
    for (prop, want_shared) in [("private", false), ("shared", true)] {
        if runc && prop == "shared" {
            eprintln!("rootfs_propagation_private_and_shared: SKIPPED shared for runc: runc 1.1 makes the rootfs's parent mount private before binding the rootfs, so with the rootfs on the host's / file system the container root ends up private");
            continue;
        }
        let out = sh_output(
            &format!("propagation_{prop}"),
            |b| {
                b.set("/linux/rootfsPropagation", json!(prop));
            },
            "awk '$5 == \"/\"' /proc/self/mountinfo",
        );
        assert!(!out.is_empty(), "root mount in mountinfo");
        assert_eq!(out.contains("shared:"), want_shared, "rootfsPropagation {prop}: {out}");
    }
}

#[test]
fn readonly_root() {
    let out = sh_output(
        "ro_root",
        |b| {
            b.set("/root/readonly", json!(true));
        },
        "touch /newfile 2>/dev/null && echo root=rw || echo root=ro; touch /dev/shm/x && echo shm=rw",
    );
    assert_eq!(field(&out, "root"), Some("ro"), "{out}");
    assert_eq!(field(&out, "shm"), Some("rw"), "other mounts stay writable: {out}");
}

#[test]
fn writable_root_by_default() {
    let (mut b, rt, id) = setup!("rw_root");
    b.sh("echo data > /newfile");
    rt.run(&id, &b).ok();
    assert_eq!(read(b.rootfs().join("newfile")), "data\n");
}
