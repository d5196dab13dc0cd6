//! Id-mapped bind mounts: a spec mount with `uidMappings`/`gidMappings` (runtime-spec 1.1,
//! as runc 1.2 and crun read them).
//!
//! Giving a mount an idmap takes CAP_SYS_ADMIN in the user namespace of the file system
//! (the host's for a host directory), and only works on a detached mount. So the parent
//! prepares each such mount before cloning the container — `open_tree(OPEN_TREE_CLONE)`
//! of the source, then `mount_setattr(MOUNT_ATTR_IDMAP)` with a user namespace that holds
//! the mount's mappings — and the init attaches the prepared tree onto its target by fd
//! (`move_mount`), which works from inside the container's own user namespace too.
//!
//! The user namespace an idmap needs is made for the purpose: a clone in a new user
//! namespace that only waits while the parent writes its maps and opens it, then exits
//! (the mount keeps the namespace). Mounts with equal mappings share one. Raw syscalls:
//! neither nix nor std wraps open_tree, mount_setattr or move_mount.

use crate::error::{Context, Error, Result};
use crate::namespaces;
use nix::errno::Errno;
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One slot per spec mount, in spec order: the prepared tree of an id-mapped mount.
pub type Prepared = Vec<Option<OwnedFd>>;

/// Whether the mount asks for an idmap.
pub fn is_idmapped(m: &Mount) -> bool {
    m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty()) || m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty())
}

/// Prepares every id-mapped mount of the spec (none: an empty vector, no syscall).
pub fn prepare(spec: &Spec, bundle: &Path) -> Result<Prepared> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    if !mounts.iter().any(is_idmapped) {
        return Ok(Vec::new());
    }
    let mut userns: Vec<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>, OwnedFd)> = Vec::new();
    let mut out = Vec::with_capacity(mounts.len());
    for m in mounts {
        if !is_idmapped(m) {
            out.push(None);
            continue;
        }
        let dest = m.destination().display().to_string();
        let uid = m.uid_mappings().clone().unwrap_or_default();
        let gid = m.gid_mappings().clone().unwrap_or_default();
        if uid.is_empty() || gid.is_empty() {
            return Err(Error::Spec(format!("mount on {dest}: uidMappings and gidMappings must be given together")));
        }
        let opts = m.options().as_deref().unwrap_or_default();
        let bind = m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        if !bind {
            return Err(Error::Spec(format!("mount on {dest}: uidMappings/gidMappings need a bind mount")));
        }
        let recursive = opts.iter().any(|o| o == "rbind");
        let src = m.source().as_ref().ok_or_else(|| Error::Spec(format!("bind mount on {dest} has no source")))?;
        let src = if src.is_relative() { bundle.join(src) } else { src.clone() };
        let ns = match userns.iter().find(|(u, g, _)| *u == uid && *g == gid) {
            Some((_, _, fd)) => fd.as_raw_fd(),
            None => {
                let fd = userns_with(&uid, &gid)?;
                let raw = fd.as_raw_fd();
                userns.push((uid, gid, fd));
                raw
            }
        };
        // SAFETY: the fd stays open (in `userns`) for the rest of this function.
        let ns = unsafe { BorrowedFd::borrow_raw(ns) };
        out.push(Some(
            idmapped_tree(&src, recursive, ns)
                .map_err(|cause| Error::Sys { context: format!("id-mapped mount of {} on {dest}{}", src.display(), hint(cause)), cause })?,
        ));
    }
    Ok(out)
}

fn hint(e: Errno) -> &'static str {
    match e {
        Errno::ENOSYS => " (id-mapped mounts need Linux 5.12)",
        Errno::EINVAL => " (the source's file system does not support id-mapped mounts)",
        _ => "",
    }
}

/// A detached copy of the mount (tree) at `src`, id-mapped through `userns`.
pub fn idmapped_tree(src: &Path, recursive: bool, userns: BorrowedFd) -> Result<OwnedFd, Errno> {
    let c = CString::new(src.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: a NUL-terminated path; the returned fd is new and ours.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags as libc::c_uint) };
    // SAFETY: Errno::result passed: the fd is the new one open_tree returned, owned by nobody else.
    let tree = unsafe { OwnedFd::from_raw_fd(Errno::result(r)? as i32) };
    let mut attr = libc::mount_attr { attr_set: libc::MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: userns.as_raw_fd() as u64 };
    let at = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: valid fd, empty NUL-terminated path, a mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at as libc::c_uint,
            &mut attr as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(r)?;
    Ok(tree)
}

/// Attaches a prepared tree onto the directory or file `target` names (both by fd: a
/// /proc/self/fd path would not be followed by move_mount).
pub fn attach(tree: BorrowedFd, target: BorrowedFd) -> Result<(), Errno> {
    // SAFETY: two valid fds and empty NUL-terminated paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(|_| ())
}

/// A user namespace with these maps, held by an fd: a child born in it waits on a pipe
/// while the parent writes the maps and opens `/proc/<child>/ns/user`, then exits.
pub fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe")?;
    let pid = crate::process::spawn::clone(nix::sched::CloneFlags::CLONE_NEWUSER)?;
    if pid == 0 {
        // SAFETY: in the child: close our copy of the write end, block until the parent
        // closes its own (EOF), leave without running destructors.
        unsafe {
            libc::close(wr.as_raw_fd());
            let mut b = 0u8;
            libc::read(rd.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(rd);
    let r = namespaces::write_id_maps(pid, uid, gid).and_then(|()| {
        nix::fcntl::open(
            format!("/proc/{pid}/ns/user").as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx("open the idmap user namespace")
    });
    drop(wr);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxIdMappingBuilder, MountBuilder};

    fn map(c: u32, h: u32, n: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default().container_id(c).host_id(h).size(n).build().unwrap()
    }

    #[test]
    fn only_mounts_with_mappings_are_idmapped() {
        let plain = MountBuilder::default().destination("/a").typ("bind").source("/tmp").build().unwrap();
        assert!(!is_idmapped(&plain));
        let m = MountBuilder::default()
            .destination("/a")
            .typ("bind")
            .source("/tmp")
            .uid_mappings(vec![map(0, 1000, 10)])
            .gid_mappings(vec![map(0, 1000, 10)])
            .build()
            .unwrap();
        assert!(is_idmapped(&m));
    }
}
