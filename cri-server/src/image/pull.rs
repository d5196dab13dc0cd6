//! Pulling an image over the OCI distribution protocol (berth's own bounded client,
//! `distribution`), through the mirrors and registries that registries.conf gives, into the
//! store.
//!
//! A registry is held to exact descriptors (every blob exactly its declared size and digest),
//! to the body limits of `[image]`, and to the idle-read timeout. A pull holds no lock anyone
//! waits for across a network wait: downloads of the same blob by concurrent pulls are
//! independent (the first to finish publishes it), only the local unpack of a layer is
//! serialised per digest, and the store's gc lock is held shared — GC and RemoveImage never
//! wait for it, they defer collection to the last pull that ends. A pull that fails or is
//! cancelled (its future dropped: the client's deadline) leaves nothing: its temp file is
//! removed at once, its connections close, and what it stored is collected.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use super::auth::{self, Credentials};
use super::distribution::{DistError, Limits, RegistryClient};
use super::manifest::{self, Descriptor, Parsed};
use super::reference::ImageName;
use super::registries::{Endpoint, Registries};
use super::store::{FileLock, ImageRecord, LayerRef, Store, StoreError};

/// overlayfs stacks at most this many lower layers (`OVL_MAX_STACK` in the kernel); berth's
/// rootfs mount (short relative lowerdir names, see `rootfs.rs`) reaches that limit.
pub const OVERLAY_MAX_LAYERS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Resolve(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Registry(#[from] DistError),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("{what}: the registry {actual} bytes but the descriptor declares {size}")]
    SizeMismatch { what: String, size: u64, actual: String },
    #[error("{what} declares {size} bytes, more than the limit of {limit} bytes (image.{key})")]
    DescriptorTooLarge { what: String, size: u64, limit: u64, key: &'static str },
    #[error("image has {layers} layers, more than the limit of {limit} (image.max_layers; overlayfs stacks at most {OVERLAY_MAX_LAYERS})")]
    TooManyLayers { layers: usize, limit: usize },
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("pulling {image} failed: {}", attempts.join("; "))]
    AllFailed { image: String, attempts: Vec<String> },
    #[error("internal task failure: {0}")]
    Join(String),
}

/// What a pull is held to, from `[image]`.
#[derive(Debug, Clone)]
pub struct PullLimits {
    pub registry: Limits,
    pub max_layers: usize,
}

impl PullLimits {
    pub fn from_config(c: &crate::config::ImageConfig) -> PullLimits {
        PullLimits {
            registry: Limits {
                manifest: c.max_manifest_size,
                config: c.max_config_size,
                error_body: c.max_error_body_size,
                token: c.max_auth_token_size,
                idle: (c.pull_progress_timeout > 0).then(|| Duration::from_secs(c.pull_progress_timeout)),
            },
            max_layers: c.max_layers,
        }
    }
}

pub struct Puller {
    pub store: Arc<Store>,
    pub registries_conf: PathBuf,
    pub registries_conf_dir: PathBuf,
    pub auth_file: PathBuf,
    pub limits: PullLimits,
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, StoreError> + Send + 'static) -> Result<T, PullError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| PullError::Join(e.to_string()))?.map_err(PullError::from)
}

/// A pull's hold on the store. The shared gc lock keeps GC from collecting what the pull has
/// stored but not yet recorded; nobody waits for it (see `Store::collect_when_idle`). Local
/// work running on the blocking pool holds a `work` token, so the end of the session — and
/// its cleanup after a failure or cancellation — comes after that work, never during it.
struct Session {
    store: Arc<Store>,
    lock: Option<FileLock>,
    work: Arc<RwLock<()>>,
    done: bool,
}

impl Session {
    async fn open(store: Arc<Store>) -> Result<Session, PullError> {
        let s = store.clone();
        let lock = blocking(move || s.gc_shared()).await?;
        Ok(Session { store, lock: Some(lock), work: Arc::new(RwLock::new(())), done: false })
    }

    async fn token(&self) -> OwnedRwLockReadGuard<()> {
        self.work.clone().read_owned().await
    }

    /// Runs store work on the blocking pool, holding a work token.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static) -> Result<T, PullError> {
        let token = self.token().await;
        let store = self.store.clone();
        blocking(move || {
            let _token = token;
            f(&store)
        })
        .await
    }

    /// Ends the session once its local work is done; after a failure (`ok == false`) what the
    /// pull stored and no image references is collected (now, or by the last pull to end).
    async fn finish(mut self, ok: bool) {
        let _all = self.work.clone().write_owned().await;
        let lock = self.lock.take();
        self.done = true;
        let store = self.store.clone();
        if let Err(e) = blocking(move || {
            drop(lock);
            store.collect_when_idle(!ok)
        })
        .await
        {
            tracing::warn!(error = %e, "collecting garbage after pull");
        }
    }
}

impl Drop for Session {
    /// A pull dropped mid-way (cancelled by the client or its deadline): the cleanup runs as
    /// soon as the blocking work it started has finished.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let lock = self.lock.take();
        let work = self.work.clone();
        let store = self.store.clone();
        let cleanup = move || {
            drop(lock);
            if let Err(e) = store.collect_when_idle(true) {
                tracing::warn!(error = %e, "collecting garbage after cancelled pull");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    let _all = work.write_owned().await;
                    let _ = tokio::task::spawn_blocking(cleanup).await;
                });
            }
            Err(_) => cleanup(),
        }
    }
}

/// A temp file removed when dropped unless it was published.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Puller {
    pub fn new(store: Arc<Store>, c: &crate::config::ImageConfig) -> Puller {
        Puller {
            store,
            registries_conf: c.registries_conf.clone(),
            registries_conf_dir: c.registries_conf_dir.clone(),
            auth_file: c.auth_file.clone(),
            limits: PullLimits::from_config(c),
        }
    }

    pub fn registries(&self) -> Result<Registries, PullError> {
        Registries::load(&self.registries_conf, &self.registries_conf_dir).map_err(|e| PullError::Resolve(Box::new(e)))
    }

    /// Pulls `image`; `creds` (from the CRI request) win over the auth file.
    pub async fn pull(&self, image: &str, creds: Option<Credentials>) -> Result<ImageRecord, PullError> {
        let regs = self.registries()?;
        let candidates = regs.resolve(image).map_err(PullError::Resolve)?;
        let session = Session::open(self.store.clone()).await?;
        let mut attempts = Vec::new();
        for cand in &candidates {
            for ep in &cand.endpoints {
                let creds = match &creds {
                    Some(c) => Some(c.clone()),
                    None => match auth::from_file(&self.auth_file, &ep.registry) {
                        Ok(c) => c,
                        Err(e) => {
                            session.finish(false).await;
                            return Err(e.into());
                        }
                    },
                };
                tracing::info!(image = %cand.name, registry = %ep.registry, repository = %ep.repository,
                    mirror = ep.mirror, insecure = ep.insecure, "pulling");
                match self.pull_from(&cand.name, ep, creds, &session).await {
                    Ok(rec) => {
                        session.finish(true).await;
                        return Ok(rec);
                    }
                    Err(e) => {
                        tracing::warn!(image = %cand.name, registry = %ep.registry, error = %e, "pull attempt failed");
                        let kind = if ep.mirror { "mirror" } else { "registry" };
                        attempts.push(format!("{kind} {}/{}: {e}", ep.registry, ep.repository));
                    }
                }
            }
        }
        // Nothing of a failed pull stays (blobs and layers other images use are kept).
        session.finish(false).await;
        Err(PullError::AllFailed { image: image.into(), attempts })
    }

    async fn pull_from(
        &self,
        name: &ImageName,
        ep: &Endpoint,
        creds: Option<Credentials>,
        session: &Session,
    ) -> Result<ImageRecord, PullError> {
        let client = RegistryClient::new(&ep.registry, &ep.repository, ep.insecure, creds, self.limits.registry.clone())?;
        let reference = match (&name.digest, &name.tag) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        };
        let top = client.manifest(&reference).await?;
        let top_digest = sha256(&top.body);
        if let Some(want) = &name.digest {
            if *want != top_digest {
                return Err(PullError::DigestMismatch { what: format!("manifest of {name}"), expected: want.clone(), actual: top_digest });
            }
        }
        let top_type = top.content_type.clone().unwrap_or_default();
        let (manifest_body, manifest_digest, index_body, config, layers) = match manifest::parse(&top.body, &[&top_type])? {
            Parsed::Manifest { config, layers } => (top.body, top_digest.clone(), None, config, layers),
            Parsed::Index(entries) => {
                let entry = manifest::pick_platform(&entries)?.clone();
                let what = format!("platform manifest {}", entry.digest);
                let size = self.declared(&what, &entry, self.limits.registry.manifest, "max_manifest_size")?;
                let m = client.manifest(&entry.digest).await?;
                let d = sha256(&m.body);
                if d != entry.digest {
                    return Err(PullError::DigestMismatch {
                        what: format!("platform manifest of {name}"),
                        expected: entry.digest,
                        actual: d,
                    });
                }
                exact(&what, size, m.body.len() as u64)?;
                let ct = m.content_type.clone().unwrap_or_default();
                match manifest::parse(&m.body, &[&ct, &entry.media_type])? {
                    Parsed::Manifest { config, layers } => (m.body, d, Some(top.body), config, layers),
                    Parsed::Index(_) => return Err(manifest::ManifestError::MediaType("nested index".into()).into()),
                }
            }
        };
        if layers.len() > self.limits.max_layers {
            return Err(PullError::TooManyLayers { layers: layers.len(), limit: self.limits.max_layers });
        }
        self.declared(&format!("image config {}", config.digest), &config, self.limits.registry.config, "max_config_size")?;

        // Config first (small, and it gives the diff_ids every layer is checked against).
        self.fetch_blob(&client, &config, session).await?;
        let cd = config.digest.clone();
        let config_body = session.run(move |s| s.read_blob(&cd)).await?;
        let info = manifest::parse_config(&config_body, layers.len())?;

        let jobs = layers.iter().cloned().zip(info.diff_ids.iter().cloned());
        let layer_refs: Vec<LayerRef> = futures_util::stream::iter(jobs)
            .map(|(desc, diff_id)| {
                let client = &client;
                async move { self.fetch_layer(client, &desc, diff_id, session).await }
            })
            .buffered(3)
            .try_collect()
            .await?;

        let rec = ImageRecord {
            id: config.digest.clone(),
            repo_tags: name.tagged().into_iter().collect(),
            repo_digests: vec![name.with_digest(&top_digest)],
            manifest_digest,
            size: layer_refs.iter().map(|l| l.size).sum(),
            layers: layer_refs,
            user: info.user,
            source: format!("{}{}/{}", if ep.insecure { "http://" } else { "https://" }, ep.registry, ep.repository),
            created: 0,
        };
        let rec = session
            .run(move |store| {
                store.put_bytes(&manifest_body)?;
                if let Some(ib) = index_body {
                    store.put_bytes(&ib)?;
                }
                store.put_image(rec)
            })
            .await?;
        tracing::info!(image = %name, id = %rec.id, "pulled");
        Ok(rec)
    }

    /// A descriptor's size, refused before any download when past `limit`.
    fn declared(&self, what: &str, d: &Descriptor, limit: u64, key: &'static str) -> Result<u64, PullError> {
        let size = d.size.max(0) as u64;
        if size > limit {
            return Err(PullError::DescriptorTooLarge { what: what.into(), size, limit, key });
        }
        Ok(size)
    }

    async fn fetch_layer(
        &self,
        client: &RegistryClient,
        desc: &Descriptor,
        diff_id: String,
        session: &Session,
    ) -> Result<LayerRef, PullError> {
        self.fetch_blob(client, desc, session).await?;
        // Local work only: one unpack per digest, the others then find the layer.
        let _g = self.store.digest_lock(&desc.digest).await;
        let d = desc.digest.clone();
        session.run(move |s| s.unpack(&d, Some(&diff_id))).await
    }

    /// Makes sure the store holds the blob with exactly the descriptor's size and digest:
    /// a stored blob is reused only if its size matches, anything else is downloaded.
    async fn fetch_blob(&self, client: &RegistryClient, desc: &Descriptor, session: &Session) -> Result<(), PullError> {
        let size = desc.size.max(0) as u64;
        let what = format!("blob {}", desc.digest);
        if self.store.blob_len(&desc.digest)? == Some(size) {
            return Ok(());
        }
        let tmp = TempFile(Some(self.store.tmp_path("download")));
        let (mut resp, url) = client.blob(&desc.digest).await?;
        if let Some(l) = resp.content_length() {
            // Refused before reading: the registry announces a different length.
            if l != size {
                return Err(PullError::SizeMismatch { what, size, actual: format!("announces {l}") });
            }
        }
        let mut f = tokio::fs::File::create(tmp.path()).await.map_err(super::store::ioe(tmp.path()))?;
        let mut h = Sha256::new();
        let mut n: u64 = 0;
        while let Some(chunk) = client.chunk(&mut resp, &url).await? {
            n += chunk.len() as u64;
            if n > size {
                return Err(PullError::SizeMismatch { what, size, actual: format!("sent more than {size}") });
            }
            h.update(&chunk);
            f.write_all(&chunk).await.map_err(super::store::ioe(tmp.path()))?;
        }
        drop(resp);
        f.flush().await.map_err(super::store::ioe(tmp.path()))?;
        drop(f);
        exact(&what, size, n)?;
        let actual = format!("sha256:{}", hex::encode(h.finalize()));
        if actual != desc.digest {
            return Err(PullError::DigestMismatch { what: format!("blob from {url}"), expected: desc.digest.clone(), actual });
        }
        let d = desc.digest.clone();
        session
            .run(move |s| {
                s.publish_blob(tmp.path(), &d)?;
                tmp.keep();
                Ok(())
            })
            .await
    }
}

/// A length that must equal the descriptor's size exactly.
fn exact(what: &str, size: u64, actual: u64) -> Result<(), PullError> {
    if actual == size {
        Ok(())
    } else {
        Err(PullError::SizeMismatch { what: what.into(), size, actual: format!("sent {actual}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_must_be_exact() {
        assert!(exact("b", 10, 10).is_ok());
        let short = exact("blob x", 10, 9).unwrap_err().to_string();
        assert_eq!(short, "blob x: the registry sent 9 bytes but the descriptor declares 10");
        assert!(exact("b", 10, 11).is_err());
    }

    #[test]
    fn temp_file_is_removed_unless_kept() {
        let dir = std::env::temp_dir().join(format!("berth-tempfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"x").unwrap();
        drop(TempFile(Some(a.clone())));
        TempFile(Some(b.clone())).keep();
        assert!(!a.exists());
        assert!(b.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
