//! misc controller (scalar host resources such as SEV ASIDs): the runtime spec has no field
//! for it, so its limits come through `unified` (`misc.max`). This checks such lines name a
//! resource the host has (`misc.capacity` of the hierarchy root) before anything is written.

use crate::error::{Error, Result};
use std::path::Path;

/// Checks a `misc.max` value: lines `<resource> <count|max>` for resources in the root's misc.capacity.
pub fn validate_max(root: &Path, value: &str) -> Result<()> {
    let capacity = std::fs::read_to_string(root.join("misc.capacity")).unwrap_or_default();
    let known: Vec<&str> = capacity.lines().filter_map(|l| l.split_whitespace().next()).collect();
    for line in value.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_whitespace();
        let (Some(name), Some(v), None) = (f.next(), f.next(), f.next()) else {
            return Err(Error::Spec(format!("linux.resources.unified misc.max {line:?}: expected \"<resource> <count|max>\"")));
        };
        if v != "max" && v.parse::<u64>().is_err() {
            return Err(Error::Spec(format!("linux.resources.unified misc.max {line:?}: bad count {v:?}")));
        }
        if !known.contains(&name) {
            return Err(Error::Spec(format!(
                "linux.resources.unified misc.max: this host has no misc resource {name:?} (has: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
    }
    Ok(())
}
