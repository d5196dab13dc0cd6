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

impl Store {
    /// Mounts `<root>/containers/<id>/merged` and returns it.
    pub fn create_rootfs(&self, image_id: &str, container_id: &str) -> Result<PathBuf, StoreError> {
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
        // overlayfs wants the top layer first.
        let mut lowers = Vec::new();
        for l in rec.layers.iter().rev() {
            lowers.push(self.layer_diff(&l.digest)?.to_string_lossy().into_owned());
        }
        if lowers.is_empty() {
            let empty = dir.join("empty");
            fs::create_dir_all(&empty).map_err(ioe(&empty))?;
            lowers.push(empty.to_string_lossy().into_owned());
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            upper.display(),
            work.display()
        );
        let mount_err = |e| StoreError::Mount {
            container: container_id.into(),
            source: e,
        };
        let target = c(&merged).map_err(mount_err)?;
        let data = CString::new(opts).map_err(|_| mount_err(io::Error::from(io::ErrorKind::InvalidInput)))?;
        // SAFETY: valid C strings.
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
            let e = io::Error::last_os_error();
            let _ = fs::remove_dir_all(&dir);
            return Err(mount_err(e));
        }
        Ok(merged)
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
