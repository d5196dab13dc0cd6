//! Linux security modules: AppArmor profiles and SELinux labels, applied where the host
//! has the module and treated exactly as runc treats them where it has not:
//! - `process.selinuxLabel` without SELinux is refused before anything is created;
//! - `process.apparmorProfile` is written to the exec attribute before execve, and a
//!   host without AppArmor refuses that write (EINVAL), which fails the create;
//! - `linux.mountLabel` becomes a `context=` option of the mounts runc labels, so a kernel
//!   without SELinux refuses those mounts.

use crate::error::{Error, Result};
use oci_spec::runtime::{Process, Spec};
use std::path::Path;

const SELINUX_MAGIC: i64 = 0xf97c_ff8c;

/// AppArmor is enabled when securityfs shows it and the module says so (as runc checks).
pub fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|b| b.first() == Some(&b'Y'))
}

/// SELinux is enabled when selinuxfs is mounted and we run in a real context.
pub fn selinux_enabled() -> bool {
    let fs = nix::sys::statfs::statfs("/sys/fs/selinux").is_ok_and(|s| s.filesystem_type().0 == SELINUX_MAGIC);
    fs && std::fs::read_to_string("/proc/self/attr/current").is_ok_and(|c| c.trim_end_matches(['\0', '\n']) != "kernel")
}

/// Refuses what can never work on this host (runc's validation).
pub fn check_process(p: &Process) -> Result<()> {
    if p.selinux_label().as_ref().is_some_and(|l| !l.is_empty()) && !selinux_enabled() {
        return Err(Error::Spec("selinux label is specified in config, but selinux is disabled or not supported".into()));
    }
    Ok(())
}

pub fn check_spec(spec: &Spec) -> Result<()> {
    match spec.process() {
        Some(p) => check_process(p),
        None => Ok(()),
    }
}

/// Writes `value` to the process's LSM attribute: `/proc/thread-self/attr/<lsm>/<attr>`
/// where the kernel has per-module attributes, else the shared `/proc/thread-self/attr/<attr>`.
fn write_attr(lsm: &str, attr: &str, value: &str) -> std::io::Result<()> {
    let specific = format!("/proc/thread-self/attr/{lsm}/{attr}");
    let path = if Path::new(&specific).exists() { specific } else { format!("/proc/thread-self/attr/{attr}") };
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    std::io::Write::write_all(&mut f, value.as_bytes())
}

/// Sets the AppArmor profile and SELinux label the process takes at execve.
pub fn apply(p: &Process) -> Result<()> {
    if let Some(profile) = p.apparmor_profile().as_ref().filter(|s| !s.is_empty()) {
        write_attr("apparmor", "exec", &format!("exec {profile}"))
            .map_err(|e| Error::Spec(format!("apply apparmor profile {profile:?}: write /proc/thread-self/attr/exec: {e}")))?;
    }
    if let Some(label) = p.selinux_label().as_ref().filter(|s| !s.is_empty()) {
        write_attr("selinux", "exec", label).map_err(|e| Error::Spec(format!("set selinux exec label {label:?}: {e}")))?;
    }
    Ok(())
}

/// The mount data with the SELinux mount label added, for the mount types runc labels
/// (not proc, sysfs, mqueue, cgroup, or binds, whose context is the source's).
pub fn label_mount_data(typ: &str, data: String, mount_label: Option<&str>) -> String {
    let Some(label) = mount_label.filter(|l| !l.is_empty()) else { return data };
    if matches!(typ, "proc" | "sysfs" | "mqueue" | "cgroup" | "cgroup2" | "bind") {
        return data;
    }
    let ctx = format!("context=\"{label}\"");
    if data.is_empty() {
        ctx
    } else {
        format!("{data},{ctx}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_label_goes_into_data() {
        assert_eq!(label_mount_data("tmpfs", "mode=755".into(), Some("s0")), "mode=755,context=\"s0\"");
        assert_eq!(label_mount_data("devpts", String::new(), Some("s0")), "context=\"s0\"");
        assert_eq!(label_mount_data("proc", String::new(), Some("s0")), "");
        assert_eq!(label_mount_data("tmpfs", "x".into(), None), "x");
    }
}
