//! Manifest, index and image-config documents (docker v2 schema 2 and OCI).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

pub const ACCEPT: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid manifest JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported manifest media type {0:?} (docker schema 1 is not supported)")]
    MediaType(String),
    #[error("no manifest for linux/{0} in the image index")]
    NoPlatform(String),
    #[error("image config lists {diff_ids} diff_ids but the manifest has {layers} layers")]
    LayerCount { diff_ids: usize, layers: usize },
    #[error("invalid digest {0:?} in manifest")]
    Digest(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

pub enum Parsed {
    Index(Vec<Descriptor>),
    Manifest { config: Descriptor, layers: Vec<Descriptor> },
}

fn check(d: &Descriptor) -> Result<(), ManifestError> {
    if super::reference::valid_digest(&d.digest) && d.size >= 0 {
        Ok(())
    } else {
        Err(ManifestError::Digest(d.digest.clone()))
    }
}

/// Parses a manifest or index; `content_type` is the HTTP Content-Type when known.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Parsed, ManifestError> {
    let raw: Raw = serde_json::from_slice(body)?;
    let mt = raw
        .media_type
        .clone()
        .or_else(|| content_type.map(str::to_string))
        .unwrap_or_default();
    if raw.schema_version != Some(2) {
        return Err(ManifestError::MediaType(format!("{mt} (schemaVersion {:?})", raw.schema_version)));
    }
    if let Some(m) = raw.manifests {
        if !(mt.is_empty() || mt == OCI_INDEX || mt == DOCKER_LIST) {
            return Err(ManifestError::MediaType(mt));
        }
        m.iter().try_for_each(check)?;
        return Ok(Parsed::Index(m));
    }
    match (raw.config, raw.layers) {
        (Some(config), Some(layers)) if mt.is_empty() || mt == OCI_MANIFEST || mt == DOCKER_MANIFEST => {
            check(&config)?;
            layers.iter().try_for_each(check)?;
            Ok(Parsed::Manifest { config, layers })
        }
        _ => Err(ManifestError::MediaType(mt)),
    }
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The index entry for the host platform (linux/<host arch>).
pub fn pick_platform(entries: &[Descriptor]) -> Result<&Descriptor, ManifestError> {
    let arch = host_arch();
    entries
        .iter()
        .find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                && (e.media_type.is_empty() || e.media_type == OCI_MANIFEST || e.media_type == DOCKER_MANIFEST)
        })
        .ok_or_else(|| ManifestError::NoPlatform(arch.into()))
}

#[derive(Debug, Deserialize, Default)]
struct RawConfig {
    #[serde(default)]
    config: Option<RawRunConfig>,
    #[serde(default)]
    rootfs: Option<RawRootfs>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawRunConfig {
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct RawRootfs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

pub struct ConfigInfo {
    pub diff_ids: Vec<String>,
    pub user: Option<String>,
}

pub fn parse_config(body: &[u8], layers: usize) -> Result<ConfigInfo, ManifestError> {
    let raw: RawConfig = serde_json::from_slice(body)?;
    let diff_ids = raw.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    if diff_ids.len() != layers {
        return Err(ManifestError::LayerCount {
            diff_ids: diff_ids.len(),
            layers,
        });
    }
    for d in &diff_ids {
        if !super::reference::valid_digest(d) {
            return Err(ManifestError::Digest(d.clone()));
        }
    }
    Ok(ConfigInfo {
        diff_ids,
        user: raw.config.and_then(|c| c.user).filter(|u| !u.is_empty()),
    })
}
