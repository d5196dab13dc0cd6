//! `berth features`: the runtime spec's "features" document, for this build on this host.
//!
//! Only what berth really does is listed: a client (containerd, CRI-O, podman) turns
//! features on from this, so a claim berth cannot keep would fail pods later.

use crate::rootfs::mounts::KNOWN_OPTIONS;
use crate::{lsm, seccomp};
use serde_json::{json, Value};
use std::path::Path;

/// Namespace types berth creates and joins, as the spec names them; `time` only where the
/// kernel has time namespaces.
fn namespaces() -> Vec<&'static str> {
    let mut v = vec!["cgroup", "ipc", "mount", "network", "pid", "user", "uts"];
    if Path::new("/proc/self/ns/time").exists() {
        v.push("time");
    }
    v
}

/// Id-mapped bind mounts need open_tree/mount_setattr/move_mount (Linux 5.12); probed by a
/// call that fails with EBADF where the syscall exists.
pub fn idmap_mounts() -> bool {
    let r = crate::sys::mount_setattr_probe();
    !(r < 0 && nix::errno::Errno::last() == nix::errno::Errno::ENOSYS)
}

fn capabilities() -> Vec<String> {
    let mut v: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

pub fn features() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": KNOWN_OPTIONS.iter().chain(crate::rootfs::mount_attr::REC_OPTIONS).collect::<Vec<_>>(),
        "linux": {
            "namespaces": namespaces(),
            "capabilities": capabilities(),
            "cgroup": { "v1": false, "v2": true, "systemd": true, "systemdUser": false, "rdma": true },
            "seccomp": {
                "enabled": true,
                "actions": seccomp::ACTIONS,
                "operators": seccomp::OPERATORS,
                "archs": seccomp::architectures(),
                "knownFlags": seccomp::KNOWN_FLAGS,
                "supportedFlags": seccomp::supported_flags()
            },
            "apparmor": { "enabled": lsm::apparmor_enabled() },
            "selinux": { "enabled": lsm::selinux_enabled() },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": idmap_mounts() } },
            "netDevices": { "enabled": false }
        },
        "annotations": {
            "io.github.berth.version": env!("CARGO_PKG_VERSION")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_matches_the_spec_schema() {
        let f: oci_spec::runtime::Features = serde_json::from_value(features()).expect("features schema");
        assert_eq!(f.oci_version_max(), crate::state::OCI_VERSION);
        let linux = f.linux().as_ref().unwrap();
        assert!(linux.capabilities().as_ref().unwrap().iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert!(linux.namespaces().as_ref().unwrap().len() >= 7);
        let sc = linux.seccomp().as_ref().unwrap();
        assert_eq!(sc.enabled(), &Some(true));
        assert!(sc.archs().as_ref().unwrap().iter().any(|a| format!("{a:?}").contains("X86_64") || format!("{a:?}").contains("X8664")));
    }

    #[test]
    fn every_listed_mount_option_is_parsed_as_an_option() {
        use crate::rootfs::mounts::parse_options;
        for o in KNOWN_OPTIONS.iter().chain(crate::rootfs::mount_attr::REC_OPTIONS) {
            let parsed = parse_options(&[o.to_string()]);
            assert!(parsed.data.is_empty(), "{o} would be passed to the filesystem as data");
        }
    }
}
