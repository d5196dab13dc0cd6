//! /dev inside the container: default devices, spec devices, and the standard links.

use super::safe_path;
use crate::error::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::BorrowedFd;
use std::path::Path;

/// A device node to create in the container.
pub struct Device<'a> {
    pub path: &'a Path,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets (runc's defaults).
const DEFAULTS: [(&str, u64, u64); 6] =
    [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)];

/// Populates a fresh /dev: default devices and the standard symlinks.
pub fn setup_default(root: BorrowedFd, bind_from_host: bool) -> Result<()> {
    for (path, major, minor) in DEFAULTS {
        let d = Device { path: Path::new(path), kind: SFlag::S_IFCHR, major, minor, mode: 0o666, uid: 0, gid: 0 };
        create(root, &d, bind_from_host)?;
    }
    let dev = safe_path::mkdir_all(root, Path::new("/dev"))?;
    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore"));
    }
    for (name, target) in links {
        // A fresh tmpfs has none of them, but an image's /dev might: replace.
        let _ = unlinkat(&dev, name, UnlinkatFlags::NoRemoveDir);
        symlinkat(target, &dev, name).with_ctx(|| format!("symlink /dev/{name}"))?;
    }
    safe_path::mkdir_all(root, Path::new("/dev/shm"))?;
    safe_path::mkdir_all(root, Path::new("/dev/pts"))?;
    Ok(())
}

/// Creates one device: mknod, or a bind mount of the host's node where mknod is not
/// allowed (inside a user namespace).
pub fn create(root: BorrowedFd, d: &Device, bind_from_host: bool) -> Result<()> {
    if bind_from_host {
        return bind_host(root, d);
    }
    let (parent, name) = safe_path::parent_and_name(root, d.path)?;
    match unlinkat(&parent, name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).with_ctx(|| format!("replace {}", d.path.display())),
    }
    let mode = Mode::from_bits_truncate(d.mode & 0o7777);
    match mknodat(&parent, name.as_os_str(), d.kind, mode, makedev(d.major, d.minor)) {
        Err(Errno::EPERM) => return bind_host(root, d),
        r => r.with_ctx(|| format!("mknod {}", d.path.display()))?,
    }
    fchownat(&parent, name.as_os_str(), Some(Uid::from_raw(d.uid)), Some(Gid::from_raw(d.gid)), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .with_ctx(|| format!("chown {}", d.path.display()))
}

/// Binds the host's node at the device's path — only if it is that device: the spec's
/// path names a host file here, and a config must not turn `/etc/shadow` (or a symlink
/// planted in /dev) into a "device" of the container. The node is opened once and bound
/// through that fd, so what was checked is what is mounted.
fn bind_host(root: BorrowedFd, d: &Device) -> Result<()> {
    let path = d.path;
    let src =
        nix::fcntl::open(path, nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC, Mode::empty())
            .with_ctx(|| format!("open host device {}", path.display()))?;
    let st = nix::sys::stat::fstat(&src).with_ctx(|| format!("stat host device {}", path.display()))?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind != d.kind || st.st_rdev != makedev(d.major, d.minor) {
        return Err(crate::error::Error::Spec(format!(
            "device {}: the host's {} is not the {} device {}:{} the spec names (it cannot be bound in a user namespace)",
            path.display(),
            path.display(),
            if d.kind == SFlag::S_IFBLK { "block" } else { "character" },
            d.major,
            d.minor
        )));
    }
    let target = safe_path::ensure(root, path, true)?;
    mount(Some(&safe_path::proc_fd_path(&src)), &safe_path::proc_fd_path(&target), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .with_ctx(|| format!("bind host device {}", path.display()))
}

/// Creates the spec's `linux.devices`.
pub fn create_spec_devices(root: BorrowedFd, devices: &[LinuxDevice], bind_from_host: bool) -> Result<()> {
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(crate::error::Error::Spec(format!("device {}: type \"a\" is not a node type", d.path().display())))
            }
        };
        let dev = Device {
            path: d.path(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        create(root, &dev, bind_from_host && kind != SFlag::S_IFIFO)?;
    }
    Ok(())
}
