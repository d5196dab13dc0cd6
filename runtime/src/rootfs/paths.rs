//! maskedPaths and readonlyPaths, applied after pivot_root (paths are the container's).

use super::mounts::{current_flags, remount_bind};
use crate::error::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use std::path::Path;

/// Hides a path: a read-only empty tmpfs over a directory, /dev/null over anything else.
pub fn mask(path: &str) -> Result<()> {
    let p = Path::new(path);
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_ctx(|| format!("mask {path}")),
    };
    let r = if meta.is_dir() {
        mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0k,mode=755"))
    } else {
        mount(Some("/dev/null"), p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
    };
    r.with_ctx(|| format!("mask {path}"))
}

/// Makes a path read-only: bind it onto itself and remount read-only.
pub fn readonly(path: &str) -> Result<()> {
    let p = Path::new(path);
    match mount(Some(p), p, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>) {
        Err(Errno::ENOENT) => return Ok(()),
        r => r.with_ctx(|| format!("readonly {path}"))?,
    }
    let flags = current_flags(p) | MsFlags::MS_RDONLY;
    remount_bind(p, flags, p)
}
