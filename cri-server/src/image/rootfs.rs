//! Container root filesystems: an overlayfs mount of the image's unpacked layers (read-only
//! lower dirs, shared) with a per-container upper dir. Creating one registers the container
//! as a user of the image (RemoveImage refuses until `remove_rootfs`).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::store::{ioe, valid_container_id, Store, StoreError};

fn c(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn is_mountpoint(p: &Path) -> bool {
    let Ok(m) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy();
    m.lines().any(|l| l.split(' ').nth(4) == Some(&want))
}

/// Mounts overlayfs at `target` with options naming paths relative to `cwd`. The mount is
/// made by a thread of its own that has unshared its working directory (CLONE_FS), so
/// changing it cannot affect the daemon's other threads.
fn mount_from(cwd: &Path, target: CString, data: CString) -> io::Result<()> {
    let cwd = cwd.to_path_buf();
    std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: plain syscalls on owned, valid C strings; CLONE_FS affects only this thread.
        if unsafe { libc::unshare(libc::CLONE_FS) } < 0 {
            return Err(io::Error::last_os_error());
        }
        std::env::set_current_dir(&cwd)?;
        let r = unsafe {
            libc::mount(
                c"overlay".as_ptr(),
                target.as_ptr(),
                c"overlay".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("mount thread panicked"))?
}

impl Store {
    /// Mounts `<root>/containers/<id>/merged` and returns it.
    pub fn create_rootfs(&self, image_id: &str, container_id: &str) -> Result<PathBuf, StoreError> {
        self.create_rootfs_with(image_id, container_id, None)
    }

    /// [`Store::create_rootfs`], with a layer tar (a checkpoint's `rootfs-diff.tar`) unpacked
    /// into the upper directory before the mount: the container starts with those changes.
    pub fn create_rootfs_with(&self, image_id: &str, container_id: &str, diff: Option<(&Path, super::unpack::UnpackOptions)>) -> Result<PathBuf, StoreError> {
        if !valid_container_id(container_id) {
            return Err(StoreError::BadContainerId(container_id.into()));
        }
        let rec = self
            .find_image(image_id, &[])?
            .ok_or_else(|| StoreError::NotFound(image_id.into()))?;
        let dir = self.root().join("containers").join(container_id);
        if dir.join("merged").exists() {
            return Err(StoreError::RootfsExists(container_id.into()));
        }
        self.add_container_ref(&rec.id, container_id)?;
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d).map_err(ioe(d))?;
        }
        if let Some((tar, opts)) = diff {
            if let Err(e) = super::unpack::unpack_layer(tar, &upper, opts) {
                let _ = fs::remove_dir_all(&dir);
                return Err(StoreError::Mount { container: container_id.into(), source: io::Error::other(format!("rootfs diff {}: {e}", tar.display())) });
            }
        }
        // overlayfs wants the top layer first. mount(2) takes at most one page of options,
        // so the layers are named by short symlinks `lower/0`, `lower/1`, ... and the mount
        // is made from inside `lower/` with relative names: 500 layers (OVL_MAX_STACK, the
        // kernel's own limit) take under 2 KiB, whatever the store root's length.
        let mut targets = Vec::new();
        for l in rec.layers.iter().rev() {
            targets.push(self.layer_diff(&l.digest)?);
        }
        if targets.is_empty() {
            let empty = dir.join("empty");
            fs::create_dir_all(&empty).map_err(ioe(&empty))?;
            targets.push(empty);
        }
        let lower = dir.join("lower");
        let _ = fs::remove_dir_all(&lower);
        fs::create_dir_all(&lower).map_err(ioe(&lower))?;
        let mut names = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let link = lower.join(i.to_string());
            std::os::unix::fs::symlink(t, &link).map_err(ioe(&link))?;
            names.push(i.to_string());
        }
        let opts = format!("lowerdir={},upperdir=../upper,workdir=../work", names.join(":"));
        let mount_err = |e| StoreError::Mount {
            container: container_id.into(),
            source: e,
        };
        let r = (|| {
            let target = c(&merged)?;
            let data = CString::new(opts).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            mount_from(&lower, target, data)
        })();
        if let Err(e) = r {
            let _ = fs::remove_dir_all(&dir);
            return Err(mount_err(e));
        }
        Ok(merged)
    }

    /// The overlay upper directory of a container's rootfs: what the container changed.
    pub fn upper_dir(&self, container_id: &str) -> Result<PathBuf, StoreError> {
        if !valid_container_id(container_id) {
            return Err(StoreError::BadContainerId(container_id.into()));
        }
        Ok(self.root().join("containers").join(container_id).join("upper"))
    }

    /// Unmounts and deletes a container's rootfs and drops its image reference.
    pub fn remove_rootfs(&self, container_id: &str) -> Result<(), StoreError> {
        if !valid_container_id(container_id) {
            return Err(StoreError::BadContainerId(container_id.into()));
        }
        let dir = self.root().join("containers").join(container_id);
        let merged = dir.join("merged");
        if is_mountpoint(&merged) {
            let t = c(&merged).map_err(|e| StoreError::Mount {
                container: container_id.into(),
                source: e,
            })?;
            // SAFETY: valid C string.
            if unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) } < 0 {
                return Err(StoreError::Mount {
                    container: container_id.into(),
                    source: io::Error::last_os_error(),
                });
            }
        }
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ioe(dir)(e)),
            _ => Ok(()),
        }
    }
}
