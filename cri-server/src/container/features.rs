//! What a handler's OCI runtime can do, from its `features` command (runtime-spec
//! features.md): asked once per handler and kept, because the answer is a property of the
//! installed binary and every CreateContainer and Status needs it.
//!
//! A runtime without `features` (runc before 1.1, old crun) answers nothing: then it has
//! none of the optional features, which is the safe reading.

use super::runtime::Runtime;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The optional features berth-cri asks of a runtime.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeFeatures {
    /// `rro` mount option: recursive read-only mounts (KEP-3857).
    pub recursive_read_only: bool,
    /// Id-mapped mounts (`mountExtensions.idmap.enabled`).
    pub idmap_mounts: bool,
    /// User-namespaced pods: the runtime joins user namespaces and id-maps volumes, and this
    /// kernel can id-map the image layers under overlayfs (see [`kernel_takes_detached_layers`]).
    pub user_namespaces: bool,
}

impl RuntimeFeatures {
    /// Reads a `features` document; unknown or missing fields mean "not supported".
    pub fn from_json(doc: &serde_json::Value) -> RuntimeFeatures {
        let has_opt = |o: &str| doc["mountOptions"].as_array().is_some_and(|a| a.iter().any(|v| v.as_str() == Some(o)));
        let idmap_mounts = doc["linux"]["mountExtensions"]["idmap"]["enabled"].as_bool() == Some(true);
        let user = doc["linux"]["namespaces"].as_array().is_some_and(|a| a.iter().any(|v| v.as_str() == Some("user")));
        RuntimeFeatures { recursive_read_only: has_opt("rro"), idmap_mounts, user_namespaces: idmap_mounts && user }
    }
}

/// The features of every handler asked so far, keyed by the runtime's path.
#[derive(Default)]
pub struct FeatureCache {
    by_path: Mutex<HashMap<std::path::PathBuf, Arc<OnceCell<RuntimeFeatures>>>>,
}

impl FeatureCache {
    pub async fn of(&self, rt: &Runtime) -> RuntimeFeatures {
        let cell = {
            let mut m = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(rt.path.clone()).or_default().clone()
        };
        *cell
            .get_or_init(|| async {
                let mut f = match rt.run(&["features"], None, Duration::from_secs(10)).await {
                    Ok(out) => serde_json::from_str(&out).map(|v| RuntimeFeatures::from_json(&v)).unwrap_or_default(),
                    Err(_) => RuntimeFeatures::default(),
                };
                // A runtime announcing rro on a kernel without mount_setattr(2) (before 5.12)
                // would fail every such mount at create time: not a feature here.
                f.recursive_read_only &= kernel_has_mount_setattr();
                f.idmap_mounts &= kernel_has_mount_setattr();
                f.user_namespaces &= f.idmap_mounts && kernel_takes_detached_layers();
                f
            })
            .await
    }
}

/// Whether this kernel has mount_setattr(2) (Linux 5.12): asked with an invalid fd, a
/// kernel that has it says EBADF, one that lacks it ENOSYS.
pub fn kernel_has_mount_setattr() -> bool {
    let r = crate::sys::mount_setattr_probe();
    !(r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
}

/// Whether overlayfs takes detached (id-mapped) mounts as lower layers: Linux 6.15. That
/// is how a user-namespaced pod's image layers appear owned by its own root without a copy.
pub fn kernel_takes_detached_layers() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").is_ok_and(|r| release_at_least(r.trim(), (6, 15)))
}

/// `6.18.0-1-amd64` ≥ (6, 15)?
pub fn release_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut it = release.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= want,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rro_and_idmap() {
        let doc = serde_json::json!({"mountOptions": ["ro", "rro"], "linux": {"mountExtensions": {"idmap": {"enabled": true}}}});
        assert_eq!(
            RuntimeFeatures::from_json(&doc),
            RuntimeFeatures { recursive_read_only: true, idmap_mounts: true, user_namespaces: false }
        );
        let doc = serde_json::json!({"mountOptions": [], "linux": {"namespaces": ["user", "mount"], "mountExtensions": {"idmap": {"enabled": true}}}});
        assert!(RuntimeFeatures::from_json(&doc).user_namespaces);
        // runc 1.1: no rro, no mountExtensions.
        let doc = serde_json::json!({"mountOptions": ["ro", "rbind"], "linux": {}});
        assert_eq!(RuntimeFeatures::from_json(&doc), RuntimeFeatures::default());
        assert_eq!(RuntimeFeatures::from_json(&serde_json::json!("garbage")), RuntimeFeatures::default());
    }

    #[test]
    fn kernel_releases() {
        assert!(release_at_least("6.18.0-1-amd64", (6, 15)));
        assert!(release_at_least("7.0", (6, 15)));
        assert!(!release_at_least("6.1.0-30-amd64", (6, 15)));
        assert!(!release_at_least("garbage", (6, 15)));
    }

    #[test]
    fn this_kernel_has_mount_setattr() {
        // Every kernel berth is tested on (6.1 in the VM bed, 6.18 here) has it.
        assert!(kernel_has_mount_setattr());
    }
}
