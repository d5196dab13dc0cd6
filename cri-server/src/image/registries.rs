//! containers-registries.conf(5) v2 (as used by CRI-O and podman): `[[registry]]` with prefix,
//! location, insecure, blocked and `[[registry.mirror]]`; `unqualified-search-registries`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::reference::ImageName;

#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error("registries file {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("registries file {file}: key `{key}`: {message}")]
    Invalid { file: PathBuf, key: String, message: String },
    #[error("image {0}: registry is blocked by registries configuration")]
    Blocked(String),
    #[error("short name {0:?} cannot be resolved: no unqualified-search-registries configured")]
    NoSearchRegistries(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    unqualified_search_registries: Option<Vec<String>>,
    /// Accepted for compatibility; berth never prompts, short names are tried in order.
    short_name_mode: Option<String>,
    credential_helpers: Option<Vec<String>>,
    #[serde(default)]
    registry: Vec<RawRegistry>,
    aliases: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRegistry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
    /// "all" (default), "digest-only" or "tag-only".
    pub pull_from_mirror: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Registry {
    pub prefix: String,
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Mirror>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Registries {
    pub unqualified_search_registries: Vec<String>,
    pub registries: Vec<Registry>,
    pub aliases: std::collections::BTreeMap<String, String>,
}

impl Default for Registries {
    fn default() -> Self {
        Registries { unqualified_search_registries: vec!["docker.io".into()], registries: Vec::new(), aliases: Default::default() }
    }
}

/// Where to fetch an image from: `registry` host[:port] + `repository` on that host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub registry: String,
    pub repository: String,
    pub insecure: bool,
    pub mirror: bool,
}

/// One fully qualified candidate name with the endpoints to try for it, in order.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: ImageName,
    pub endpoints: Vec<Endpoint>,
}

fn prefix_matches(prefix: &str, name: &str) -> bool {
    if prefix.starts_with("*.") {
        let host = name.split('/').next().unwrap_or("");
        return host.ends_with(&prefix[1..]);
    }
    name == prefix || (name.starts_with(prefix) && matches!(name.as_bytes()[prefix.len()], b'/' | b':' | b'@'))
}

fn split_location(loc: &str) -> (String, String) {
    match loc.split_once('/') {
        Some((h, r)) => (h.to_string(), r.to_string()),
        None => (loc.to_string(), String::new()),
    }
}

impl Registries {
    /// Loads the main file (missing = defaults) and drop-ins in name order.
    pub fn load(file: &Path, dir: &Path) -> Result<Registries, RegistriesError> {
        let mut regs = Registries::default();
        let mut files = vec![file.to_path_buf()];
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "conf")).collect();
            more.sort();
            files.extend(more);
        }
        for f in files {
            let text = match std::fs::read_to_string(&f) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(RegistriesError::Read { file: f, source: e }),
            };
            regs.apply(&f, &text)?;
        }
        Ok(regs)
    }

    fn apply(&mut self, file: &Path, text: &str) -> Result<(), RegistriesError> {
        let raw: RawFile = serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| RegistriesError::Invalid {
            file: file.to_path_buf(),
            key: e.path().to_string(),
            message: e.inner().message().to_string(),
        })?;
        let _ = (&raw.short_name_mode, &raw.credential_helpers);
        if let Some(u) = raw.unqualified_search_registries {
            self.unqualified_search_registries = u;
        }
        if let Some(a) = raw.aliases {
            self.aliases.extend(a);
        }
        for (i, r) in raw.registry.into_iter().enumerate() {
            let bad = |key: &str, message: String| RegistriesError::Invalid {
                file: file.to_path_buf(),
                key: format!("registry[{i}].{key}"),
                message,
            };
            let prefix = match (&r.prefix, &r.location) {
                (Some(p), _) => p.clone(),
                (None, Some(l)) => l.clone(),
                (None, None) => return Err(bad("location", "prefix or location is required".into())),
            };
            let location = r.location.clone().unwrap_or_else(|| prefix.clone());
            if prefix.starts_with("*.") && r.location.is_some() {
                return Err(bad("location", "must be empty for a wildcard prefix".into()));
            }
            let mut mirrors = Vec::new();
            for (j, m) in r.mirror.iter().enumerate() {
                let pfm = m.pull_from_mirror.clone().unwrap_or_else(|| "all".into());
                if !["all", "digest-only", "tag-only"].contains(&pfm.as_str()) {
                    return Err(bad(
                        &format!("mirror[{j}].pull-from-mirror"),
                        format!("invalid value {pfm:?}, expected all, digest-only or tag-only"),
                    ));
                }
                if m.location.is_empty() {
                    return Err(bad(&format!("mirror[{j}].location"), "must not be empty".into()));
                }
                mirrors.push(Mirror { location: m.location.clone(), insecure: m.insecure, pull_from_mirror: pfm });
            }
            let reg = Registry {
                prefix: prefix.clone(),
                location,
                insecure: r.insecure,
                blocked: r.blocked,
                mirror_by_digest_only: r.mirror_by_digest_only,
                mirrors,
            };
            // A drop-in redefining a prefix replaces the earlier definition.
            self.registries.retain(|x| x.prefix != prefix);
            self.registries.push(reg);
        }
        Ok(())
    }

    /// The registry entry with the longest matching prefix.
    pub fn find(&self, name: &str) -> Option<&Registry> {
        self.registries.iter().filter(|r| prefix_matches(&r.prefix, name)).max_by_key(|r| r.prefix.len())
    }

    /// Every candidate for an image reference (several for a short name), with endpoints.
    pub fn resolve(&self, image: &str) -> Result<Vec<Candidate>, Box<dyn std::error::Error + Send + Sync>> {
        let parsed = ImageName::parse(image)?;
        let names = if parsed.is_short() {
            if let Some(target) = self.aliases.get(&parsed.repository) {
                let mut n = ImageName::parse(target)?;
                if parsed.digest.is_some() || parsed.tag.as_deref() != Some("latest") || n.tag.is_none() {
                    n.tag = parsed.tag.clone();
                    n.digest = parsed.digest.clone();
                }
                vec![n]
            } else {
                if self.unqualified_search_registries.is_empty() {
                    return Err(Box::new(RegistriesError::NoSearchRegistries(image.into())));
                }
                self.unqualified_search_registries.iter().map(|r| parsed.qualify(r)).collect()
            }
        } else {
            vec![parsed]
        };
        let mut out = Vec::new();
        let mut blocked = None;
        for n in names {
            match self.endpoints(&n) {
                Ok(eps) => out.push(Candidate { name: n, endpoints: eps }),
                Err(e) => blocked = Some(e),
            }
        }
        if out.is_empty() {
            if let Some(e) = blocked {
                return Err(Box::new(e));
            }
        }
        Ok(out)
    }

    /// Endpoints for one fully qualified name: mirrors first, then the registry itself.
    pub fn endpoints(&self, n: &ImageName) -> Result<Vec<Endpoint>, RegistriesError> {
        let full = n.name();
        let Some(reg) = self.find(&full) else {
            let (registry, repository) = split_location(&full);
            return Ok(vec![Endpoint { registry, repository, insecure: false, mirror: false }]);
        };
        if reg.blocked {
            return Err(RegistriesError::Blocked(n.to_string()));
        }
        let rewrite = |location: &str| -> (String, String) {
            if reg.prefix.starts_with("*.") {
                split_location(&full)
            } else {
                split_location(&format!("{}{}", location, &full[reg.prefix.len()..]))
            }
        };
        let by_digest = n.digest.is_some();
        let mut eps = Vec::new();
        for m in &reg.mirrors {
            let allowed = match m.pull_from_mirror.as_str() {
                "digest-only" => by_digest,
                "tag-only" => !by_digest,
                _ => !reg.mirror_by_digest_only || by_digest,
            };
            if allowed {
                let (registry, repository) = rewrite(&m.location);
                eps.push(Endpoint { registry, repository, insecure: m.insecure, mirror: true });
            }
        }
        let (registry, repository) = rewrite(&reg.location);
        eps.push(Endpoint { registry, repository, insecure: reg.insecure, mirror: false });
        Ok(eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_and_prefix() {
        let mut r = Registries::default();
        r.apply(
            Path::new("t.conf"),
            r#"
unqualified-search-registries = ["example.invalid"]
[[registry]]
prefix = "example.invalid/lib"
location = "example.invalid/library"
[[registry.mirror]]
location = "127.0.0.1:5000/mirror"
insecure = true
"#,
        )
        .unwrap();
        let c = r.resolve("example.invalid/lib/busybox:1").unwrap();
        assert_eq!(c[0].endpoints.len(), 2);
        assert_eq!(c[0].endpoints[0].registry, "127.0.0.1:5000");
        assert_eq!(c[0].endpoints[0].repository, "mirror/busybox");
        assert!(c[0].endpoints[0].insecure);
        assert_eq!(c[0].endpoints[1].repository, "library/busybox");
        assert!(!c[0].endpoints[1].insecure);
        // prefix must match at a component boundary
        assert_eq!(r.resolve("example.invalid/libx/a").unwrap()[0].endpoints.len(), 1);
        let e = r.apply(Path::new("bad.conf"), "[[registry]]\nlocation = \"a\"\nbogus = 1\n");
        assert!(e.unwrap_err().to_string().contains("bogus"));
    }

    #[test]
    fn short_names_and_blocked() {
        let mut r = Registries::default();
        let c = r.resolve("busybox").unwrap();
        assert_eq!(c[0].name.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(c[0].endpoints[0].registry, "docker.io");
        r.apply(
            Path::new("t.conf"),
            "unqualified-search-registries = [\"a.example\", \"b.example\"]\n[[registry]]\nlocation = \"a.example\"\nblocked = true\n",
        )
        .unwrap();
        // a.example is blocked: the short name resolves to b.example only.
        let c = r.resolve("tool:1").unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name.to_string(), "b.example/tool:1");
        let e = r.resolve("a.example/tool:1").unwrap_err();
        assert!(e.to_string().contains("blocked"), "{e}");
    }
}
