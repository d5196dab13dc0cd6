//! `slice:prefix:name` cgroupsPaths as runc reads them, systemd's slice naming (each `-`
//! in a slice name is one level of nesting), and where the unit's cgroup lives.

use super::SystemdError;
use std::path::PathBuf;

const SLICE: &str = ".slice";
/// Where a container goes when the path names no slice (runc's default).
pub const DEFAULT_SLICE: &str = "system.slice";
/// The prefix of containers whose spec names no cgroupsPath (runc uses "runc").
pub const DEFAULT_PREFIX: &str = "berth";
/// systemd's UNIT_NAME_MAX less the terminating nul.
const UNIT_NAME_MAX: usize = 255;

/// The systemd unit of one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// The unit's name: `<prefix>-<name>.scope`, or the name itself when it is a slice.
    pub name: String,
    /// The slice the unit goes into (`Slice=` of a scope, `Wants=` of a slice).
    pub parent: String,
    /// The unit's cgroup relative to the hierarchy root (the expanded parent, then the unit).
    pub rel: PathBuf,
}

impl Unit {
    pub fn is_slice(&self) -> bool {
        self.name.ends_with(SLICE)
    }

    /// Parses a cgroupsPath for the systemd driver; no path means
    /// `system.slice:berth:<id>`. Every check happens here, before anything is created.
    pub fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Unit, SystemdError> {
        let spec = match cgroups_path {
            None | Some("") => format!("{DEFAULT_SLICE}:{DEFAULT_PREFIX}:{id}"),
            Some(p) => p.to_string(),
        };
        let bad = |why: &str| SystemdError::CgroupsPath { path: spec.clone(), why: why.to_string() };
        let parts: Vec<&str> = spec.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(bad("expected the form slice:prefix:name"));
        };
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        for part in [slice, prefix, name] {
            if let Some(c) = part.chars().find(|&c| !valid_char(c)) {
                return Err(bad(&format!("{c:?} is not allowed in a systemd unit name")));
            }
        }
        let parent = if slice.is_empty() { DEFAULT_SLICE } else { slice };
        let parent_rel = expand_slice(parent).map_err(|why| bad(&why))?;
        let unit = if name.ends_with(SLICE) { name.to_string() } else { format!("{prefix}-{name}.scope") };
        if unit.len() > UNIT_NAME_MAX {
            return Err(bad("the unit name is longer than systemd allows"));
        }
        let rel = parent_rel.join(&unit);
        if name.ends_with(SLICE) {
            // systemd places a slice by its own name: it must be the parent's child, or the
            // container's cgroup would not be where the path says.
            let own = expand_slice(name).map_err(|why| bad(&why))?;
            if own != rel {
                return Err(bad(&format!("slice {name} is not a child of {parent}")));
            }
        }
        Ok(Unit { name: unit, parent: parent.to_string(), rel })
    }
}

/// The characters systemd allows in unit names (unit_name_is_valid), less `@` and `\`:
/// berth makes no template instances, and an escape would put a different name on disk.
fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ":-_.".contains(c)
}

/// `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice` (relative to the hierarchy root);
/// `-.slice` is the root slice itself. Empty components (`a--b`, `-a`, `a-`) are invalid,
/// as systemd's slice_name_is_valid says.
pub fn expand_slice(slice: &str) -> Result<PathBuf, String> {
    let invalid = || format!("invalid slice name {slice:?}");
    let base = slice.strip_suffix(SLICE).filter(|b| !b.is_empty()).ok_or_else(invalid)?;
    if slice.contains('/') {
        return Err(invalid());
    }
    let mut path = PathBuf::new();
    if base == "-" {
        return Ok(path);
    }
    let mut prefix = String::new();
    for part in base.split('-') {
        if part.is_empty() {
            return Err(invalid());
        }
        path.push(format!("{prefix}{part}{SLICE}"));
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_slices() {
        assert_eq!(expand_slice("system.slice").unwrap(), PathBuf::from("system.slice"));
        assert_eq!(
            expand_slice("kubepods-burstable-pod123.slice").unwrap(),
            PathBuf::from("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::new());
        for bad in ["a--b.slice", "-a.slice", "a-.slice", ".slice", "a.scope", "a/b.slice", "", "--.slice"] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_paths() {
        let u = Unit::parse(Some("kubepods-besteffort.slice:cri:abc"), "id").unwrap();
        assert_eq!(u.name, "cri-abc.scope");
        assert_eq!(u.parent, "kubepods-besteffort.slice");
        assert_eq!(u.rel, PathBuf::from("kubepods.slice/kubepods-besteffort.slice/cri-abc.scope"));
        let u = Unit::parse(None, "c1").unwrap();
        assert_eq!((u.name.as_str(), u.parent.as_str()), ("berth-c1.scope", "system.slice"));
        assert_eq!(u.rel, PathBuf::from("system.slice/berth-c1.scope"));
        let u = Unit::parse(Some(":p:n"), "c1").unwrap();
        assert_eq!(u.rel, PathBuf::from("system.slice/p-n.scope"));
        let u = Unit::parse(Some("-.slice:p:n"), "c1").unwrap();
        assert_eq!(u.rel, PathBuf::from("p-n.scope"));
        let u = Unit::parse(Some("kubepods.slice::kubepods-pod1.slice"), "c1").unwrap();
        assert!(u.is_slice());
        assert_eq!(u.rel, PathBuf::from("kubepods.slice/kubepods-pod1.slice"));
    }

    #[test]
    fn refuses_malformed_paths() {
        for bad in [
            "system.slice:p",
            "a:b:c:d",
            "/sys/fs/cgroup/x",
            "system.slice:p:a/b",
            "../system.slice:p:n",
            "..:p:n",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "system.slice:p:",
            "system.slice:p q:n",
            "system.slice::other.slice",
            "system.slice:p:n@x",
        ] {
            assert!(Unit::parse(Some(bad), "id").is_err(), "{bad} accepted");
        }
    }
}
