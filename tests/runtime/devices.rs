//! The device cgroup: `linux.resources.devices` plus runc's default allowed devices. berth
//! enforces them with an eBPF program on the container's cgroup2 directory (also on this
//! hybrid host: cgroup BPF needs no controller); runc 1.1 here through the v1 devices
//! controller. Both keep mknod allowed for every char and block device (runc's defaults), so
//! a denied device can be created but not opened.

use crate::*;

/// Makes /devtest/<name> (a tmpfs without nodev) and reports whether it opens for reading.
fn probe(name: &str, kind: &str, major: u32, minor: u32) -> String {
    format!(
        "mknod /devtest/{name} {kind} {major} {minor} && echo {name}-made; \
         if (exec 3</devtest/{name}) 2>/devtest/{name}.err; then echo {name}-open; else echo {name}-denied: $(cat /devtest/{name}.err); fi; "
    )
}

fn device_bundle(b: &mut Bundle) {
    b.caps(&["CAP_MKNOD", "CAP_DAC_OVERRIDE", "CAP_CHOWN"]);
    b.add_mount(json!({"destination": "/devtest", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}));
}

#[test]
fn denied_device_cannot_be_opened_allowed_can() {
    let out = sh_output(
        "dev_rules",
        |b| {
            device_bundle(b);
            b.set(
                "/linux/resources/devices",
                json!([
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}
                ]),
            );
        },
        &format!("{}{}{}", probe("fuse", "c", 10, 229), probe("loopctl", "c", 10, 237), probe("null", "c", 1, 3)),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0..2], ["fuse-made", "fuse-open"], "allowed by the spec's rule: {out}");
    assert_eq!(lines[2], "loopctl-made", "mknod stays allowed (runc's defaults): {out}");
    assert!(lines[3].starts_with("loopctl-denied") && lines[3].contains("not permitted"), "c 10:237 must be refused: {out}");
    assert_eq!(lines[4..6], ["null-made", "null-open"], "/dev/null's numbers are a default allowed device: {out}");
}

#[test]
fn no_device_rules_allow_only_the_defaults() {
    let out = sh_output("dev_defaults", device_bundle, &format!("{}{}", probe("fuse", "c", 10, 229), probe("zero", "c", 1, 5)));
    assert!(out.contains("fuse-denied") && out.contains("not permitted"), "{out}");
    assert!(out.contains("zero-open"), "{out}");
}

#[test]
fn allow_all_rule_allows_any_device() {
    let out = sh_output(
        "dev_allow_all",
        |b| {
            device_bundle(b);
            b.set("/linux/resources/devices", json!([{"allow": true, "access": "rwm"}]));
        },
        &probe("fuse", "c", 10, 229),
    );
    assert!(out.contains("fuse-open"), "{out}");
}

#[test]
fn bad_device_rule_is_refused() {
    let (mut b, rt, id) = setup!("dev_bad");
    if rt.skip_runc(
        "bad_device_rule_is_refused",
        "runc 1.1 hands the access string to the v1 devices controller unchecked (it accepts \"rwx\")",
    ) {
        return;
    }
    b.set("/linux/resources/devices", json!([{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwx"}]));
    b.args(&["true"]);
    rt.create(&id, &b).fails_mentioning(&["access", "invalid", "devices"]);
    rt.assert_nothing_left(&id, &b);
}
