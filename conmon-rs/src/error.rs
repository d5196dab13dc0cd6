//! berth-mon's errors: one line each, naming what failed.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad command line (conmon's wording: "option parsing failed").
    #[error("option parsing failed: {0}")]
    Usage(String),
    /// A command line that parses but cannot be served.
    #[error("{0}")]
    Config(String),
    /// A system call or file operation failed.
    #[error("{what}: {cause}")]
    Sys { what: String, cause: io::Error },
    /// The OCI runtime failed (its stderr is in the message).
    #[error("runtime failed: {0}")]
    Runtime(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn sys(what: impl Into<String>, cause: io::Error) -> Error {
        Error::Sys { what: what.into(), cause }
    }
    pub fn errno(what: impl Into<String>, e: nix::errno::Errno) -> Error {
        Error::Sys { what: what.into(), cause: io::Error::from_raw_os_error(e as i32) }
    }
}

/// `.ctx("what")` on io/nix results.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::errno(what(), e))
    }
}
