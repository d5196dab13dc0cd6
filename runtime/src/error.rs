//! The runtime library's error type: one enum, one clear lowercase line per failure.

use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle's config.json is missing, malformed or asks for something invalid.
    #[error("{0}")]
    Spec(String),
    /// The config asks for something berth does not do (yet, or on this host).
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container \"{0}\" already exists")]
    Exists(String),
    #[error("invalid container id {0:?}: ids use letters, digits and . _ + - only")]
    InvalidId(String),
    /// The operation does not fit the container's current status.
    #[error("container \"{id}\" is {status}: {why}")]
    Status { id: String, status: String, why: String },
    #[error("invalid signal {0:?}")]
    Signal(String),
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("{kind} hook {path}: {why}")]
    Hook { kind: String, path: String, why: String },
    /// An error reported by the container's init process during creation.
    #[error("{0}")]
    Init(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{context}: {source}")]
    Sys { context: String, source: nix::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a short description of what was being done to a system error.
pub trait Context<T> {
    fn ctx<C: Display>(self, context: C) -> Result<T>;
    fn with_ctx<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<C: Display>(self, context: C) -> Result<T> {
        self.map_err(|source| Error::Io { context: context.to_string(), source })
    }
    fn with_ctx<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|source| Error::Io { context: f().to_string(), source })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<C: Display>(self, context: C) -> Result<T> {
        self.map_err(|source| Error::Sys { context: context.to_string(), source })
    }
    fn with_ctx<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|source| Error::Sys { context: f().to_string(), source })
    }
}

impl Error {
    /// The errno behind a system error, if any.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            Error::Sys { source, .. } => Some(*source),
            Error::Io { source, .. } => source.raw_os_error().map(nix::errno::Errno::from_raw),
            _ => None,
        }
    }
}
