//! Pulling an image over the OCI distribution protocol (via `oci-client`), through the
//! mirrors and registries that registries.conf gives, into the store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::auth::{self, Credentials};
use super::manifest::{self, Descriptor, Parsed};
use super::reference::ImageName;
use super::registries::{Endpoint, Registries};
use super::store::{ImageRecord, LayerRef, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Resolve(Box<dyn std::error::Error + Send + Sync>),
    #[error("{message}")]
    Registry { endpoint: String, message: String },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: registry sent more than the {size} bytes the descriptor declares")]
    TooBig { what: String, size: i64 },
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

/// Digests a pull touched, to clean up after a failure.
type Touched = std::sync::Mutex<Vec<String>>;

pub struct Puller {
    pub store: Arc<Store>,
    pub registries_conf: PathBuf,
    pub registries_conf_dir: PathBuf,
    pub auth_file: PathBuf,
}

fn reg_err(ep: &Endpoint) -> impl Fn(oci_client::errors::OciDistributionError) -> PullError + '_ {
    move |e| PullError::Registry {
        endpoint: format!("{}/{}", ep.registry, ep.repository),
        message: e.to_string(),
    }
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, PullError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PullError::Join(e.to_string()))?
        .map_err(PullError::from)
}

impl Puller {
    pub fn registries(&self) -> Result<Registries, PullError> {
        Registries::load(&self.registries_conf, &self.registries_conf_dir)
            .map_err(|e| PullError::Resolve(Box::new(e)))
    }

    /// Pulls `image`; `creds` (from the CRI request) win over the auth file.
    pub async fn pull(&self, image: &str, creds: Option<Credentials>) -> Result<ImageRecord, PullError> {
        let regs = self.registries()?;
        let candidates = regs.resolve(image).map_err(PullError::Resolve)?;
        let store = self.store.clone();
        let gc = blocking(move || store.gc_shared()).await?;
        let touched = Touched::default();
        let mut attempts = Vec::new();
        for cand in &candidates {
            for ep in &cand.endpoints {
                let creds = match &creds {
                    Some(c) => Some(c.clone()),
                    None => auth::from_file(&self.auth_file, &ep.registry)?,
                };
                tracing::info!(image = %cand.name, registry = %ep.registry, repository = %ep.repository,
                    mirror = ep.mirror, insecure = ep.insecure, "pulling");
                match self.pull_from(&cand.name, ep, creds, &touched).await {
                    Ok(rec) => return Ok(rec),
                    Err(e) => {
                        tracing::warn!(image = %cand.name, registry = %ep.registry, error = %e, "pull attempt failed");
                        let kind = if ep.mirror { "mirror" } else { "registry" };
                        attempts.push(format!("{kind} {}/{}: {e}", ep.registry, ep.repository));
                    }
                }
            }
        }
        drop(gc);
        // Nothing of a failed pull stays (blobs and layers other images use are kept).
        let digests = touched.into_inner().unwrap_or_default();
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.discard_unreferenced(&digests)).await {
            tracing::warn!(error = %e, "cleaning up after failed pull");
        }
        Err(PullError::AllFailed {
            image: image.into(),
            attempts,
        })
    }

    async fn pull_from(
        &self,
        name: &ImageName,
        ep: &Endpoint,
        creds: Option<Credentials>,
        touched: &Touched,
    ) -> Result<ImageRecord, PullError> {
        let client = Client::new(ClientConfig {
            protocol: if ep.insecure { ClientProtocol::Http } else { ClientProtocol::Https },
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        });
        let auth = match creds {
            None => RegistryAuth::Anonymous,
            Some(Credentials::Basic { username, password }) => RegistryAuth::Basic(username, password),
            Some(Credentials::Bearer(t)) => RegistryAuth::Bearer(t),
        };
        let reference = match (&name.digest, &name.tag) {
            (Some(d), _) => Reference::with_digest(ep.registry.clone(), ep.repository.clone(), d.clone()),
            (None, Some(t)) => Reference::with_tag(ep.registry.clone(), ep.repository.clone(), t.clone()),
            (None, None) => Reference::with_tag(ep.registry.clone(), ep.repository.clone(), "latest".into()),
        };
        let (body, _) = client
            .pull_manifest_raw(&reference, &auth, manifest::ACCEPT)
            .await
            .map_err(reg_err(ep))?;
        let top_digest = sha256(&body);
        if let Some(want) = &name.digest {
            if *want != top_digest {
                return Err(PullError::DigestMismatch {
                    what: format!("manifest of {name}"),
                    expected: want.clone(),
                    actual: top_digest,
                });
            }
        }
        let mut manifest_body = body.to_vec();
        let mut manifest_digest = top_digest.clone();
        let mut index_body = None;
        let (config, layers) = match manifest::parse(&body, None)? {
            Parsed::Manifest { config, layers } => (config, layers),
            Parsed::Index(entries) => {
                let entry = manifest::pick_platform(&entries)?.clone();
                let r = reference.clone_with_digest(entry.digest.clone());
                let (b, _) = client.pull_manifest_raw(&r, &auth, manifest::ACCEPT).await.map_err(reg_err(ep))?;
                let d = sha256(&b);
                if d != entry.digest {
                    return Err(PullError::DigestMismatch {
                        what: format!("platform manifest of {name}"),
                        expected: entry.digest,
                        actual: d,
                    });
                }
                index_body = Some(body.to_vec());
                manifest_body = b.to_vec();
                manifest_digest = d;
                match manifest::parse(&b, None)? {
                    Parsed::Manifest { config, layers } => (config, layers),
                    Parsed::Index(_) => {
                        return Err(manifest::ManifestError::MediaType("nested index".into()).into())
                    }
                }
            }
        };
        if let Ok(mut t) = touched.lock() {
            t.push(config.digest.clone());
            t.extend(layers.iter().map(|l| l.digest.clone()));
        }
        // Config first (small, and it gives the diff_ids every layer is checked against).
        self.fetch_blob(&client, &reference, &config, ep).await?;
        let store = self.store.clone();
        let cd = config.digest.clone();
        let config_body = blocking(move || store.read_blob(&cd)).await?;
        let info = manifest::parse_config(&config_body, layers.len())?;

        let jobs = layers.iter().cloned().zip(info.diff_ids.iter().cloned());
        let layer_refs: Vec<LayerRef> = futures_util::stream::iter(jobs)
            .map(|(desc, diff_id)| {
                let client = &client;
                let reference = &reference;
                async move { self.fetch_layer(client, reference, &desc, diff_id, ep).await }
            })
            .buffered(3)
            .try_collect()
            .await?;

        let store = self.store.clone();
        let (mb, ib) = (manifest_body, index_body);
        blocking(move || {
            store.put_bytes(&mb)?;
            if let Some(ib) = ib {
                store.put_bytes(&ib)?;
            }
            Ok(())
        })
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
        let store = self.store.clone();
        let rec = blocking(move || store.put_image(rec)).await?;
        tracing::info!(image = %name, id = %rec.id, "pulled");
        Ok(rec)
    }

    async fn fetch_layer(
        &self,
        client: &Client,
        reference: &Reference,
        desc: &Descriptor,
        diff_id: String,
        ep: &Endpoint,
    ) -> Result<LayerRef, PullError> {
        let _g = self.store.digest_lock(&desc.digest).await;
        if let Some(l) = self.store.layer(&desc.digest)? {
            if l.diff_id == diff_id {
                return Ok(l);
            }
        }
        self.fetch_blob_locked(client, reference, desc, ep).await?;
        let store = self.store.clone();
        let d = desc.digest.clone();
        blocking(move || store.unpack(&d, Some(&diff_id))).await
    }

    async fn fetch_blob(&self, client: &Client, reference: &Reference, desc: &Descriptor, ep: &Endpoint) -> Result<(), PullError> {
        let _g = self.store.digest_lock(&desc.digest).await;
        self.fetch_blob_locked(client, reference, desc, ep).await
    }

    /// Downloads one blob (once: callers hold its digest lock), verifying size and digest.
    async fn fetch_blob_locked(&self, client: &Client, reference: &Reference, desc: &Descriptor, ep: &Endpoint) -> Result<(), PullError> {
        if self.store.has_blob(&desc.digest) {
            return Ok(());
        }
        let od = OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size,
            ..Default::default()
        };
        let tmp = self.store.tmp_path("download");
        let res = async {
            let mut stream = client.pull_blob_stream(reference, &od).await.map_err(reg_err(ep))?;
            let mut f = tokio::fs::File::create(&tmp)
                .await
                .map_err(super::store::ioe(&tmp))
                .map_err(PullError::from)?;
            let mut h = Sha256::new();
            let mut n: u64 = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| PullError::Registry {
                    endpoint: format!("{}/{}", ep.registry, ep.repository),
                    message: format!("blob {}: {e}", desc.digest),
                })?;
                n += chunk.len() as u64;
                if n > desc.size as u64 {
                    return Err(PullError::TooBig {
                        what: format!("blob {}", desc.digest),
                        size: desc.size,
                    });
                }
                h.update(&chunk);
                f.write_all(&chunk).await.map_err(super::store::ioe(&tmp))?;
            }
            f.flush().await.map_err(super::store::ioe(&tmp))?;
            let actual = format!("sha256:{}", hex::encode(h.finalize()));
            if actual != desc.digest {
                return Err(PullError::DigestMismatch {
                    what: format!("blob from {}/{}", ep.registry, ep.repository),
                    expected: desc.digest.clone(),
                    actual,
                });
            }
            let store = self.store.clone();
            let (t, d) = (tmp.clone(), desc.digest.clone());
            blocking(move || store.publish_blob(&t, &d)).await
        }
        .await;
        if res.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        res
    }
}
