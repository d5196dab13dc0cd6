//! Container root filesystems: an overlayfs mount of the image's unpacked layers (read-only
//! lower dirs, shared) with a per-container upper dir. Creating one registers the container
//! as a user of the image (RemoveImage refuses until `remove_rootfs`).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::store::{ioe, valid_container_id, Store, StoreError};

/// A user-namespaced pod's view of its image: the layers id-mapped through the pod's user
/// namespace (so that the image's root-owned files are its root's), and the container's
/// upper dir and directory owned by the pod's root on the host.
#[derive(Debug, Clone)]
pub struct Idmap {
    /// The pod's pinned user namespace.
    pub userns: PathBuf,
    pub root_uid: u32,
    pub root_gid: u32,
}

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
        // SAFETY: NUL-terminated strings that outlive the call; data is a NUL-terminated option string.
        let r = unsafe { libc::mount(c"overlay".as_ptr(), target.as_ptr(), c"overlay".as_ptr(), 0, data.as_ptr().cast()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("mount thread panicked"))?
}

/// linux/mount.h values the libc crate does not define for every target.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;

fn cvt(r: libc::c_long) -> io::Result<i32> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

/// An overlayfs whose lower layers are detached clones of the layer dirs, id-mapped with
/// the pod's user namespace (Linux 6.15 takes detached mounts as layers), built with the
/// new mount API: each layer is one `lowerdir+` (named by its fd's /proc path), so no
/// option string limits the count and no working directory is changed.
fn mount_idmapped(lowers: &[PathBuf], upper: &Path, work: &Path, merged: &Path, userns: &Path) -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let ns = fs::File::open(userns)?;
    let mut trees = Vec::with_capacity(lowers.len());
    for l in lowers {
        let p = c(l)?;
        // SAFETY: a NUL-terminated path; the fd returned is new and ours.
        let fd =
            cvt(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, p.as_ptr(), libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) })
                .map_err(|e| io::Error::new(e.kind(), format!("clone layer {}: {e}", l.display())))?;
        // SAFETY: fd was just returned by open_tree and nothing else owns it.
        let tree = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut attr = libc::mount_attr {
            attr_set: libc::MOUNT_ATTR_IDMAP | libc::MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: ns.as_raw_fd() as u64,
        };
        // SAFETY: valid fd, empty path, a mount_attr of the size passed.
        cvt(unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH as libc::c_uint,
                &mut attr as *mut libc::mount_attr,
                std::mem::size_of::<libc::mount_attr>(),
            )
        })
        .map_err(|e| io::Error::new(e.kind(), format!("id-map layer {}: {e}", l.display())))?;
        trees.push(tree);
    }
    // SAFETY: a NUL-terminated file system name.
    let fsfd = unsafe { OwnedFd::from_raw_fd(cvt(libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC))?) };
    let set = |key: &std::ffi::CStr, val: &CString| -> io::Result<()> {
        // SAFETY: valid fd and NUL-terminated strings.
        cvt(unsafe { libc::syscall(libc::SYS_fsconfig, fsfd.as_raw_fd(), FSCONFIG_SET_STRING, key.as_ptr(), val.as_ptr(), 0) })
            .map(|_| ())
            .map_err(|e| io::Error::new(e.kind(), format!("overlay {}: {e}{}", key.to_string_lossy(), fs_log(&fsfd))))
    };
    for t in &trees {
        set(c"lowerdir+", &CString::new(format!("/proc/self/fd/{}", t.as_raw_fd()))?)?;
    }
    set(c"upperdir", &c(upper)?)?;
    set(c"workdir", &c(work)?)?;
    // SAFETY: valid fd; no key or value for CMD_CREATE.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fsfd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })
    .map_err(|e| io::Error::new(e.kind(), format!("create overlay: {e}{}", fs_log(&fsfd))))?;
    // SAFETY: valid fd.
    let mnt = unsafe { OwnedFd::from_raw_fd(cvt(libc::syscall(libc::SYS_fsmount, fsfd.as_raw_fd(), FSMOUNT_CLOEXEC, 0))?) };
    let target = c(merged)?;
    // SAFETY: valid fd, empty source path, NUL-terminated target path.
    cvt(unsafe {
        libc::syscall(libc::SYS_move_mount, mnt.as_raw_fd(), c"".as_ptr(), libc::AT_FDCWD, target.as_ptr(), libc::MOVE_MOUNT_F_EMPTY_PATH)
    })
    .map(|_| ())
    .map_err(|e| io::Error::new(e.kind(), format!("attach overlay on {}: {e}", merged.display())))
}

/// The kernel's messages about a failed fsconfig (read from the fs context fd), for the error.
fn fs_log(fsfd: &std::os::fd::OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    let mut out = String::new();
    let mut buf = [0u8; 512];
    for _ in 0..8 {
        // SAFETY: reading into a live buffer of the size passed.
        let n = unsafe { libc::read(fsfd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.push_str(" (");
        out.push_str(String::from_utf8_lossy(&buf[..n as usize]).trim());
        out.push(')');
    }
    out
}

impl Store {
    /// Mounts `<root>/containers/<id>/merged` and returns it.
    pub fn create_rootfs(&self, image_id: &str, container_id: &str, idmap: Option<&Idmap>) -> Result<PathBuf, StoreError> {
        self.create_rootfs_with(image_id, container_id, idmap, None)
    }

    /// [`Store::create_rootfs`], with a layer tar (a checkpoint's `rootfs-diff.tar`) unpacked
    /// into the upper directory before the mount: the container starts with those changes.
    pub fn create_rootfs_with(
        &self,
        image_id: &str,
        container_id: &str,
        idmap: Option<&Idmap>,
        diff: Option<(&Path, super::unpack::UnpackOptions)>,
    ) -> Result<PathBuf, StoreError> {
        if !valid_container_id(container_id) {
            return Err(StoreError::BadContainerId(container_id.into()));
        }
        let rec = self.find_image(image_id, &[])?.ok_or_else(|| StoreError::NotFound(image_id.into()))?;
        let dir = self.root().join("containers").join(container_id);
        if dir.join("merged").exists() {
            return Err(StoreError::RootfsExists(container_id.into()));
        }
        self.add_container_ref(&rec.id, container_id)?;
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d).map_err(ioe(d))?;
        }
        // Only its own container reaches this directory: the daemon, or (user-namespaced)
        // the pod's root, which must also own the upper dir to own the rootfs's `/`.
        let r = (|| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
            if let Some(m) = idmap {
                for d in [&dir, &upper] {
                    std::os::unix::fs::chown(d, Some(m.root_uid), Some(m.root_gid))?;
                }
            }
            Ok::<(), io::Error>(())
        })();
        if let Err(e) = r {
            let _ = fs::remove_dir_all(&dir);
            return Err(ioe(&dir)(e));
        }
        if let Some((tar, opts)) = diff {
            if let Err(e) = super::unpack::unpack_layer(tar, &upper, opts) {
                let _ = fs::remove_dir_all(&dir);
                return Err(StoreError::Mount {
                    container: container_id.into(),
                    source: io::Error::other(format!("rootfs diff {}: {e}", tar.display())),
                });
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
        let mount_err = |e| StoreError::Mount { container: container_id.into(), source: e };
        if let Some(m) = idmap {
            if let Err(e) = mount_idmapped(&targets, &upper, &work, &merged, &m.userns) {
                let _ = fs::remove_dir_all(&dir);
                return Err(mount_err(e));
            }
            return Ok(merged);
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
            let t = c(&merged).map_err(|e| StoreError::Mount { container: container_id.into(), source: e })?;
            // SAFETY: valid C string.
            if unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) } < 0 {
                return Err(StoreError::Mount { container: container_id.into(), source: io::Error::last_os_error() });
            }
        }
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ioe(dir)(e)),
            _ => Ok(()),
        }
    }
}
