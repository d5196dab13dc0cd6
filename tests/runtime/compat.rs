//! Configs runc accepts that berth must accept too, and errors that name the real cause.

use crate::*;

/// No mount namespace: the container shares the host's mounts (only chrooted into its
/// rootfs); its spec mounts land below the rootfs in the host's namespace and `delete`
/// takes them away again.
#[test]
fn no_mount_namespace() {
    let (mut b, rt, id) = setup!("no_mntns");
    b.remove_namespace("mount");
    b.set("/linux/maskedPaths", json!([]));
    b.set("/linux/readonlyPaths", json!([]));
    b.sh("ls / | tr '\\n' ' '; echo; echo pid=$$; test -e /proc/self/status && echo proc=yes");
    let o = rt.run(&id, &b);
    o.ok();
    assert!(o.stdout.contains("bin") && o.stdout.contains("proc"), "the container sees its rootfs: {}", o.stdout);
    assert!(o.stdout.contains("proc=yes"), "spec mounts are made: {}", o.stdout);
    assert_eq!(field(&o.stdout, "pid"), Some("1"), "its own pid namespace: {}", o.stdout);
    if rt.is_berth() {
        // runc leaves these mounts on the host; berth's delete (done by run) takes them.
        rt.assert_nothing_left(&id, &b);
    }
}

#[test]
fn no_mount_namespace_refuses_masked_paths() {
    let (mut b, rt, id) = setup!("no_mntns_masked");
    b.remove_namespace("mount");
    b.args(&["true"]);
    rt.run(&id, &b).fails_mentioning(&["mount namespace", "MNT namespace"]);
    rt.assert_nothing_left(&id, &b);
}

/// A uts namespace joined by path takes the spec's hostname (runc sets it there).
#[test]
fn hostname_in_joined_uts_namespace() {
    let (mut holder_b, rt, holder) = setup!("uts_holder");
    holder_b.sh("sleep 1000");
    holder_b.set("/hostname", json!("holder"));
    rt.create(&holder, &holder_b).ok();
    rt.start(&holder).ok();
    let pid = rt.pid(&holder).unwrap();
    let mut b = Bundle::new("uts_joiner");
    b.remove_namespace("uts");
    b.add_namespace("uts", Some(&format!("/proc/{pid}/ns/uts")));
    b.set("/hostname", json!("joined-name"));
    b.sh("hostname");
    let id = rt.id("joiner");
    let o = rt.run(&id, &b);
    o.ok();
    assert_eq!(o.stdout.trim(), "joined-name");
    let seen = rt.exec(&["exec", &holder, "hostname"]);
    seen.ok();
    assert_eq!(seen.stdout.trim(), "joined-name", "the namespace's owner sees the new name");
}

#[test]
fn bind_mount_with_missing_source_names_it() {
    let (mut b, rt, id) = setup!("bind_missing");
    b.add_mount(json!({"destination": "/x", "type": "bind", "source": "/nonexistent-berth-src", "options": ["rbind"]}));
    b.args(&["true"]);
    let o = rt.run(&id, &b);
    o.fails_mentioning(&["/nonexistent-berth-src"]);
    assert!(o.stderr.to_lowercase().contains("no such file"), "the cause is the missing source: {}", o.stderr);
    rt.assert_nothing_left(&id, &b);
}

/// type "bind" without a bind option is still a bind mount.
#[test]
fn bind_type_without_bind_option() {
    let (mut b, rt, id) = setup!("bind_type");
    if rt.skip_runc("bind_type_without_bind_option", "runc 1.1 mounts type \"bind\" without MS_BIND (ENODEV)") {
        return;
    }
    let src = b.bind_dir("src", "/placeholder");
    b.remove_mount("/placeholder");
    std::fs::write(src.join("marker"), "here").unwrap();
    b.add_mount(json!({"destination": "/y", "type": "bind", "source": src.to_str().unwrap()}));
    b.sh("cat /y/marker");
    let o = rt.run(&id, &b);
    o.ok();
    assert_eq!(o.stdout.trim(), "here");
}

/// A map the kernel refuses fails at the map write, naming it.
#[test]
fn refused_uid_map_fails_at_the_write() {
    let (mut b, rt, id) = setup!("bad_uidmap");
    b.add_namespace("user", None);
    b.set("/linux/uidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 4294967295u64}]));
    b.set("/linux/gidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 65536}]));
    b.args(&["true"]);
    let o = rt.run(&id, &b);
    o.fails_mentioning(&["uid_map"]);
    if rt.is_berth() {
        assert!(o.stderr.contains("4294967295"), "the refused map is named: {}", o.stderr);
        assert!(
            o.stderr.contains("Invalid argument") && o.stderr.matches("Invalid argument").count() == 1,
            "the kernel's reason, once: {}",
            o.stderr
        );
    }
    rt.assert_nothing_left(&id, &b);
}

/// `features`: the runtime spec's document, which clients parse.
#[test]
fn features_document() {
    let rt = Runtime::new("features");
    let o = rt.exec(&["features"]);
    o.ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("features is JSON ({e}): {}", o.stdout));
    assert!(v["ociVersionMax"].as_str().is_some_and(|s| s.starts_with("1.")));
    let ns: Vec<&str> = v["linux"]["namespaces"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect();
    for want in ["mount", "pid", "network", "user", "uts", "ipc", "cgroup"] {
        assert!(ns.contains(&want), "namespace {want} listed: {ns:?}");
    }
    assert!(v["mountOptions"].as_array().unwrap().iter().any(|o| o == "rbind"));
    assert_eq!(v["linux"]["seccomp"]["enabled"], json!(true));
    let ops = v["linux"]["seccomp"]["operators"].as_array().unwrap();
    assert!(ops.iter().any(|o| o == "SCMP_CMP_MASKED_EQ"));
    assert!(v["linux"]["seccomp"]["archs"].as_array().unwrap().iter().any(|a| a == "SCMP_ARCH_X86_64"));
    // berth reports the LSMs the host has (runc reports what it was built with).
    if rt.is_berth() {
        let aa = std::path::Path::new("/sys/kernel/security/apparmor").exists();
        assert_eq!(v["linux"]["apparmor"]["enabled"], json!(aa));
    }
}

/// AppArmor and SELinux on a host without them: as runc.
#[test]
fn lsm_labels_without_the_lsm() {
    if std::path::Path::new("/sys/kernel/security/apparmor").exists() || std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        eprintln!("lsm_labels_without_the_lsm: SKIPPED: this host has AppArmor or SELinux");
        return;
    }
    let (mut b, rt, id) = setup!("lsm_none");
    b.args(&["true"]);
    b.set("/process/selinuxLabel", json!("system_u:system_r:container_t:s0"));
    rt.run(&id, &b).fails_mentioning(&["selinux"]);
    rt.assert_nothing_left(&id, &b);
    b.unset("/process/selinuxLabel");
    b.set("/process/apparmorProfile", json!("berth-test-profile"));
    rt.run(&id, &b).fails_mentioning(&["apparmor"]);
    rt.assert_nothing_left(&id, &b);
}

/// A user the container's user namespace does not map: the error says so.
#[test]
fn unmapped_user_is_named() {
    let (mut b, rt, id) = setup!("unmapped_user");
    b.userns(100000, 1000);
    b.set("/process/user", json!({"uid": 5000, "gid": 0}));
    b.args(&["true"]);
    let o = rt.run(&id, &b);
    o.fails();
    if rt.is_berth() {
        assert!(o.stderr.contains("uid 5000 is not mapped"), "{}", o.stderr);
    }
    rt.assert_nothing_left(&id, &b);
}

/// A file system type the kernel lacks is named as such (not only "No such device").
#[test]
fn unknown_filesystem_type_is_named() {
    let (mut b, rt, id) = setup!("unknown_fstype");
    b.add_mount(json!({"destination": "/x", "type": "bogusfs", "source": "none"}));
    b.args(&["true"]);
    let o = rt.run(&id, &b);
    o.fails();
    if rt.is_berth() {
        assert!(o.stderr.contains("no file system type \"bogusfs\""), "{}", o.stderr);
    }
    rt.assert_nothing_left(&id, &b);
}

/// In a user namespace devices are binds of the host's nodes: a spec "device" that is a
/// host file (here through `..`) is refused, never bound into the container.
#[test]
fn host_file_is_not_bound_as_a_device() {
    let (mut b, rt, id) = setup!("device_host_file");
    if rt.skip_runc("host_file_is_not_bound_as_a_device", "runc 1.1 binds whatever host path a device entry names") {
        return;
    }
    b.userns(100000, 65536);
    b.set("/linux/devices", json!([{"path": "/dev/../etc/hostname", "type": "c", "major": 1, "minor": 3}]));
    b.sh("cat /etc/hostname");
    let o = rt.run(&id, &b);
    o.fails_mentioning(&["is not the character device 1:3"]);
    rt.assert_nothing_left(&id, &b);
}
