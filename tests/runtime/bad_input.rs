//! Bad input: each fails with a non-zero exit, an error on stderr, and leaves nothing behind.

use crate::*;
use std::fs;

/// create must fail and leave nothing; returns the result for further checks.
#[track_caller]
fn create_fails(rt: &Runtime, id: &str, b: &Bundle) -> Out {
    let o = rt.create(id, b);
    o.fails();
    rt.assert_nothing_left(id, b);
    o
}

#[test]
fn missing_config_json() {
    let (b, rt, id) = setup!("bad_noconfig");
    let o = rt.exec(&["create", "--bundle", &b.dir_str(), &id]);
    o.fails_mentioning(&["config.json", "no such file"]);
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn malformed_config_json() {
    let (b, rt, id) = setup!("bad_json");
    fs::write(b.config_path(), "{\"ociVersion\": \"1.0.2\", \"process\": ").unwrap();
    let o = rt.exec(&["create", "--bundle", &b.dir_str(), &id]);
    o.fails();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn unsupported_oci_version() {
    for v in ["0.1.0", "9.9.9"] {
        let (mut b, rt, id) = setup!(&format!("bad_version_{}", v.replace('.', "")));
        if rt.skip_runc("unsupported_oci_version", "runc 1.1 does not validate ociVersion and runs the container") {
            return;
        }
        b.set("/ociVersion", json!(v));
        create_fails(&rt, &id, &b).fails_mentioning(&["version", v]);
    }
}

#[test]
fn unknown_namespace_type() {
    let (mut b, rt, id) = setup!("bad_nstype");
    b.add_namespace("bogus", None);
    create_fails(&rt, &id, &b).fails_mentioning(&["bogus", "namespace"]);
}

#[test]
fn duplicate_id() {
    let (mut b, rt, id) = setup!("bad_dup");
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).ok();
    let pid = rt.pid(&id);
    let mut b2 = Bundle::new("bad_dup_2");
    b2.args(&["true"]);
    let o = rt.create(&id, &b2);
    o.fails_mentioning(&["exist", "already"]);
    assert_eq!(rt.pid(&id), pid, "the first container is untouched");
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
}

#[test]
fn missing_rootfs() {
    let (mut b, rt, id) = setup!("bad_rootfs");
    b.set("/root/path", json!("no-such-rootfs"));
    create_fails(&rt, &id, &b);
}

#[test]
fn invalid_container_id() {
    let (mut b, rt, _id) = setup!("bad_id");
    b.args(&["true"]);
    let o = rt.create("../escape", &b);
    o.fails();
    assert!(!rt.root().parent().unwrap().join("escape").exists(), "no state outside --root");
}

#[test]
fn mount_destination_symlink_escape() {
    let (mut b, rt, id) = setup!("bad_symlink");
    let hostdir = rt.scratch().join("hostdir");
    fs::create_dir_all(&hostdir).unwrap();
    fs::write(hostdir.join("keep"), "untouched").unwrap();
    std::os::unix::fs::symlink(&hostdir, b.rootfs().join("evil")).unwrap();
    b.add_mount(json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    b.sh("touch /evil/inside 2>/dev/null; echo ran");
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = rt.run(&id, &b);
    // Either refused or contained in the rootfs; never on the host dir.
    let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let hd = hostdir.display().to_string();
    assert!(!after.lines().any(|l| l.contains(&hd)), "the host dir got a mount: {after}");
    assert_eq!(before.lines().count(), after.lines().count(), "no new host mounts");
    let entries: Vec<String> = fs::read_dir(&hostdir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(entries, ["keep"], "host dir untouched (result: {})", o.describe());
    assert_eq!(read(hostdir.join("keep")), "untouched");
    if !o.success() {
        o.fails();
        rt.assert_nothing_left(&id, &b);
    }
}

#[test]
fn unknown_container_commands_fail() {
    let rt = Runtime::new("bad_unknown");
    for args in [vec!["state", "bt-nope"], vec!["start", "bt-nope"], vec!["kill", "bt-nope", "KILL"], vec!["delete", "bt-nope"]] {
        let o = rt.exec(&args);
        o.fails_mentioning(&["bt-nope", "not exist", "not found", "no such"]);
    }
    assert_eq!(fs::read_dir(rt.root()).map(|d| d.count()).unwrap_or(0), 0, "nothing created under --root");
}

#[test]
fn bad_signal_to_created_container() {
    let (mut b, rt, id) = setup!("bad_signal");
    b.args(&["sleep", "60"]);
    rt.create(&id, &b).ok();
    rt.kill(&id, "NOTASIG").fails();
    rt.kill(&id, "-5").fails();
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
}

#[test]
fn bad_mount_type_fails_cleanly() {
    let (mut b, rt, id) = setup!("bad_mount");
    b.add_mount(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
    create_fails(&rt, &id, &b);
}

#[test]
fn bind_mount_missing_source() {
    let (mut b, rt, id) = setup!("bad_bind_source");
    b.add_mount(json!({"destination": "/data", "type": "bind", "source": "/nonexistent/bt-source", "options": ["bind"]}));
    create_fails(&rt, &id, &b);
}
