//! The final execve: resolving argv[0] on the container's PATH.

use crate::error::{Context, Error, Result};
use nix::unistd::AccessFlags;
use std::ffi::CString;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds the executable like execvp would, but reports a clear error before `start`.
pub fn resolve(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return if is_executable(&p) { Ok(p) } else { Err(Error::Spec(format!("exec {arg0:?}: no such executable file"))) };
    }
    let path = env.iter().rev().find_map(|kv| kv.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Error::Spec(format!("exec {arg0:?}: executable file not found in $PATH")))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file()) && nix::unistd::access(p, AccessFlags::X_OK).is_ok()
}

fn cstrings(v: &[String]) -> Result<Vec<CString>> {
    v.iter().map(|s| CString::new(s.as_bytes()).map_err(|_| Error::Spec(format!("{s:?} contains a NUL byte")))).collect()
}

/// Prepared arguments for execve, built before the point of no return.
pub struct Exec {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

impl Exec {
    pub fn new(path: &Path, args: &[String], env: &[String]) -> Result<Exec> {
        use std::os::unix::ffi::OsStrExt;
        Ok(Exec {
            path: CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Spec("path has a NUL byte".into()))?,
            args: cstrings(args)?,
            env: cstrings(env)?,
        })
    }

    /// Replaces the process; returns only on failure.
    pub fn exec(&self) -> Error {
        let e = nix::unistd::execve(&self.path, &self.args, &self.env).unwrap_err();
        Err::<(), _>(e).with_ctx(|| format!("exec {:?}", self.path)).unwrap_err()
    }
}
