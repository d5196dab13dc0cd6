//! AppArmor enforcement: the VM bed's Debian kernel has AppArmor, so a profile loaded with
//! Debian's apparmor_parser and named in process.apparmorProfile confines the container
//! (the build host has no AppArmor; there the profile is refused, as runc does).

use berth_tests::bundle::Bundle;
use berth_tests::runtime::Runtime;
use serde_json::json;
use std::path::Path;
use std::process::Command;

const PROFILE: &str = "berth-test-deny-tmp";

/// Unloads the test profile however the test ends.
struct Loaded(std::path::PathBuf);

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ = Command::new("apparmor_parser").arg("-R").arg(&self.0).status();
    }
}

#[test]
fn apparmor_profile_is_enforced() {
    if berth_tests::cgroup2::skip("apparmor_profile_is_enforced") {
        return;
    }
    if !Path::new("/sys/kernel/security/apparmor").exists() {
        // The guest starts without securityfs mounted.
        let st = Command::new("mount").args(["-t", "securityfs", "securityfs", "/sys/kernel/security"]).status().unwrap();
        assert!(st.success(), "mount securityfs");
    }
    assert!(Path::new("/sys/kernel/security/apparmor").exists(), "the VM kernel has AppArmor");
    let mut b = Bundle::new("cg2-apparmor");
    let rt = Runtime::new("cg2-apparmor");
    let id = rt.id("");
    let file = b.dir().join("profile");
    // AppArmor matches the path as the kernel names it (in the guest below its /newroot,
    // in a container as seen in its mount namespace): the deny rule takes any prefix.
    std::fs::write(&file, format!(
        "profile {PROFILE} flags=(attach_disconnected,mediate_deleted) {{\n  file,\n  capability,\n  network,\n  signal,\n  unix,\n  deny /**/denied/** w,\n}}\n"
    )).unwrap();
    let out = Command::new("apparmor_parser").args(["-r", "-K"]).arg(&file).output().expect("apparmor_parser");
    assert!(out.status.success(), "load profile: {}", String::from_utf8_lossy(&out.stderr));
    let _loaded = Loaded(file.clone());
    std::fs::create_dir_all(b.rootfs().join("tmp/denied")).unwrap();
    b.set("/process/apparmorProfile", json!(PROFILE));
    b.sh("cat /proc/self/attr/current; echo; touch /tmp/denied/x 2>/dev/null && echo wrote || echo refused; touch /tmp/allowed && echo allowed");
    let o = rt.run(&id, &b);
    o.ok();
    assert!(o.stdout.contains(&format!("{PROFILE} (enforce)")), "the container runs confined: {}", o.stdout);
    assert!(o.stdout.contains("refused") && !o.stdout.contains("wrote"), "the profile denies the write: {}", o.stdout);
    assert!(o.stdout.contains("allowed"), "the rest is allowed: {}", o.stdout);
    // exec'd processes take the profile named on the command line.
    let mut b2 = Bundle::new("cg2-apparmor-exec");
    std::fs::create_dir_all(b2.rootfs().join("tmp/denied")).unwrap();
    b2.sh("sleep 1000");
    let id2 = rt.id("exec");
    rt.create(&id2, &b2).ok();
    rt.start(&id2).ok();
    let e = rt.exec(&[
        "exec",
        "--apparmor",
        PROFILE,
        &id2,
        "sh",
        "-c",
        "cat /proc/self/attr/current; touch /tmp/denied/y 2>/dev/null || echo refused",
    ]);
    e.ok();
    assert!(e.stdout.contains(PROFILE) && e.stdout.contains("refused"), "exec --apparmor confines: {}", e.stdout);
}
