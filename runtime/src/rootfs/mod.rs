//! The container's root filesystem: mounts before pivot_root, pivot_root itself, and the
//! hardening after it.

pub mod devices;
#[allow(unsafe_code)] // open_tree/mount_setattr/move_mount
pub mod idmap;
#[allow(unsafe_code)] // mount_setattr
pub mod mount_attr;
pub mod mounts;
pub mod paths;
#[allow(unsafe_code)] // openat2
pub mod safe_path;

use crate::error::{Context, Error, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;
use std::os::fd::AsFd;
use std::path::Path;

pub struct Setup<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub cgroup: &'a Path,
    pub new_cgroupns: bool,
    /// In a user namespace device nodes cannot be created: bind the host's.
    pub in_userns: bool,
    /// No mount namespace of its own: the spec's mounts land in the host's (delete
    /// detaches them), and nothing is done to the host's propagation or root.
    pub shares_host_mounts: bool,
    /// The id-mapped mounts the parent prepared ([`idmap::prepare`]), by spec mount index.
    pub idmapped: &'a idmap::Prepared,
}

fn root_propagation(spec: &Spec) -> Result<MsFlags> {
    let name = spec.linux().as_ref().and_then(|l| l.rootfs_propagation().clone()).unwrap_or_default();
    if name.is_empty() {
        return Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    }
    mounts::propagation_flag(&name).ok_or_else(|| Error::Spec(format!("invalid rootfsPropagation {name:?}")))
}

/// Everything done while the host's root is still visible: propagation, the rootfs bind,
/// spec mounts (targets resolved inside the rootfs), /dev and spec devices.
pub fn prepare(s: &Setup) -> Result<()> {
    if !s.shares_host_mounts {
        // Nothing mounted below may propagate back to the host.
        mount(None::<&str>, "/", None::<&str>, root_propagation(s.spec)?, None::<&str>).ctx("set / propagation")?;
        make_parent_private(s.rootfs)?;
        // pivot_root needs the new root to be a mount point.
        mount(Some(s.rootfs), s.rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).ctx("bind rootfs onto itself")?;
    }
    let root = nix::fcntl::open(s.rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .with_ctx(|| format!("open rootfs {}", s.rootfs.display()))?;
    let spec_mounts = s.spec.mounts().as_deref().unwrap_or_default();
    let mount_label = s.spec.linux().as_ref().and_then(|l| l.mount_label().as_deref());
    let ctx = mounts::MountContext { root: root.as_fd(), bundle: s.bundle, cgroup: s.cgroup, new_cgroupns: s.new_cgroupns, mount_label };
    for (i, m) in spec_mounts.iter().enumerate() {
        let tree = s.idmapped.get(i).and_then(|t| t.as_ref()).map(|t| t.as_fd());
        mounts::mount_one(&ctx, m, tree)?;
    }
    if mounts::is_fresh_mount_at(spec_mounts, "/dev") {
        devices::setup_default(root.as_fd(), s.in_userns)?;
    }
    let linux = s.spec.linux().as_ref();
    if let Some(devs) = linux.and_then(|l| l.devices().as_ref()) {
        devices::create_spec_devices(root.as_fd(), devs, s.in_userns)?;
    }
    Ok(())
}

/// pivot_root requires the rootfs's parent mount not to be shared.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ctx("read mountinfo")?;
    let parent = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| rootfs.starts_with(unescape(mp)))
        .max_by_key(|mp| mp.len())
        .map(unescape)
        .unwrap_or_else(|| "/".into());
    mount(None::<&str>, parent.as_str(), None::<&str>, MsFlags::MS_PRIVATE, None::<&str>).with_ctx(|| format!("make {parent} private"))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// Makes the rootfs the container's `/`: pivot_root (old root lazily detached) or, with
/// `no_pivot`, a move mount plus chroot.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        nix::unistd::chdir(rootfs).ctx("chdir to rootfs")?;
        mount(Some(rootfs), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).ctx("move rootfs to /")?;
        nix::unistd::chroot(".").ctx("chroot")?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one; detaching it
        // leaves the new root alone, without needing a put_old directory in the image.
        let old_root = nix::fcntl::open("/", OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .ctx("open old root")?;
        nix::unistd::chdir(rootfs).ctx("chdir to rootfs")?;
        nix::unistd::pivot_root(".", ".").ctx("pivot_root")?;
        // Work on the old root through its fd: "." would name the new root, and making
        // that slave would strip the propagation of the container's own mounts.
        nix::unistd::fchdir(&old_root).ctx("chdir to old root")?;
        mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>).ctx("make old root slave")?;
        umount2(".", MntFlags::MNT_DETACH).ctx("detach old root")?;
    }
    nix::unistd::chdir("/").ctx("chdir /")
}

/// A container in the host's mount namespace only changes its root directory.
pub fn chroot(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).ctx("chdir to rootfs")?;
    nix::unistd::chroot(".").ctx("chroot")?;
    nix::unistd::chdir("/").ctx("chdir /")
}

/// Detaches what a container without its own mount namespace mounted below its rootfs
/// (deepest first); the rootfs mount itself, if any, is the caller's.
pub fn detach_host_mounts(rootfs: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let mut below: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|mp| Path::new(mp).starts_with(rootfs) && Path::new(mp) != rootfs)
        .collect();
    below.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in below {
        if let Err(e) = umount2(m.as_str(), MntFlags::MNT_DETACH) {
            crate::logger::warn(&format!("detach {m}: {e}"));
        }
    }
}

/// After pivot_root: the spec's propagation on /, masked and read-only paths, read-only root.
pub fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    if linux.and_then(|l| l.rootfs_propagation().as_ref()).is_some_and(|p| !p.is_empty()) {
        mount(None::<&str>, "/", None::<&str>, root_propagation(spec)?, None::<&str>).ctx("set / propagation")?;
    }
    for p in linux.and_then(|l| l.masked_paths().as_ref()).into_iter().flatten() {
        paths::mask(p)?;
    }
    for p in linux.and_then(|l| l.readonly_paths().as_ref()).into_iter().flatten() {
        paths::readonly(p)?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        let flags = mounts::current_flags(Path::new("/")) | MsFlags::MS_RDONLY;
        mounts::remount_bind(Path::new("/"), flags, Path::new("/"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_unescape() {
        assert_eq!(super::unescape("/a\\040b\\134c"), "/a b\\c");
    }
}
