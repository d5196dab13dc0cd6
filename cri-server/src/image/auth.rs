//! Registry credentials: from the CRI request's AuthConfig or a docker-style auth file
//! (`auth.json` / `config.json`: `{"auths": {"host": {"auth": base64("user:pass")}}}`).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth file {file}: {message}")]
    File { file: String, message: String },
    #[error("auth for {0}: `auth` is not base64 of \"user:password\"")]
    BadAuth(String),
}

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic { username: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

fn decode_auth(what: &str, b64: &str) -> Result<Credentials, AuthError> {
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| AuthError::BadAuth(what.into()))?;
    let s = String::from_utf8(raw).map_err(|_| AuthError::BadAuth(what.into()))?;
    let (u, p) = s.split_once(':').ok_or_else(|| AuthError::BadAuth(what.into()))?;
    Ok(Credentials::Basic { username: u.into(), password: p.into() })
}

/// Credentials from a CRI `AuthConfig` (username/password, `auth`, or registry token).
pub fn from_request(username: &str, password: &str, auth: &str, registry_token: &str) -> Result<Option<Credentials>, AuthError> {
    if !username.is_empty() {
        return Ok(Some(Credentials::Basic { username: username.into(), password: password.into() }));
    }
    if !auth.is_empty() {
        return decode_auth("request", auth).map(Some);
    }
    if !registry_token.is_empty() {
        return Ok(Some(Credentials::Bearer(registry_token.into())));
    }
    Ok(None)
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

fn host_of(key: &str) -> &str {
    let k = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Credentials for `registry` (host[:port]) from the auth file; a missing file has none.
pub fn from_file(file: &Path, registry: &str) -> Result<Option<Credentials>, AuthError> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AuthError::File { file: file.display().to_string(), message: e.to_string() }),
    };
    let parsed: AuthFile =
        serde_json::from_slice(&text).map_err(|e| AuthError::File { file: file.display().to_string(), message: e.to_string() })?;
    let want = if registry == "docker.io" { "index.docker.io" } else { registry };
    for (key, entry) in &parsed.auths {
        let h = host_of(key);
        let h = if h == "docker.io" { "index.docker.io" } else { h };
        if h != want {
            continue;
        }
        if let Some(a) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            return decode_auth(key, a).map(Some);
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Some(Credentials::Basic { username: u.clone(), password: p.clone() }));
        }
    }
    Ok(None)
}
