//! The eBPF device program on a pure cgroup v2 host: a denied block device cannot be opened,
//! and `update` with device rules replaces the program on the live container.

use super::limits::setup;
use berth_tests::cgroup2::Cgroup;
use serde_json::json;
use std::time::Duration;

#[test]
fn device_rules_are_enforced_and_replaced_by_update() {
    if berth_tests::cgroup2::skip("device_rules_are_enforced_and_replaced_by_update") {
        return;
    }
    let dev = std::fs::read_to_string("/sys/block/nullb0/dev").expect("the VM bed provides /dev/nullb0").trim().to_string();
    let (major, minor) = dev.split_once(':').unwrap();
    let mut s = setup("dev-update");
    s.b.caps(&["CAP_MKNOD", "CAP_DAC_OVERRIDE"]);
    s.b.add_mount(json!({"destination": "/devtest", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}));
    let out = s.b.bind_dir("out", "/out");
    s.b.set("/linux/resources/devices", json!([{"allow": false, "access": "rwm"}]));
    s.b.sh(&format!(
        "mknod /devtest/nb b {major} {minor} || exit 1; while :; do \
        if (exec 3</devtest/nb) 2>/dev/null; then echo open > /out/s.new; else echo denied > /out/s.new; fi; \
        mv /out/s.new /out/state; sleep 0.05; done"
    ));
    s.rt.create(&s.id, &s.b).ok();
    s.rt.start(&s.id).ok();
    let state = || std::fs::read_to_string(out.join("state")).unwrap_or_default().trim().to_string();
    assert!(Cgroup::wait_for(Duration::from_secs(20), || state() == "denied"), "b {dev} refused: state {:?}, {}", state(), s.b.stderr());
    if s.rt.skip_runc("device_rules_are_enforced_and_replaced_by_update (update part)", "runc's update never changes device rules") {
        return;
    }
    let res = s.rt.scratch().join("dev.json");
    std::fs::write(
        &res,
        json!({"devices": [{"allow": true, "type": "b", "major": major.parse::<i64>().unwrap(),
        "minor": minor.parse::<i64>().unwrap(), "access": "r"}]})
        .to_string(),
    )
    .unwrap();
    s.rt.exec(&["update", "-r", res.to_str().unwrap(), &s.id]).ok();
    assert!(Cgroup::wait_for(Duration::from_secs(20), || state() == "open"), "b {dev} allowed after update: {:?}", state());
}
