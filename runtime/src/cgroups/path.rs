//! Where a container's cgroup lives: the cgroup2 mount, and `linux.cgroupsPath` resolved
//! the way runc's cgroupfs driver does it.

use crate::error::{Error, Result};
use std::path::{Component, Path, PathBuf};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// Parent of containers whose spec names no cgroupsPath.
pub const DEFAULT_PARENT: &str = "berth";

/// Mount point of the host's cgroup2 hierarchy.
pub fn root() -> Result<PathBuf> {
    for p in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if let Ok(st) = nix::sys::statfs::statfs(p) {
            if st.filesystem_type().0 == CGROUP2_SUPER_MAGIC {
                return Ok(PathBuf::from(p));
            }
        }
    }
    Err(Error::Cgroup("no cgroup2 hierarchy mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified".into()))
}

/// Whether a cgroupsPath is in systemd's `slice:prefix:name` form (runc's test: not
/// absolute and has a colon).
pub fn is_systemd_form(p: &Path) -> bool {
    let s = p.to_string_lossy();
    !s.starts_with('/') && s.contains(':')
}

/// The process's own cgroup (the `0::` line of /proc/self/cgroup), relative to the root.
fn own_cgroup() -> Result<PathBuf> {
    let s = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| Error::Cgroup(format!("read /proc/self/cgroup: {e}")))?;
    let line =
        s.lines().find_map(|l| l.strip_prefix("0::")).ok_or_else(|| Error::Cgroup("no cgroup2 entry in /proc/self/cgroup".into()))?;
    Ok(PathBuf::from(line.trim_start_matches('/')))
}

/// The cgroupsPath's components, refusing `..` (a path that climbs is a mistake or an attack,
/// never a container's cgroup).
fn clean(p: &Path) -> Result<PathBuf> {
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => return Err(Error::Spec(format!("linux.cgroupsPath {:?} must not contain ..", p))),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(Error::Spec(format!("linux.cgroupsPath {p:?} names the hierarchy root")));
    }
    Ok(rel)
}

/// Absolute cgroup directory for a container on the cgroupfs driver: an absolute
/// cgroupsPath below the hierarchy root; a relative one below the *parent* of berth's own
/// cgroup (runc's rule: berth's own cgroup has processes, so no controllers could be
/// enabled for children of it); none at all → `/berth/<id>`.
pub fn path_for(spec_path: Option<&Path>, id: &str) -> Result<PathBuf> {
    let root = root()?;
    let rel = match spec_path {
        None => PathBuf::from(DEFAULT_PARENT).join(id),
        Some(p) if is_systemd_form(p) => {
            return Err(Error::Spec(format!("linux.cgroupsPath {:?} is in systemd's slice:prefix:name form: use --systemd-cgroup", p)))
        }
        Some(p) if p.is_absolute() => clean(p)?,
        Some(p) => {
            let rel = clean(p)?;
            match own_cgroup()?.parent() {
                Some(parent) => parent.join(rel),
                None => rel,
            }
        }
    };
    Ok(root.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        assert_eq!(clean(Path::new("/a/./b/")).unwrap(), PathBuf::from("a/b"));
        assert!(clean(Path::new("/a/../b")).is_err());
        assert!(clean(Path::new("../b")).is_err());
        assert!(clean(Path::new("/")).is_err());
        assert!(is_systemd_form(Path::new("system.slice:docker:abc")));
        assert!(!is_systemd_form(Path::new("/a:b")));
    }
}
