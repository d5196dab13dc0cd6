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
    #[error(transparent)]
    Criu(#[from] crate::criu::CriuError),
    #[error("systemd: {0}")]
    Systemd(#[from] crate::cgroups::systemd::SystemdError),
    #[error("{kind} hook {path}: {why}")]
    Hook { kind: String, path: String, why: String },
    /// An error reported by the container's init process during creation.
    #[error("{0}")]
    Init(String),
    // The cause is part of the message and deliberately not a `source()`: the binary
    // prints the chain, and would otherwise repeat it.
    #[error("{context}: {cause}")]
    Io { context: String, cause: std::io::Error },
    #[error("{context}: {cause}")]
    Sys { context: String, cause: nix::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a short description of what was being done to a system error.
pub trait Context<T> {
    fn ctx<C: Display>(self, context: C) -> Result<T>;
    fn with_ctx<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<C: Display>(self, context: C) -> Result<T> {
        self.map_err(|cause| Error::Io { context: context.to_string(), cause })
    }
    fn with_ctx<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|cause| Error::Io { context: f().to_string(), cause })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<C: Display>(self, context: C) -> Result<T> {
        self.map_err(|cause| Error::Sys { context: context.to_string(), cause })
    }
    fn with_ctx<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|cause| Error::Sys { context: f().to_string(), cause })
    }
}

impl Error {
    /// The errno behind a system error, if any.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            Error::Sys { cause, .. } => Some(*cause),
            Error::Io { cause, .. } => cause.raw_os_error().map(nix::errno::Errno::from_raw),
            _ => None,
        }
    }
}
