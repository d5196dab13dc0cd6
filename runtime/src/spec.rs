//! Loading and validating a bundle's `config.json`.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A validated bundle: its absolute path, its spec and its absolute rootfs path.
#[derive(Debug)]
pub struct Bundle {
    pub path: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
    /// `linux.seccomp` compiled (validating it), once, before anything is created.
    pub seccomp: Option<crate::seccomp::Program>,
}

/// Reads `<bundle>/config.json` and checks everything berth relies on later, so a bad
/// config fails before anything is created.
pub fn load(bundle: &Path) -> Result<Bundle> {
    let path = std::fs::canonicalize(bundle).map_err(|e| Error::Spec(format!("bundle {}: {e}", bundle.display())))?;
    let file = path.join("config.json");
    let data = std::fs::read(&file).map_err(|e| Error::Spec(format!("read {}: {e}", file.display())))?;
    let spec: Spec = serde_json::from_slice(&data).map_err(|e| Error::Spec(format!("malformed {}: {e}", file.display())))?;
    let rootfs = validate(&path, &spec)?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()).map(crate::seccomp::compile).transpose()?;
    Ok(Bundle { path, spec, rootfs, seccomp })
}

fn validate(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let version = spec.version();
    let major = version.split('.').next().unwrap_or("");
    if major != "1" {
        return Err(Error::Spec(format!("unsupported ociVersion {version:?}: berth supports 1.x")));
    }
    let root = spec.root().as_ref().ok_or_else(|| Error::Spec("config.json has no root".into()))?;
    let rootfs = bundle.join(root.path());
    let meta = std::fs::metadata(&rootfs).map_err(|e| Error::Spec(format!("rootfs {}: {e}", rootfs.display())))?;
    if !meta.is_dir() {
        return Err(Error::Spec(format!("rootfs {} is not a directory", rootfs.display())));
    }
    let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| Error::Spec(format!("rootfs {}: {e}", rootfs.display())))?;

    let process = spec.process().as_ref().ok_or_else(|| Error::Spec("config.json has no process".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Spec("process.args must not be empty".into()));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::Spec(format!("process.cwd {:?} is not absolute", process.cwd())));
    }

    let linux = spec.linux().as_ref().ok_or_else(|| Error::Spec("config.json has no linux section".into()))?;
    let mut seen = HashSet::new();
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    for ns in namespaces {
        if !seen.insert(ns.typ()) {
            return Err(Error::Spec(format!("namespace {} is listed twice", ns.typ())));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(Error::Spec(format!("namespace {} path {p:?} is not absolute", ns.typ())));
            }
        }
    }
    if !seen.contains(&LinuxNamespaceType::Mount) {
        // The container shares the host's mounts (runc allows it): nothing may then be
        // masked, made read-only or re-propagated, since that would change the host.
        let masked =
            linux.masked_paths().as_ref().is_some_and(|p| !p.is_empty()) || linux.readonly_paths().as_ref().is_some_and(|p| !p.is_empty());
        if masked {
            return Err(Error::Spec("maskedPaths and readonlyPaths need a mount namespace of the container's own".into()));
        }
        if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
            return Err(Error::Spec("a read-only root needs a mount namespace of the container's own".into()));
        }
        if linux.rootfs_propagation().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(Error::Spec("rootfsPropagation needs a mount namespace of the container's own".into()));
        }
    }
    let has_user = seen.contains(&LinuxNamespaceType::User);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if maps && !has_user {
        return Err(Error::Spec("uid/gid mappings need a user namespace".into()));
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
        && !namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none())
    {
        return Err(Error::Spec("timeOffsets need a new time namespace".into()));
    }
    crate::lsm::check_spec(spec)?;
    let unsupported = [
        ("process.ioPriority", process.io_priority().is_some()),
        ("process.scheduler", process.scheduler().is_some()),
        ("process.execCPUAffinity", process.exec_cpu_affinity().is_some()),
        ("linux.intelRdt", linux.intel_rdt().is_some()),
        ("linux.netDevices", linux.net_devices().as_ref().is_some_and(|d| !d.is_empty())),
        ("linux.memoryPolicy", linux.memory_policy().is_some()),
        ("linux.personality flags", linux.personality().as_ref().is_some_and(|p| p.flags().as_ref().is_some_and(|f| !f.is_empty()))),
    ];
    if let Some((what, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(Error::Unsupported((*what).to_string()));
    }
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if !m.destination().is_absolute() {
            return Err(Error::Spec(format!("mount destination {:?} is not absolute", m.destination())));
        }
    }
    if let Some(hooks) = spec.hooks() {
        let all = [
            hooks.prestart(),
            hooks.create_runtime(),
            hooks.create_container(),
            hooks.start_container(),
            hooks.poststart(),
            hooks.poststop(),
        ];
        for h in all.into_iter().flatten().flatten() {
            if !h.path().is_absolute() {
                return Err(Error::Spec(format!("hook path {:?} is not absolute", h.path())));
            }
        }
    }
    for key in linux.sysctl().as_ref().map(|s| s.keys().collect::<Vec<_>>()).unwrap_or_default() {
        crate::sysctl::path_of(key)?;
        if let Some(ns) = crate::sysctl::namespace_of(key) {
            if !seen.contains(&ns) {
                return Err(Error::Spec(format!("sysctl {key} needs the container's own {ns} namespace")));
            }
        } else {
            return Err(Error::Spec(format!("sysctl {key} is not namespaced: it would change the host")));
        }
    }
    Ok(rootfs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> tempdir::Dir {
        let d = tempdir::Dir::new();
        std::fs::create_dir(d.0.join("rootfs")).unwrap();
        std::fs::write(d.0.join("config.json"), config).unwrap();
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!("berth-spec-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn default_config() -> serde_json::Value {
        let mut v = serde_json::to_value(Spec::default()).unwrap();
        v["root"]["path"] = "rootfs".into();
        v
    }

    #[test]
    fn default_spec_loads() {
        let d = bundle_with(&default_config().to_string());
        let b = load(&d.0).unwrap();
        assert!(b.rootfs.ends_with("rootfs"));
    }

    #[test]
    fn rejects_bad_configs() {
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|v| v["ociVersion"] = "0.9.0".into()), "unsupported ociVersion"),
            (Box::new(|v| v["root"]["path"] = "nope".into()), "rootfs"),
            (Box::new(|v| v["process"]["args"] = serde_json::json!([])), "args"),
            (
                Box::new(|v| {
                    v["linux"]["namespaces"] = serde_json::json!([{"type":"pid"}]);
                    v["linux"]["maskedPaths"] = serde_json::json!(["/proc/kcore"]);
                }),
                "mount namespace",
            ),
            (Box::new(|v| v["linux"]["namespaces"] = serde_json::json!([{"type":"bogus"}])), "malformed"),
            (Box::new(|v| v["linux"]["sysctl"] = serde_json::json!({"../x":"1"})), "sysctl"),
            (Box::new(|v| v["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_BOGUS"})), "malformed"),
            (
                Box::new(|v| v["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1})),
                "errnoRet",
            ),
            (
                Box::new(|v| {
                    v["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}]}]})
                }),
                "malformed",
            ),
            (
                Box::new(|v| {
                    v["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]})
                }),
                "argument index",
            ),
        ];
        for (edit, want) in cases {
            let mut v = default_config();
            edit(&mut v);
            let d = bundle_with(&v.to_string());
            let err = load(&d.0).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        }
        let d = bundle_with("{not json");
        assert!(load(&d.0).unwrap_err().to_string().contains("malformed"));
    }
}
