//! Devices: CRI `Device`s → `linux.devices` plus device-cgroup allow rules.
//!
//! The rules start with "deny everything", then allow the devices every container has (null,
//! zero, full, random, urandom, tty, console, ptmx, pts — the nodes the runtime creates), then
//! each requested device. A requested host path is resolved (symlinks followed) and stat'ed; a
//! directory stands for every device below it (as CRI-O and containerd). Privileged: every
//! device under the host's /dev (as runc's `HostDevices`) and "allow all".

use super::{clean_abs, invalid, SpecError};
use k8s_cri::v1::ContainerConfig;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Devices {
    pub nodes: Vec<LinuxDevice>,
    pub cgroup_rules: Vec<LinuxDeviceCgroup>,
}

fn rule(allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.into()));
    r
}

/// The rules every container starts with.
pub fn default_rules() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{A, C};
    let mut v = vec![rule(false, A, None, None, "rwm")];
    for (maj, min) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)] {
        v.push(rule(true, C, Some(maj), Some(min), "rwm"));
    }
    v.push(rule(true, C, Some(136), None, "rwm")); // /dev/pts/*
    v
}

fn major(rdev: u64) -> i64 {
    libc::major(rdev) as i64
}

fn minor(rdev: u64) -> i64 {
    libc::minor(rdev) as i64
}

/// A device node's description, or None when `p` is not a char/block device.
fn node(p: &Path, container_path: &Path) -> std::io::Result<Option<LinuxDevice>> {
    let md = std::fs::metadata(p)?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Ok(None);
    };
    let mut d = LinuxDevice::default();
    d.set_path(container_path.to_path_buf());
    d.set_typ(typ);
    d.set_major(major(md.rdev()));
    d.set_minor(minor(md.rdev()));
    d.set_file_mode(Some(md.mode() & 0o777));
    d.set_uid(Some(md.uid()));
    d.set_gid(Some(md.gid()));
    Ok(Some(d))
}

/// Every device below `dir` (no symlinks followed), container path = `base` + the relative path.
fn walk(dir: &Path, base: &Path, skip_host_dirs: bool, out: &mut Vec<LinuxDevice>, depth: usize) {
    if depth > 16 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        let cp = base.join(&name);
        if ft.is_dir() {
            // runc's HostDevices skips these: mounts the runtime makes itself, or not devices.
            if skip_host_dirs && matches!(name.to_str(), Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev")) {
                continue;
            }
            walk(&p, &cp, skip_host_dirs, out, depth + 1);
        } else if ft.is_char_device() || ft.is_block_device() {
            if skip_host_dirs && name == "console" {
                continue;
            }
            if let Ok(Some(d)) = node(&p, &cp) {
                if d.major() == 0 && d.minor() == 0 {
                    continue;
                }
                out.push(d);
            }
        }
    }
}

fn access(field: &str, perms: &str) -> Result<String, SpecError> {
    if perms.is_empty() {
        return Ok("rwm".into());
    }
    let mut seen = String::new();
    for c in perms.chars() {
        if !"rwm".contains(c) {
            return Err(invalid(format!("{field} {perms:?} may only contain r, w and m")));
        }
        if !seen.contains(c) {
            seen.push(c);
        }
    }
    Ok(seen)
}

pub fn devices(c: &ContainerConfig, privileged: bool) -> Result<Devices, SpecError> {
    devices_with(c, privileged, Path::new("/dev"))
}

pub(crate) fn devices_with(c: &ContainerConfig, privileged: bool, host_dev: &Path) -> Result<Devices, SpecError> {
    let mut nodes: Vec<LinuxDevice> = Vec::new();
    let mut rules = default_rules();
    if privileged {
        walk(host_dev, Path::new("/dev"), true, &mut nodes, 0);
        rules = vec![rule(true, LinuxDeviceType::A, None, None, "rwm")];
    }
    for (n, d) in c.devices.iter().enumerate() {
        let field = format!("devices[{n}]");
        let cpath = PathBuf::from(clean_abs(&format!("{field}.container_path"), &d.container_path)?);
        let hpath = clean_abs(&format!("{field}.host_path"), &d.host_path)?;
        let acc = access(&format!("{field}.permissions"), &d.permissions)?;
        let real = std::fs::canonicalize(&hpath).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SpecError::NotFound(format!("{field}: host device {hpath:?} does not exist")),
            _ => SpecError::Io { what: format!("resolve {field}.host_path {hpath:?}"), source: e },
        })?;
        let mut found = Vec::new();
        match node(&real, &cpath) {
            Ok(Some(dev)) => found.push(dev),
            Ok(None) if real.is_dir() => walk(&real, &cpath, false, &mut found, 0),
            Ok(None) => return Err(invalid(format!("{field}: host path {hpath:?} is not a device"))),
            Err(e) => return Err(SpecError::Io { what: format!("stat {hpath:?}"), source: e }),
        }
        for dev in found {
            if !privileged {
                rules.push(rule(true, dev.typ(), Some(dev.major()), Some(dev.minor()), &acc));
            }
            // A requested device replaces a host device at the same path.
            nodes.retain(|x| x.path() != dev.path());
            nodes.push(dev);
        }
    }
    Ok(Devices { nodes, cgroup_rules: rules })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::tests::TempDir;
    use k8s_cri::v1::Device;

    fn dev(host: &str, ctr: &str, perms: &str) -> Device {
        Device { host_path: host.into(), container_path: ctr.into(), permissions: perms.into() }
    }

    #[test]
    fn requested_device() {
        let c = ContainerConfig { devices: vec![dev("/dev/null", "/dev/mynull", "rw")], ..Default::default() };
        let d = devices_with(&c, false, Path::new("/dev")).unwrap();
        assert_eq!(d.nodes.len(), 1);
        let n = &d.nodes[0];
        assert_eq!((n.path().as_path(), n.typ(), n.major(), n.minor()), (Path::new("/dev/mynull"), LinuxDeviceType::C, 1, 3));
        let last = d.cgroup_rules.last().unwrap();
        assert_eq!((last.allow(), last.major(), last.minor(), last.access().as_deref()), (true, Some(1), Some(3), Some("rw")));
        assert!(!d.cgroup_rules[0].allow(), "deny-all first");
    }

    #[test]
    fn symlink_and_directory_sources() {
        let t = TempDir::new("dev");
        std::os::unix::fs::symlink("/dev/zero", t.path().join("z")).unwrap();
        let c = ContainerConfig { devices: vec![dev(t.path().join("z").to_str().unwrap(), "/dev/z", "")], ..Default::default() };
        let d = devices_with(&c, false, Path::new("/dev")).unwrap();
        assert_eq!((d.nodes[0].major(), d.nodes[0].minor()), (1, 5));
        assert_eq!(d.cgroup_rules.last().unwrap().access().as_deref(), Some("rwm"));
        if Path::new("/dev/pts").is_dir() && Path::new("/dev/pts/ptmx").exists() {
            let c = ContainerConfig { devices: vec![dev("/dev/pts", "/dev/hostpts", "r")], ..Default::default() };
            let d = devices_with(&c, false, Path::new("/dev")).unwrap();
            assert!(d.nodes.iter().any(|n| n.path() == Path::new("/dev/hostpts/ptmx")), "a directory brings its devices");
        }
    }

    #[test]
    fn bad_devices() {
        use tonic::Code::*;
        let code = |d: Device| {
            devices_with(&ContainerConfig { devices: vec![d], ..Default::default() }, false, Path::new("/dev")).unwrap_err().code()
        };
        assert_eq!(code(dev("/dev/does-not-exist-xyz", "/dev/x", "rw")), NotFound);
        assert_eq!(code(dev("/etc/hostname", "/dev/x", "rw")), InvalidArgument);
        assert_eq!(code(dev("/dev/null", "dev/x", "rw")), InvalidArgument);
        assert_eq!(code(dev("/dev/null", "/dev/../x", "rw")), InvalidArgument);
        assert_eq!(code(dev("null", "/dev/x", "rw")), InvalidArgument);
        assert_eq!(code(dev("/dev/null", "/dev/x", "rwx")), InvalidArgument);
    }

    #[test]
    fn privileged_gets_host_devices() {
        let d = devices_with(&ContainerConfig::default(), true, Path::new("/dev")).unwrap();
        assert!(d.nodes.iter().any(|n| n.path() == Path::new("/dev/null")));
        assert!(!d.nodes.iter().any(|n| n.path().starts_with("/dev/pts")), "pts is the runtime's");
        assert_eq!(d.cgroup_rules.len(), 1);
        assert!(d.cgroup_rules[0].allow() && d.cgroup_rules[0].typ() == Some(LinuxDeviceType::A));
        let c = ContainerConfig { devices: vec![dev("/dev/zero", "/dev/null", "r")], ..Default::default() };
        let d = devices_with(&c, true, Path::new("/dev")).unwrap();
        let nulls: Vec<_> = d.nodes.iter().filter(|n| n.path() == Path::new("/dev/null")).collect();
        assert_eq!(nulls.len(), 1);
        assert_eq!(nulls[0].minor(), 5, "the requested device wins over the host's");
    }
}
