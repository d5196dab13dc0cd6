//! Resolving paths inside the container root without ever leaving it.
//!
//! Every lookup goes through openat2(2) with RESOLVE_IN_ROOT: `..` and absolute symlinks
//! resolve against the rootfs, as they will for the container, so a symlink in an image
//! can never redirect a mount or a device node onto the host. Mount targets are then
//! named by `/proc/self/fd/N`, which the kernel resolves to exactly the opened inode.

use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// openat2(root, path, flags) confined to `root`.
pub fn open_in_root(root: BorrowedFd, path: &Path, flags: OFlag, mode: u32) -> nix::Result<OwnedFd> {
    let c = CString::new(relative(path).as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open_how is plain data; zero is a valid value for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | OFlag::O_CLOEXEC).bits() as u64;
    how.mode = if flags.contains(OFlag::O_CREAT) { mode as u64 } else { 0 };
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    loop {
        // SAFETY: valid pointers to a NUL-terminated path and an open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: fresh fd owned by us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        match Errno::last() {
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// The path made relative (so "/etc/x" and "etc/x" name the same entry under the root).
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path.components().filter(|c| !matches!(c, Component::RootDir)).collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Opens (O_PATH) a directory inside the root, creating missing components (mode 0755).
pub fn mkdir_all(root: BorrowedFd, path: &Path) -> Result<OwnedFd> {
    let mut cur = PathBuf::from(".");
    let mut fd = open_in_root(root, &cur, OFlag::O_PATH | OFlag::O_DIRECTORY, 0).ctx("open rootfs")?;
    for comp in relative(path).components() {
        let name = match comp {
            Component::Normal(n) => n,
            Component::CurDir => continue,
            // ".." is resolved by the kernel inside the root; keep walking by path.
            _ => std::ffi::OsStr::new(".."),
        };
        cur.push(name);
        fd = match open_in_root(root, &cur, OFlag::O_PATH | OFlag::O_DIRECTORY, 0) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&fd, name, nix::sys::stat::Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e).with_ctx(|| format!("mkdir {} in rootfs", cur.display())),
                }
                open_in_root(root, &cur, OFlag::O_PATH | OFlag::O_DIRECTORY, 0)
                    .with_ctx(|| format!("open {} in rootfs (dangling symlink?)", cur.display()))?
            }
            Err(e) => return Err(e).with_ctx(|| format!("open {} in rootfs", cur.display())),
        };
    }
    Ok(fd)
}

/// Makes sure `path` exists inside the root as a directory or (when `file`) a regular
/// file, and returns an O_PATH handle on it.
pub fn ensure(root: BorrowedFd, path: &Path, file: bool) -> Result<OwnedFd> {
    if !file {
        return mkdir_all(root, path);
    }
    let rel = relative(path);
    match open_in_root(root, &rel, OFlag::O_PATH, 0) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).with_ctx(|| format!("open {} in rootfs", path.display())),
    }
    if let Some(parent) = rel.parent() {
        mkdir_all(root, parent)?;
    }
    let fd = open_in_root(root, &rel, OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_NOFOLLOW, 0o644)
        .with_ctx(|| format!("create {} in rootfs", path.display()))?;
    drop(fd);
    open_in_root(root, &rel, OFlag::O_PATH, 0).with_ctx(|| format!("open {} in rootfs", path.display()))
}

/// The name through which mount(2) reaches exactly the inode `fd` refers to.
pub fn proc_fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Splits a path into (parent directory handle inside the root, final name).
pub fn parent_and_name(root: BorrowedFd, path: &Path) -> Result<(OwnedFd, std::ffi::OsString)> {
    let rel = relative(path);
    let name = rel.file_name().ok_or_else(|| Error::Spec(format!("invalid path {}", path.display())))?.to_owned();
    let parent = mkdir_all(root, rel.parent().unwrap_or(Path::new(".")))?;
    Ok((parent, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("berth-safe-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn symlinks_resolve_inside_root() {
        let base = tmp("links");
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../outside", root.join("rel")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        let rfd = nix::fcntl::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty()).unwrap();
        // A symlink to a host path that does not exist inside the root is refused.
        assert!(mkdir_all(rfd.as_fd(), Path::new("/abs/x")).is_err());
        mkdir_all(rfd.as_fd(), Path::new("/rel/y")).unwrap();
        ensure(rfd.as_fd(), Path::new("/rel/file"), true).unwrap();
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none(), "wrote outside the root");
        assert!(root.join("outside/y").is_dir());
        assert!(root.join("outside/file").is_file());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
