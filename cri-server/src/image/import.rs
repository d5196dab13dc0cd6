//! Air-gapped import of an OCI archive (oci-layout tar) or a docker-archive (`docker save`)
//! tarball into the store. The archive is itself unpacked with the same hardened unpacker
//! as layers, into the store's tmp/, then every blob is verified as it is ingested.

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::manifest::{self, Descriptor, Parsed};
use super::reference::ImageName;
use super::store::{ImageRecord, LayerRef, Store, StoreError};
use super::unpack::{self, UnpackOptions};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("archive {file}: {message}")]
    Format { file: String, message: String },
    #[error("archive {file}: {source}")]
    Extract { file: String, source: unpack::UnpackError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Reference(#[from] super::reference::ReferenceError),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Imports every image of the archive; `name` names images whose archive has no full name.
pub fn import_archive(store: &Store, file: &Path, name: Option<&str>) -> Result<Vec<ImageRecord>, ImportError> {
    let gc = store.gc_shared()?;
    let tmp = store.tmp_path("import");
    fs::create_dir_all(&tmp).map_err(super::store::ioe(&tmp))?;
    let res = (|| {
        let opts = UnpackOptions { max_size: u64::MAX, allow_devices: false };
        unpack::unpack_layer(file, &tmp, opts).map_err(|e| ImportError::Extract { file: file.display().to_string(), source: e })?;
        if tmp.join("index.json").is_file() {
            import_oci(store, file, &tmp, name)
        } else if tmp.join("manifest.json").is_file() {
            import_docker(store, file, &tmp, name)
        } else {
            Err(ImportError::Format {
                file: file.display().to_string(),
                message: "neither an OCI layout (index.json) nor a docker archive (manifest.json)".into(),
            })
        }
    })();
    drop(gc);
    let _ = fs::remove_dir_all(&tmp);
    // Whatever a failed import stored that no image references is collected (now, or by
    // the last pull/import to end); a collection left pending by others runs too.
    if let Err(e) = store.collect_when_idle(res.is_err()) {
        tracing::warn!(error = %e, "collecting garbage after import");
    }
    res
}

fn fmt_err(file: &Path, message: impl Into<String>) -> ImportError {
    ImportError::Format { file: file.display().to_string(), message: message.into() }
}

/// A path named inside the archive, kept inside the extracted directory.
fn inside(file: &Path, dir: &Path, rel: &str) -> Result<PathBuf, ImportError> {
    let p = Path::new(rel);
    if p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(fmt_err(file, format!("path {rel:?} leaves the archive")));
    }
    let full = dir.join(p);
    let canon = full.canonicalize().map_err(|e| fmt_err(file, format!("{rel}: {e}")))?;
    let root = dir.canonicalize().map_err(|e| fmt_err(file, e.to_string()))?;
    if !canon.starts_with(&root) || !canon.is_file() {
        return Err(fmt_err(file, format!("path {rel:?} is not a file inside the archive")));
    }
    Ok(canon)
}

fn blob_in(file: &Path, dir: &Path, digest: &str) -> Result<PathBuf, ImportError> {
    let hex = super::store::hex_of(digest)?;
    inside(file, dir, &format!("blobs/sha256/{hex}"))
}

fn normalise(n: &str) -> Result<String, ImportError> {
    let parsed = ImageName::parse(n)?;
    let q = if parsed.is_short() { parsed.qualify("docker.io") } else { parsed };
    Ok(q.to_string())
}

fn layer_refs(store: &Store, blobs: Vec<(PathBuf, Option<String>)>, diff_ids: &[String]) -> Result<Vec<LayerRef>, ImportError> {
    let mut out = Vec::new();
    for ((path, digest), diff_id) in blobs.into_iter().zip(diff_ids) {
        let d = store.ingest_file(&path, digest.as_deref())?;
        out.push(store.unpack(&d, Some(diff_id))?);
    }
    Ok(out)
}

fn import_oci(store: &Store, file: &Path, dir: &Path, name: Option<&str>) -> Result<Vec<ImageRecord>, ImportError> {
    let index = fs::read(dir.join("index.json")).map_err(|e| fmt_err(file, e.to_string()))?;
    let Parsed::Index(entries) = manifest::parse(&index, &[manifest::OCI_INDEX])? else {
        return Err(fmt_err(file, "index.json is not an image index"));
    };
    let mut out = Vec::new();
    for top in entries {
        let ann = top.annotations.clone().unwrap_or_default();
        let ref_name = ann.get("io.containerd.image.name").or_else(|| ann.get("org.opencontainers.image.ref.name")).cloned();
        let tag = match (ref_name, name) {
            (Some(r), _) if r.contains('/') || r.contains(':') && !r.starts_with(':') => Some(normalise(&r)?),
            (Some(t), Some(n)) => Some(normalise(&format!("{n}:{t}"))?),
            (None, Some(n)) => Some(normalise(n)?),
            (Some(_), None) | (None, None) => None,
        };
        let top_path = blob_in(file, dir, &top.digest)?;
        let top_digest = store.ingest_file(&top_path, Some(&top.digest))?;
        let body = store.read_blob(&top_digest)?;
        let (mdesc, mbody) = match manifest::parse(&body, &[&top.media_type])? {
            Parsed::Manifest { .. } => (top.clone(), body),
            Parsed::Index(sub) => {
                let e: Descriptor = manifest::pick_platform(&sub)?.clone();
                let p = blob_in(file, dir, &e.digest)?;
                let d = store.ingest_file(&p, Some(&e.digest))?;
                (e, store.read_blob(&d)?)
            }
        };
        let Parsed::Manifest { config, layers } = manifest::parse(&mbody, &[&mdesc.media_type])? else {
            return Err(fmt_err(file, "nested image index"));
        };
        let cpath = blob_in(file, dir, &config.digest)?;
        let cd = store.ingest_file(&cpath, Some(&config.digest))?;
        let info = manifest::parse_config(&store.read_blob(&cd)?, layers.len())?;
        let mut blobs = Vec::new();
        for l in &layers {
            blobs.push((blob_in(file, dir, &l.digest)?, Some(l.digest.clone())));
        }
        let refs = layer_refs(store, blobs, &info.diff_ids)?;
        let repo_digests = match &tag {
            Some(t) => vec![ImageName::parse(t)?.with_digest(&top_digest)],
            None => vec![],
        };
        let rec = ImageRecord {
            id: cd,
            repo_tags: tag.into_iter().collect(),
            repo_digests,
            manifest_digest: mdesc.digest.clone(),
            size: refs.iter().map(|l| l.size).sum(),
            layers: refs,
            user: info.user,
            source: format!("oci-archive:{}", file.display()),
            created: 0,
        };
        out.push(store.put_image(rec)?);
    }
    Ok(out)
}

fn import_docker(store: &Store, file: &Path, dir: &Path, name: Option<&str>) -> Result<Vec<ImageRecord>, ImportError> {
    let text = fs::read(dir.join("manifest.json")).map_err(|e| fmt_err(file, e.to_string()))?;
    let entries: Vec<DockerEntry> = serde_json::from_slice(&text).map_err(|e| fmt_err(file, format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let cpath = inside(file, dir, &e.config)?;
        let cd = store.ingest_file(&cpath, None)?;
        let cbody = store.read_blob(&cd)?;
        let info = manifest::parse_config(&cbody, e.layers.len())?;
        let mut blobs = Vec::new();
        for l in &e.layers {
            blobs.push((inside(file, dir, l)?, None));
        }
        let refs = layer_refs(store, blobs, &info.diff_ids)?;
        // A synthesised OCI manifest, so every image in the store has one.
        let mut layer_descs = Vec::new();
        for l in &refs {
            let size = fs::metadata(store.blob_path(&l.digest)?).map(|m| m.len()).unwrap_or(0);
            // Only the magic bytes are needed to name the compression.
            let mut head = Vec::with_capacity(4);
            if let Ok(f) = fs::File::open(store.blob_path(&l.digest)?) {
                use std::io::Read;
                let _ = f.take(4).read_to_end(&mut head);
            }
            let mt = match unpack::sniff(&head) {
                unpack::Compression::Gzip => format!("{}+gzip", manifest::OCI_LAYER_TAR),
                unpack::Compression::Zstd => format!("{}+zstd", manifest::OCI_LAYER_TAR),
                unpack::Compression::None => manifest::OCI_LAYER_TAR.to_string(),
            };
            layer_descs.push(serde_json::json!({"mediaType": mt, "digest": l.digest, "size": size}));
        }
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": {"mediaType": manifest::OCI_CONFIG, "digest": cd, "size": cbody.len()},
            "layers": layer_descs,
        });
        let md = store.put_bytes(&serde_json::to_vec(&m).unwrap_or_default())?;
        let mut tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            tags.push(normalise(&t)?);
        }
        if tags.is_empty() {
            if let Some(n) = name {
                tags.push(normalise(n)?);
            }
        }
        let rec = ImageRecord {
            id: cd,
            repo_tags: tags,
            repo_digests: vec![],
            manifest_digest: md,
            size: refs.iter().map(|l| l.size).sum(),
            layers: refs,
            user: info.user,
            source: format!("docker-archive:{}", file.display()),
            created: 0,
        };
        out.push(store.put_image(rec)?);
    }
    Ok(out)
}
