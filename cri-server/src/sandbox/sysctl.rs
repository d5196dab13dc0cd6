//! Pod-level sysctls, written in the pod's pinned namespaces at creation: `net.*` in its
//! network namespace, the IPC ones (`kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`)
//! in its IPC namespace. Anything else is not namespaced — it would change the node — and is
//! refused, as are namespaced ones the pod shares with the host.

use super::namespaces::{in_ns, Kind};
use std::path::Path;

pub fn kind_of(key: &str) -> Option<Kind> {
    if key.starts_with("net.") {
        return Some(Kind::Net);
    }
    let ipc = [
        "kernel.shmmax",
        "kernel.shmall",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
    ];
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        return Some(Kind::Ipc);
    }
    None
}

/// The /proc/sys path of a key (dots or slashes as separators), refusing anything that
/// could leave /proc/sys.
pub fn proc_path(key: &str) -> Result<String, String> {
    if key.is_empty() || key.len() > 256 || !key.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)) || key.contains("..") {
        return Err(format!("invalid sysctl name {key:?}"));
    }
    Ok(format!("/proc/sys/{}", key.replace('.', "/")))
}

pub fn validate(key: &str, value: &str, host_net: bool, host_ipc: bool) -> Result<Kind, String> {
    proc_path(key)?;
    if value.contains('\n') || value.len() > 4096 {
        return Err(format!("invalid value for sysctl {key}"));
    }
    match kind_of(key) {
        None => Err(format!("sysctl {key} is not namespaced: it would change the node")),
        Some(Kind::Net) if host_net => Err(format!("sysctl {key} needs the pod's own network namespace (the pod uses the host's)")),
        Some(Kind::Ipc) if host_ipc => Err(format!("sysctl {key} needs the pod's own IPC namespace (the pod uses the host's)")),
        Some(k) => Ok(k),
    }
}

pub fn apply(key: &str, value: &str, kind: Kind, ns: &Path) -> std::io::Result<()> {
    let path = proc_path(key).map_err(std::io::Error::other)?;
    let v = value.to_string();
    in_ns(ns, kind, move || std::fs::write(&path, v.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_sysctls() {
        assert!(matches!(validate("net.ipv4.ip_forward", "1", false, false), Ok(Kind::Net)));
        assert!(matches!(validate("kernel.shmmax", "1", false, false), Ok(Kind::Ipc)));
        assert!(validate("kernel.panic", "1", false, false).is_err());
        assert!(validate("net.ipv4.ip_forward", "1", true, false).is_err());
        assert!(validate("net/../../etc", "1", false, false).is_err());
        assert!(validate("net.x", "1\n2", false, false).is_err());
    }
}
