//! The content-addressed image store.
//!
//! ```text
//! <root>/blobs/sha256/<hex>        verified blobs (manifests, configs, compressed layers)
//! <root>/layers/<hex>/diff/        a layer unpacked once, keyed by its blob digest
//! <root>/layers/<hex>/layer.json   {diff_id, size}
//! <root>/images/<hex>.json         image records (id = config digest), written last
//! <root>/containers/<id>/          container rootfs (upper, work, merged) + `image` ref
//! <root>/tmp/                      in-progress downloads/unpacks; emptied on open
//! <root>/gc.lock, meta.lock        flock(2) locks shared by the daemon and the CLI
//! ```
//! Everything becomes visible by `rename(2)` of a fsynced temp file or directory, so a crash
//! leaves only garbage in `tmp/`, never a partial blob, layer or image.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::reference::valid_digest;
use super::unpack::{self, UnpackError, UnpackOptions, Unpacked};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("image store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("invalid digest {0:?}")]
    BadDigest(String),
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error("image {image} is in use by container(s) {containers}")]
    InUse { image: String, containers: String },
    #[error("container {0:?} already has a rootfs")]
    RootfsExists(String),
    #[error("invalid container id {0:?}")]
    BadContainerId(String),
    #[error("corrupt store record {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("unpacking layer {digest}: {source}")]
    Unpack {
        digest: String,
        #[source]
        source: UnpackError,
    },
    #[error("layer {digest}: diff_id {actual} does not match the image config's {expected}")]
    DiffIdMismatch { digest: String, expected: String, actual: String },
    #[error("mounting rootfs of {container}: {source}")]
    Mount { container: String, source: io::Error },
}

pub(crate) fn ioe(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerRef {
    /// Digest of the blob as stored (compressed, or plain tar).
    pub digest: String,
    pub diff_id: String,
    /// Uncompressed size.
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Image id: the config digest `sha256:<hex>`.
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub manifest_digest: String,
    pub layers: Vec<LayerRef>,
    /// Sum of the uncompressed layer sizes.
    pub size: u64,
    /// Config `User`, if any.
    pub user: Option<String>,
    /// Where it came from (registry endpoint or archive), for ImageStatus verbose info.
    pub source: String,
    /// Unix seconds when stored.
    pub created: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct LayerMeta {
    diff_id: String,
    size: u64,
}

pub struct Store {
    root: PathBuf,
    pub(crate) opts: UnpackOptions,
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    counter: AtomicU64,
}

/// An flock(2) held until dropped.
pub struct FileLock(#[allow(dead_code)] File);

pub fn flock(path: &Path, exclusive: bool, nonblock: bool) -> io::Result<FileLock> {
    let f = fs::OpenOptions::new().create(true).truncate(false).write(true).read(true).open(path)?;
    let mut op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
    if nonblock {
        op |= libc::LOCK_NB;
    }
    if crate::sys::flock(f.as_fd(), op) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FileLock(f))
}

pub fn hex_of(digest: &str) -> Result<&str, StoreError> {
    if !valid_digest(digest) {
        return Err(StoreError::BadDigest(digest.to_string()));
    }
    Ok(&digest[7..])
}

pub fn sha256_file(path: &Path) -> Result<String, StoreError> {
    let mut f = File::open(path).map_err(ioe(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(ioe(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(ioe(dir))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub(crate) fn valid_container_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.starts_with('.')
}

impl Store {
    pub fn open(root: &Path, opts: UnpackOptions) -> Result<Store, StoreError> {
        for d in ["blobs/sha256", "layers", "images", "containers", "tmp"] {
            fs::create_dir_all(root.join(d)).map_err(ioe(root.join(d)))?;
        }
        // Searchable, not listable: a user-namespaced container's init (a host uid that owns
        // nothing here) walks to its own `containers/<id>` (0700, owned by it) by name.
        let cdir = root.join("containers");
        fs::set_permissions(&cdir, fs::Permissions::from_mode(0o711)).map_err(ioe(&cdir))?;
        let s = Store { root: root.to_path_buf(), opts, inflight: Mutex::new(HashMap::new()), counter: AtomicU64::new(0) };
        // Leftovers of an interrupted pull/import are removed, unless another process
        // (daemon or CLI) is using the store right now.
        if let Ok(_g) = flock(&root.join("gc.lock"), true, true) {
            if let Ok(rd) = fs::read_dir(root.join("tmp")) {
                for e in rd.flatten() {
                    let p = e.path();
                    let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
                }
            }
        }
        // A collection deferred while the last user of the store was killed.
        if let Err(e) = s.collect_when_idle(false) {
            tracing::warn!(error = %e, "collecting garbage left pending");
        }
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Length of a stored blob, `None` when absent.
    pub fn blob_len(&self, digest: &str) -> Result<Option<u64>, StoreError> {
        let p = self.blob_path(digest)?;
        match fs::metadata(&p) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ioe(p)(e)),
        }
    }

    fn layer_dir(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("layers").join(hex_of(digest)?))
    }

    /// Path of a layer's unpacked tree (a lowerdir).
    pub fn layer_diff(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.layer_dir(digest)?.join("diff"))
    }

    /// A fresh unique temporary path under `tmp/`.
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{what}-{}-{n}-{}", std::process::id(), now()))
    }

    /// Shared lock held by pulls/imports so garbage collection never sees half-made images.
    pub fn gc_shared(&self) -> Result<FileLock, StoreError> {
        let p = self.root.join("gc.lock");
        flock(&p, false, false).map_err(ioe(p))
    }

    /// The exclusive gc lock if nobody holds gc.lock now (`None` when busy).
    pub(crate) fn try_gc_exclusive(&self) -> Result<Option<FileLock>, StoreError> {
        let p = self.root.join("gc.lock");
        match flock(&p, true, true) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(ioe(p)(e)),
        }
    }

    fn meta_lock(&self) -> Result<FileLock, StoreError> {
        let p = self.root.join("meta.lock");
        flock(&p, true, false).map_err(ioe(p))
    }

    /// Serialises work on one digest within this process (one download/unpack per digest).
    pub async fn digest_lock(&self, digest: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(digest.to_string()).or_default().clone()
        };
        m.lock_owned().await
    }

    /// Publishes a temp file whose content the caller has verified to be `digest`.
    pub fn publish_blob(&self, tmp: &Path, digest: &str) -> Result<(), StoreError> {
        let dst = self.blob_path(digest)?;
        File::open(tmp).and_then(|f| f.sync_all()).map_err(ioe(tmp))?;
        fs::rename(tmp, &dst).map_err(ioe(&dst))?;
        fsync_dir(dst.parent().unwrap_or(&self.root))
    }

    /// Copies a file into the store, checking its digest when one is expected.
    pub fn ingest_file(&self, src: &Path, expected: Option<&str>) -> Result<String, StoreError> {
        let tmp = self.tmp_path("blob");
        let mut h = Sha256::new();
        {
            let mut i = File::open(src).map_err(ioe(src))?;
            let mut o = File::create(&tmp).map_err(ioe(&tmp))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = i.read(&mut buf).map_err(ioe(src))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                o.write_all(&buf[..n]).map_err(ioe(&tmp))?;
            }
        }
        let actual = format!("sha256:{}", hex::encode(h.finalize()));
        if let Some(e) = expected {
            if e != actual {
                let _ = fs::remove_file(&tmp);
                return Err(StoreError::DigestMismatch { what: src.display().to_string(), expected: e.to_string(), actual });
            }
        }
        if self.has_blob(&actual) {
            let _ = fs::remove_file(&tmp);
        } else {
            self.publish_blob(&tmp, &actual)?;
        }
        Ok(actual)
    }

    pub fn put_bytes(&self, data: &[u8]) -> Result<String, StoreError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        if !self.has_blob(&digest) {
            let tmp = self.tmp_path("blob");
            fs::write(&tmp, data).map_err(ioe(&tmp))?;
            self.publish_blob(&tmp, &digest)?;
        }
        Ok(digest)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(ioe(p))
    }

    /// Layer info if this blob is already unpacked.
    pub fn layer(&self, digest: &str) -> Result<Option<LayerRef>, StoreError> {
        let meta = self.layer_dir(digest)?.join("layer.json");
        match fs::read(&meta) {
            Ok(b) => {
                let m: LayerMeta =
                    serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt { path: meta.clone(), message: e.to_string() })?;
                Ok(Some(LayerRef { digest: digest.to_string(), diff_id: m.diff_id, size: m.size }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ioe(meta)(e)),
        }
    }

    /// Unpacks a stored blob once (blocking). `expected_diff_id` is checked when given.
    pub fn unpack(&self, digest: &str, expected_diff_id: Option<&str>) -> Result<LayerRef, StoreError> {
        if let Some(l) = self.layer(digest)? {
            if let Some(e) = expected_diff_id {
                if e != l.diff_id {
                    return Err(StoreError::DiffIdMismatch { digest: digest.into(), expected: e.into(), actual: l.diff_id });
                }
            }
            return Ok(l);
        }
        let blob = self.blob_path(digest)?;
        let tmp = self.tmp_path("layer");
        let diff = tmp.join("diff");
        fs::create_dir_all(&diff).map_err(ioe(&diff))?;
        let res = (|| {
            let Unpacked { diff_id, size } =
                unpack::unpack_layer(&blob, &diff, self.opts).map_err(|e| StoreError::Unpack { digest: digest.to_string(), source: e })?;
            if let Some(e) = expected_diff_id {
                if e != diff_id {
                    return Err(StoreError::DiffIdMismatch { digest: digest.into(), expected: e.into(), actual: diff_id });
                }
            }
            let meta = serde_json::to_vec(&LayerMeta { diff_id: diff_id.clone(), size }).unwrap_or_default();
            let mp = tmp.join("layer.json");
            fs::write(&mp, meta).map_err(ioe(&mp))?;
            File::open(&mp).and_then(|f| f.sync_all()).map_err(ioe(&mp))?;
            let dst = self.layer_dir(digest)?;
            if let Err(e) = fs::rename(&tmp, &dst) {
                // Another process (CLI import vs daemon) published the same layer first.
                if let Some(l) = self.layer(digest)? {
                    let _ = fs::remove_dir_all(&tmp);
                    if l.diff_id == diff_id {
                        return Ok(l);
                    }
                }
                return Err(ioe(&dst)(e));
            }
            fsync_dir(&self.root.join("layers"))?;
            tracing::debug!(digest, diff_id, size, "layer unpacked");
            Ok(LayerRef { digest: digest.to_string(), diff_id, size })
        })();
        if res.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        res
    }

    fn image_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("images").join(format!("{}.json", hex_of(id)?)))
    }

    fn write_record(&self, rec: &ImageRecord) -> Result<(), StoreError> {
        let p = self.image_path(&rec.id)?;
        let tmp = self.tmp_path("image");
        let data = serde_json::to_vec_pretty(rec).unwrap_or_default();
        {
            let mut f = File::create(&tmp).map_err(ioe(&tmp))?;
            f.write_all(&data).and_then(|_| f.sync_all()).map_err(ioe(&tmp))?;
        }
        fs::rename(&tmp, &p).map_err(ioe(&p))?;
        fsync_dir(&self.root.join("images"))
    }

    /// Records an image (last step of a pull/import). Its tags move away from other images;
    /// an existing record with the same id is merged.
    pub fn put_image(&self, mut rec: ImageRecord) -> Result<ImageRecord, StoreError> {
        let _m = self.meta_lock()?;
        rec.created = now();
        for mut other in self.list_images()? {
            if other.id == rec.id {
                for t in other.repo_tags.drain(..) {
                    if !rec.repo_tags.contains(&t) {
                        rec.repo_tags.push(t);
                    }
                }
                for d in other.repo_digests.drain(..) {
                    if !rec.repo_digests.contains(&d) {
                        rec.repo_digests.push(d);
                    }
                }
                continue;
            }
            let before = other.repo_tags.len();
            other.repo_tags.retain(|t| !rec.repo_tags.contains(t));
            if other.repo_tags.len() != before {
                self.write_record(&other)?;
            }
        }
        self.write_record(&rec)?;
        Ok(rec)
    }

    pub fn list_images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(ioe(&dir))? {
            let p = e.map_err(ioe(&dir))?.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let b = match fs::read(&p) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ioe(p)(e)),
            };
            out.push(serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt { path: p.clone(), message: e.to_string() })?);
        }
        out.sort_by(|a: &ImageRecord, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Finds an image by id (`sha256:<hex>`, `<hex>` or a unique prefix of at least 12 hex
    /// digits), by tag or by `name@digest`. `names` are the normalised forms of the reference.
    pub fn find_image(&self, reference: &str, names: &[String]) -> Result<Option<ImageRecord>, StoreError> {
        let imgs = self.list_images()?;
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let m: Vec<&ImageRecord> = imgs.iter().filter(|i| i.id.strip_prefix("sha256:").is_some_and(|h| h.starts_with(hex))).collect();
            if m.len() == 1 {
                return Ok(Some(m[0].clone()));
            }
        }
        for n in names.iter().map(String::as_str).chain(std::iter::once(reference)) {
            if let Some(i) = imgs.iter().find(|i| i.repo_tags.iter().any(|t| t == n) || i.repo_digests.iter().any(|d| d == n)) {
                return Ok(Some(i.clone()));
            }
        }
        Ok(None)
    }

    fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Registers `container_id` as a user of `image_id`: RemoveImage refuses while it exists.
    pub fn add_container_ref(&self, image_id: &str, container_id: &str) -> Result<(), StoreError> {
        if !valid_container_id(container_id) {
            return Err(StoreError::BadContainerId(container_id.into()));
        }
        hex_of(image_id)?;
        let d = self.containers_dir().join(container_id);
        fs::create_dir_all(&d).map_err(ioe(&d))?;
        let tmp = d.join("image.tmp");
        fs::write(&tmp, image_id).map_err(ioe(&tmp))?;
        fs::rename(&tmp, d.join("image")).map_err(ioe(d.join("image")))
    }

    pub fn remove_container_ref(&self, container_id: &str) -> Result<(), StoreError> {
        if !valid_container_id(container_id) {
            return Err(StoreError::BadContainerId(container_id.into()));
        }
        let p = self.containers_dir().join(container_id).join("image");
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ioe(p)(e)),
            _ => Ok(()),
        }
    }

    /// Containers currently using an image.
    pub fn image_users(&self, image_id: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.containers_dir();
        let mut users = Vec::new();
        for e in fs::read_dir(&dir).map_err(ioe(&dir))?.flatten() {
            if let Ok(id) = fs::read_to_string(e.path().join("image")) {
                if id.trim() == image_id {
                    users.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        users.sort();
        Ok(users)
    }

    /// RemoveImage: by id, digest, or its only tag removes the image; by one of several tags
    /// removes just that tag. Refused while a container uses the image.
    /// Returns `Ok(false)` when nothing matched.
    /// Unreferenced blobs and layers are collected at once when no pull or import runs, else
    /// by the last one to end: RemoveImage never waits for a pull.
    pub fn remove_image(&self, reference: &str, names: &[String]) -> Result<bool, StoreError> {
        let removed = self.remove_record(reference, names)?;
        if removed == Some(true) {
            self.collect_when_idle(true)?;
        }
        Ok(removed.is_some())
    }

    /// `None`: nothing matched; `Some(true)`: the record went; `Some(false)`: only untagged.
    fn remove_record(&self, reference: &str, names: &[String]) -> Result<Option<bool>, StoreError> {
        let _m = self.meta_lock()?;
        let Some(mut rec) = self.find_image(reference, names)? else {
            return Ok(None);
        };
        // Removing one tag of an image that has other tags only untags it.
        let tags: Vec<String> =
            names.iter().chain(std::iter::once(&reference.to_string())).filter(|n| rec.repo_tags.contains(n)).cloned().collect();
        if !tags.is_empty() && rec.repo_tags.len() > tags.len() {
            rec.repo_tags.retain(|t| !tags.contains(t));
            self.write_record(&rec)?;
            return Ok(Some(false));
        }
        let users = self.image_users(&rec.id)?;
        if !users.is_empty() {
            return Err(StoreError::InUse { image: rec.id.clone(), containers: users.join(", ") });
        }
        let p = self.image_path(&rec.id)?;
        fs::remove_file(&p).map_err(ioe(&p))?;
        fsync_dir(&self.root.join("images"))?;
        Ok(Some(true))
    }
}
