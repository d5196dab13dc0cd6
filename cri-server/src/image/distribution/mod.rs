//! A pull-only client of the OCI distribution protocol: manifests, blobs, and the registry's
//! token (`Bearer`) or `Basic` authentication, over `reqwest`.
//!
//! berth has its own instead of using `oci-client`: that crate reads every body it receives
//! (manifests, token responses, error bodies) whole into memory with `bytes()`/`text()`,
//! with no limit and no hook to add one, so a hostile registry could make the daemon buffer
//! hundreds of MiB. Here every body is read through [`body::Bounded`] with a limit from the
//! `[image]` configuration, refused as soon as it (or its Content-Length) passes the limit;
//! every wait for the registry (response headers, each read of a body) is bounded by
//! `image.pull_progress_timeout`; and dropping a request — a cancelled pull — drops its
//! connection. Registry text reaches errors and the log only as a short excerpt.

pub mod body;
pub mod challenge;

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use self::body::{excerpt, within, Bounded};
use self::challenge::Challenge;
use super::auth::Credentials;

/// Sizes and timeouts a registry is held to (from `[image]`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Manifests and indexes (`image.max_manifest_size`).
    pub manifest: u64,
    /// Image configs (`image.max_config_size`); checked against the descriptor by the puller.
    pub config: u64,
    /// Bodies of error responses (`image.max_error_body_size`).
    pub error_body: u64,
    /// Token responses of the auth realm (`image.max_auth_token_size`).
    pub token: u64,
    /// Longest wait for any data from the registry (`image.pull_progress_timeout`); `None` = none.
    pub idle: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("{what} from {url} is larger than the limit of {limit} bytes (image.{key})")]
    TooLarge { what: &'static str, url: String, limit: u64, key: &'static str },
    #[error("{url}: no data from the registry for {secs} s (image.pull_progress_timeout)")]
    Idle { url: String, secs: u64 },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: not authorized (HTTP 401){detail}")]
    Unauthorized { url: String, detail: String },
    #[error("{url}: HTTP {code}{detail}")]
    Status { url: String, code: u16, detail: String },
    #[error("{url}: {message}")]
    Protocol { url: String, message: String },
}

/// A manifest or index as the registry sent it.
pub struct Document {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub url: String,
}

/// A registry error body (`{"errors": [{"code": ..., "message": ...}]}`).
#[derive(Deserialize)]
struct Errors {
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Token {
    token: Option<String>,
    access_token: Option<String>,
}

fn http_err(url: &str, e: reqwest::Error) -> DistError {
    let e = e.without_url();
    let mut message = e.to_string();
    // reqwest's Display omits the causes (connection refused, TLS failure, ...): add them.
    let mut cur = std::error::Error::source(&e);
    while let Some(c) = cur {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cur = c.source();
    }
    DistError::Http { url: url.into(), message }
}

/// One endpoint's repository, with the authorization obtained for it so far.
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    repository: String,
    creds: Option<Credentials>,
    auth: Mutex<Option<String>>,
    limits: Limits,
}

impl RegistryClient {
    /// `registry` is host[:port]; plain HTTP only when `insecure`.
    pub fn new(
        registry: &str,
        repository: &str,
        insecure: bool,
        creds: Option<Credentials>,
        limits: Limits,
    ) -> Result<RegistryClient, DistError> {
        // docker.io's registry API lives on registry-1.docker.io.
        let host = if registry == "docker.io" { "registry-1.docker.io" } else { registry };
        let base = format!("{}://{host}", if insecure { "http" } else { "https" });
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("berth-cri/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| http_err(&base, e))?;
        let auth = match &creds {
            Some(Credentials::Bearer(t)) => Some(format!("Bearer {t}")),
            _ => None,
        };
        Ok(RegistryClient { http, base, repository: repository.into(), creds, auth: Mutex::new(auth), limits })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// GETs a manifest or index by tag or digest, bounded by `image.max_manifest_size`.
    pub async fn manifest(&self, reference: &str) -> Result<Document, DistError> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        let accept = super::manifest::ACCEPT.join(", ");
        let mut resp = self.get(&url, Some(&accept)).await?;
        let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = self.read_bounded(&mut resp, &url, "manifest", self.limits.manifest, "max_manifest_size").await?;
        Ok(Document { body, content_type, url })
    }

    /// Starts a blob download; read it with [`RegistryClient::chunk`].
    pub async fn blob(&self, digest: &str) -> Result<(Response, String), DistError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let resp = self.get(&url, None).await?;
        Ok((resp, url))
    }

    /// The next piece of a body, waiting at most the idle-read timeout.
    pub async fn chunk(&self, resp: &mut Response, url: &str) -> Result<Option<bytes::Bytes>, DistError> {
        within(self.limits.idle, resp.chunk()).await.map_err(|_| self.idle(url))?.map_err(|e| http_err(url, e))
    }

    fn idle(&self, url: &str) -> DistError {
        DistError::Idle { url: url.into(), secs: self.limits.idle.map(|d| d.as_secs()).unwrap_or(0) }
    }

    async fn read_bounded(
        &self,
        resp: &mut Response,
        url: &str,
        what: &'static str,
        limit: u64,
        key: &'static str,
    ) -> Result<Vec<u8>, DistError> {
        let too_large = || DistError::TooLarge { what, url: url.into(), limit, key };
        let mut b = Bounded::new(limit, resp.content_length()).map_err(|_| too_large())?;
        while let Some(c) = self.chunk(resp, url).await? {
            b.push(&c).map_err(|_| too_large())?;
        }
        Ok(b.into_inner())
    }

    async fn send(&self, rb: RequestBuilder, url: &str) -> Result<Response, DistError> {
        within(self.limits.idle, rb.send()).await.map_err(|_| self.idle(url))?.map_err(|e| http_err(url, e))
    }

    fn auth_header(&self) -> Option<String> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_auth(&self, h: String) {
        *self.auth.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
    }

    /// A GET with the authorization obtained so far; a 401 with a challenge berth can answer
    /// is answered once and the request repeated.
    async fn get(&self, url: &str, accept: Option<&str>) -> Result<Response, DistError> {
        let mut answered = false;
        loop {
            let mut rb = self.http.get(url);
            if let Some(a) = accept {
                rb = rb.header(ACCEPT, a);
            }
            if let Some(h) = self.auth_header() {
                rb = rb.header(AUTHORIZATION, h);
            }
            let resp = self.send(rb, url).await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status == StatusCode::UNAUTHORIZED && !answered {
                let ch = resp.headers().get(WWW_AUTHENTICATE).and_then(|h| h.to_str().ok()).and_then(challenge::parse);
                if let Some(ch) = ch {
                    if self.authorize(&ch).await? {
                        answered = true;
                        continue;
                    }
                }
            }
            return Err(self.status_error(resp, url).await);
        }
    }

    /// Obtains the authorization a challenge asks for; `false` when there is nothing new to
    /// try (no credentials, or the ones given were already refused).
    async fn authorize(&self, ch: &Challenge) -> Result<bool, DistError> {
        match ch {
            Challenge::Basic => {
                let Some(Credentials::Basic { username, password }) = &self.creds else {
                    return Ok(false);
                };
                let h = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")));
                if self.auth_header().as_deref() == Some(h.as_str()) {
                    return Ok(false);
                }
                self.set_auth(h);
                Ok(true)
            }
            Challenge::Bearer { realm, service, scope } => {
                if matches!(self.creds, Some(Credentials::Bearer(_))) {
                    return Ok(false); // the registry token of the request was refused
                }
                let mut u = reqwest::Url::parse(realm).map_err(|e| DistError::Protocol {
                    url: excerpt(realm.as_bytes()),
                    message: format!("invalid token realm in WWW-Authenticate: {e}"),
                })?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(DistError::Protocol { url: u.to_string(), message: "token realm must be an http(s) URL".into() });
                }
                {
                    let mut q = u.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    let default_scope = format!("repository:{}:pull", self.repository);
                    q.append_pair("scope", scope.as_deref().unwrap_or(&default_scope));
                }
                let url = u.to_string();
                let mut rb = self.http.get(u);
                if let Some(Credentials::Basic { username, password }) = &self.creds {
                    rb = rb.basic_auth(username, Some(password));
                }
                let mut resp = self.send(rb, &url).await?;
                if !resp.status().is_success() {
                    return Err(self.status_error(resp, &url).await);
                }
                let body = self.read_bounded(&mut resp, &url, "auth token response", self.limits.token, "max_auth_token_size").await?;
                let t: Token = serde_json::from_slice(&body).map_err(|e| DistError::Protocol {
                    url: url.clone(),
                    message: format!("invalid token response ({e}): {}", excerpt(&body)),
                })?;
                let Some(token) = t.token.or(t.access_token).filter(|t| !t.is_empty()) else {
                    return Err(DistError::Protocol { url, message: "token response carries no token".into() });
                };
                self.set_auth(format!("Bearer {token}"));
                Ok(true)
            }
        }
    }

    /// The error for a failed response: its status and (bounded, excerpted) what it says.
    async fn status_error(&self, mut resp: Response, url: &str) -> DistError {
        let code = resp.status().as_u16();
        let body = self.read_bounded(&mut resp, url, "error body", self.limits.error_body, "max_error_body_size").await;
        let detail = match body {
            Err(e) => format!(" ({e})"),
            Ok(b) if b.is_empty() => String::new(),
            Ok(b) => {
                let text = match serde_json::from_slice::<Errors>(&b) {
                    Ok(e) if !e.errors.is_empty() => {
                        e.errors.iter().map(|x| format!("{}: {}", x.code, x.message)).collect::<Vec<_>>().join("; ")
                    }
                    _ => String::from_utf8_lossy(&b).into_owned(),
                };
                format!(": {}", excerpt(text.as_bytes()))
            }
        };
        if code == 401 {
            DistError::Unauthorized { url: url.into(), detail }
        } else {
            DistError::Status { url: url.into(), code, detail }
        }
    }
}
