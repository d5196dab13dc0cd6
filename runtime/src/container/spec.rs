//! `berth spec`: a starting config.json, like `runc spec`.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::Spec;
use std::path::Path;

pub fn default_spec(rootless: bool) -> Spec {
    let mut spec =
        if rootless { Spec::rootless(nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw()) } else { Spec::default() };
    spec.set_hostname(Some("berth".into()));
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
    }
    spec
}

/// Writes `<bundle>/config.json`, refusing to overwrite one.
pub fn write(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::Spec(format!("{} exists: remove it first", path.display())));
    }
    let json = serde_json::to_string_pretty(&default_spec(rootless)).expect("spec serializes");
    std::fs::write(&path, json + "\n").with_ctx(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_spec_maps_current_user() {
        let s = default_spec(true);
        let linux = s.linux().as_ref().unwrap();
        assert!(linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()));
        assert!(linux.namespaces().as_ref().unwrap().iter().any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User));
    }
}
