//! Image names: parsing, docker.io normalisation (`busybox` → `docker.io/library/busybox:latest`).

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid image reference {0:?}: {1}")]
    Invalid(String, &'static str),
}

/// A parsed image reference. `registry` is empty for a short (unqualified) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fn valid_repo(r: &str) -> bool {
    !r.is_empty()
        && r.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        })
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_registry(r: &str) -> bool {
    !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl ImageName {
    pub fn parse(s: &str) -> Result<ImageName, ReferenceError> {
        let err = |m| ReferenceError::Invalid(s.to_string(), m);
        if s.is_empty() {
            return Err(err("empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(err("digest must be sha256:<64 lowercase hex>"));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(err("invalid tag"));
                }
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, repo)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), repo.to_string())
            }
            _ => (String::new(), name.to_string()),
        };
        if !registry.is_empty() && !valid_registry(&registry) {
            return Err(err("invalid registry host"));
        }
        if !valid_repo(&repository) {
            return Err(err("invalid repository name (lowercase letters, digits, . _ - and /)"));
        }
        let mut n = ImageName { registry, repository, tag, digest };
        if n.tag.is_none() && n.digest.is_none() {
            n.tag = Some("latest".into());
        }
        if n.registry == "docker.io" && !n.repository.contains('/') {
            n.repository = format!("library/{}", n.repository);
        }
        Ok(n)
    }

    pub fn is_short(&self) -> bool {
        self.registry.is_empty()
    }

    /// This short name qualified with a search registry.
    pub fn qualify(&self, registry: &str) -> ImageName {
        let mut n = self.clone();
        n.registry = registry.to_string();
        if registry == "docker.io" && !n.repository.contains('/') {
            n.repository = format!("library/{}", n.repository);
        }
        n
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        if self.registry.is_empty() {
            self.repository.clone()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// `registry/repository:tag`, if tagged.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{}", self.name(), t))
    }

    /// `registry/repository@digest`, for a given digest.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{}", self.name(), digest)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let n = ImageName::parse("busybox").unwrap();
        assert!(n.is_short());
        assert_eq!(n.qualify("docker.io").to_string(), "docker.io/library/busybox:latest");
        let n = ImageName::parse("docker.io/busybox:1.36").unwrap();
        assert_eq!(n.to_string(), "docker.io/library/busybox:1.36");
        let n = ImageName::parse("127.0.0.1:5000/a/b@sha256:".to_string().as_str());
        assert!(n.is_err());
        let d = format!("sha256:{}", "a".repeat(64));
        let n = ImageName::parse(&format!("localhost:5000/a/b@{d}")).unwrap();
        assert_eq!(n.registry, "localhost:5000");
        assert_eq!(n.digest.as_deref(), Some(d.as_str()));
        assert!(ImageName::parse("UPPER/case").is_err());
    }
}
