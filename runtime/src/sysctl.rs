//! Applying `linux.sysctl` inside the container's /proc/sys.

use crate::error::{Context, Error, Result};
use std::collections::HashMap;
use std::path::PathBuf;

/// The /proc/sys file of a sysctl key (`net.ipv4.ip_forward` or `net/ipv4/ip_forward`),
/// refusing keys that could leave /proc/sys.
pub fn path_of(key: &str) -> Result<PathBuf> {
    let rel = key.replace('.', "/");
    let ok = !rel.is_empty() && rel.split('/').all(|c| !c.is_empty() && c != ".." && c != ".") && !key.contains("..");
    if !ok {
        return Err(Error::Spec(format!("invalid sysctl key {key:?}")));
    }
    Ok(PathBuf::from("/proc/sys").join(rel))
}

/// The namespace a sysctl belongs to; None for sysctls that are global to the host.
pub fn namespace_of(key: &str) -> Option<oci_spec::runtime::LinuxNamespaceType> {
    use oci_spec::runtime::LinuxNamespaceType::*;
    let k = key.replace('/', ".");
    const IPC: [&str; 7] =
        ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni"];
    if IPC.contains(&k.as_str()) || k == "kernel.shm_rmid_forced" || k.starts_with("fs.mqueue.") {
        Some(Ipc)
    } else if k.starts_with("net.") {
        Some(Network)
    } else if k == "kernel.hostname" || k == "kernel.domainname" {
        Some(Uts)
    } else {
        None
    }
}

/// Writes every sysctl; runs after pivot_root, so /proc is the container's.
pub fn apply(sysctls: &HashMap<String, String>) -> Result<()> {
    for (key, value) in sysctls {
        let path = path_of(key)?;
        std::fs::write(&path, value.as_bytes()).with_ctx(|| format!("sysctl {key}={value}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_map_into_proc_sys() {
        assert_eq!(super::path_of("net.ipv4.ip_forward").unwrap().to_str(), Some("/proc/sys/net/ipv4/ip_forward"));
        assert!(super::path_of("a..b").is_err());
        assert!(super::path_of("../../etc").is_err());
        assert!(super::path_of("").is_err());
        assert!(super::namespace_of("net.ipv4.ip_forward").is_some());
        assert!(super::namespace_of("kernel.shmmax").is_some());
        assert!(super::namespace_of("vm.swappiness").is_none());
    }
}
