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
    #[error("ambiguous manifest refused: {0}")]
    Ambiguous(String),
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

/// Presence of the fields that tell manifests and indexes apart (`null` counts as present:
/// a second reader might treat it differently).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    config: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    layers: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    manifests: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    fs_layers: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
struct RawIndex {
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct RawManifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
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

/// The manifest media types a declaration can name (schema 1 included, to notice conflicts).
const MANIFEST_TYPES: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_LIST,
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

fn is_index_type(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

/// A declared type without parameters (`; charset=utf-8`), lowercased; `None` when it says
/// nothing about manifests (empty, `application/json`, `application/octet-stream`, ...).
fn manifest_type(declared: &str) -> Option<String> {
    let t = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    MANIFEST_TYPES.contains(&t.as_str()).then_some(t)
}

/// Parses a manifest or index. `declared` are the types given for it from outside (the HTTP
/// Content-Type, the mediaType of the descriptor that pointed at it); empty strings and
/// non-manifest types are ignored.
///
/// Ambiguous documents are refused (the class of CVE-2021-41190: two readers must never see
/// two different images behind one digest): the `mediaType` field and every declared type
/// must agree, and the structure must fit that type — an index has `manifests` and neither
/// `config` nor `layers`, a manifest has `config` and `layers` and no `manifests`; `fsLayers`
/// (schema 1) never goes with either.
pub fn parse(body: &[u8], declared: &[&str]) -> Result<Parsed, ManifestError> {
    let shape: Shape = serde_json::from_slice(body)?;
    let mut kinds: Vec<String> = Vec::new();
    if let Some(mt) = shape.media_type.as_deref().filter(|m| !m.is_empty()) {
        // The document's own field must be a type we know; anything else is refused below.
        kinds.push(mt.to_string());
    }
    kinds.extend(declared.iter().filter_map(|d| manifest_type(d)));
    if let Some(other) = kinds.iter().find(|k| **k != kinds[0]) {
        return Err(ManifestError::Ambiguous(format!(
            "it is declared both {:?} and {other:?} (mediaType field, Content-Type and descriptor must agree)",
            kinds[0]
        )));
    }
    let (has_config, has_layers, has_manifests) = (shape.config.is_some(), shape.layers.is_some(), shape.manifests.is_some());
    if has_manifests && (has_layers || has_config) {
        return Err(ManifestError::Ambiguous("it has both `manifests` (an index) and `config`/`layers` (an image manifest)".into()));
    }
    if shape.fs_layers.is_some() && (has_manifests || has_layers || has_config) {
        return Err(ManifestError::Ambiguous("it has both schema 1 `fsLayers` and schema 2 fields".into()));
    }
    let mt = kinds.first().cloned().unwrap_or_default();
    if shape.schema_version != Some(2) {
        return Err(ManifestError::MediaType(format!("{mt} (schemaVersion {:?})", shape.schema_version)));
    }
    if has_manifests {
        if !(mt.is_empty() || is_index_type(&mt)) {
            return Err(ManifestError::Ambiguous(format!("it is declared {mt:?} but has the structure of an index")));
        }
        let raw: RawIndex = serde_json::from_slice(body)?;
        raw.manifests.iter().try_for_each(check)?;
        return Ok(Parsed::Index(raw.manifests));
    }
    if !(has_config && has_layers) || !(mt.is_empty() || mt == OCI_MANIFEST || mt == DOCKER_MANIFEST) {
        if MANIFEST_TYPES.contains(&mt.as_str()) {
            return Err(ManifestError::Ambiguous(format!(
                "it is declared {mt:?} but its structure (config: {has_config}, layers: {has_layers}, manifests: false) is not that"
            )));
        }
        return Err(ManifestError::MediaType(mt));
    }
    let raw: RawManifest = serde_json::from_slice(body)?;
    check(&raw.config)?;
    raw.layers.iter().try_for_each(check)?;
    Ok(Parsed::Manifest { config: raw.config, layers: raw.layers })
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
            e.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch)
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
        return Err(ManifestError::LayerCount { diff_ids: diff_ids.len(), layers });
    }
    for d in &diff_ids {
        if !super::reference::valid_digest(d) {
            return Err(ManifestError::Digest(d.clone()));
        }
    }
    Ok(ConfigInfo { diff_ids, user: raw.config.and_then(|c| c.user).filter(|u| !u.is_empty()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn desc(mt: &str) -> serde_json::Value {
        serde_json::json!({"mediaType": mt, "digest": D, "size": 2})
    }

    fn manifest(mt: Option<&str>) -> serde_json::Value {
        let mut m = serde_json::json!({"schemaVersion": 2, "config": desc(OCI_CONFIG), "layers": [desc(OCI_LAYER_TAR)]});
        if let Some(mt) = mt {
            m["mediaType"] = mt.into();
        }
        m
    }

    fn index(mt: Option<&str>) -> serde_json::Value {
        let mut m = serde_json::json!({"schemaVersion": 2, "manifests": [desc(OCI_MANIFEST)]});
        if let Some(mt) = mt {
            m["mediaType"] = mt.into();
        }
        m
    }

    fn run(v: &serde_json::Value, declared: &[&str]) -> Result<Parsed, ManifestError> {
        parse(&serde_json::to_vec(v).unwrap(), declared)
    }

    fn ambiguous(r: Result<Parsed, ManifestError>) -> bool {
        matches!(r, Err(ManifestError::Ambiguous(_)))
    }

    #[test]
    fn unambiguous_documents_parse() {
        assert!(matches!(run(&manifest(Some(OCI_MANIFEST)), &[OCI_MANIFEST]), Ok(Parsed::Manifest { .. })));
        assert!(matches!(run(&manifest(None), &[DOCKER_MANIFEST]), Ok(Parsed::Manifest { .. })));
        assert!(matches!(run(&manifest(None), &[]), Ok(Parsed::Manifest { .. })));
        assert!(matches!(run(&index(Some(OCI_INDEX)), &["application/vnd.oci.image.index.v1+json; charset=utf-8"]), Ok(Parsed::Index(_))));
        assert!(matches!(run(&index(None), &[DOCKER_LIST, ""]), Ok(Parsed::Index(_))));
        // A generic Content-Type says nothing about the document.
        assert!(matches!(run(&manifest(Some(OCI_MANIFEST)), &["application/json"]), Ok(Parsed::Manifest { .. })));
    }

    #[test]
    fn structure_conflicts_are_refused() {
        let mut both = index(Some(OCI_INDEX));
        both["layers"] = serde_json::json!([desc(OCI_LAYER_TAR)]);
        assert!(ambiguous(run(&both, &[OCI_INDEX])));
        let mut both = manifest(Some(OCI_MANIFEST));
        both["manifests"] = serde_json::json!([desc(OCI_MANIFEST)]);
        assert!(ambiguous(run(&both, &[])));
        let mut cfg_in_index = index(None);
        cfg_in_index["config"] = desc(OCI_CONFIG);
        assert!(ambiguous(run(&cfg_in_index, &[])));
        // Even a null field is a field another reader may look at.
        let mut null_layers = index(None);
        null_layers["layers"] = serde_json::Value::Null;
        assert!(ambiguous(run(&null_layers, &[])));
        let mut schema1 = manifest(None);
        schema1["fsLayers"] = serde_json::json!([]);
        assert!(ambiguous(run(&schema1, &[])));
    }

    #[test]
    fn declared_type_conflicts_are_refused() {
        // mediaType field vs Content-Type.
        assert!(ambiguous(run(&manifest(Some(OCI_MANIFEST)), &[OCI_INDEX])));
        assert!(ambiguous(run(&manifest(Some(OCI_MANIFEST)), &[DOCKER_MANIFEST])));
        // Content-Type vs the descriptor that pointed at it.
        assert!(ambiguous(run(&manifest(None), &[OCI_MANIFEST, DOCKER_MANIFEST])));
        // Declared type vs structure.
        assert!(ambiguous(run(&manifest(Some(OCI_INDEX)), &[])));
        assert!(ambiguous(run(&index(Some(OCI_MANIFEST)), &[])));
        assert!(ambiguous(run(&index(None), &[OCI_MANIFEST])));
        assert!(ambiguous(run(&manifest(None), &["application/vnd.docker.distribution.manifest.v1+prettyjws"])));
        // Unknown own media type: refused as unsupported.
        assert!(matches!(run(&manifest(Some("application/x-other")), &[]), Err(ManifestError::MediaType(_))));
    }
}
