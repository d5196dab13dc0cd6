//! Spec mounts: option parsing and mounting onto targets resolved inside the rootfs.

use super::mount_attr::{self, RecAttr};
use super::safe_path;
use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

/// A mount's options split the way mount(2) wants them.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub flags: MsFlags,
    /// Propagation changes applied after the mount (one mount(2) call each).
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options (`size=64m`, `mode=755`, ...).
    pub data: Vec<String>,
    /// Attributes for the whole mount tree (`rro`, `rnosuid`, ...), set after the mount.
    pub rec: RecAttr,
}

/// Every mount option berth recognises (as `berth features` reports them): the flag
/// options below and the propagation options; the recursive ones are in
/// [`mount_attr::REC_OPTIONS`].
pub const KNOWN_OPTIONS: &[&str] = &[
    "defaults",
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options { flags: MsFlags::empty(), propagation: Vec::new(), data: Vec::new(), rec: RecAttr::default() };
    for opt in opts {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            p => {
                if let Some(f) = propagation_flag(p) {
                    o.propagation.push(f);
                } else if !mount_attr::apply_option(&mut o.rec, p) {
                    o.data.push(p.to_string());
                }
                continue;
            }
        };
        o.flags = (o.flags | set) - clear;
    }
    o
}

/// `rprivate` and friends as mount(2) flags.
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// What a mount needs to know about the container beyond the mount itself.
pub struct MountContext<'a> {
    pub root: BorrowedFd<'a>,
    pub bundle: &'a Path,
    /// The container's cgroup directory on the host.
    pub cgroup: &'a Path,
    pub new_cgroupns: bool,
    /// linux.mountLabel (SELinux), added as `context=` where runc adds it.
    pub mount_label: Option<&'a str>,
}

/// Flags a user namespace may not clear on a bind mount of a mount it does not own.
const LOCKED: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_RDONLY)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME);

/// `tree`: the mount prepared detached and id-mapped by the parent, attached instead of a
/// plain bind.
pub fn mount_one(ctx: &MountContext, m: &Mount, tree: Option<BorrowedFd>) -> Result<()> {
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("none");
    let dest = m.destination();
    let what = || format!("mount {} on {}", typ, dest.display());

    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, dest, &opts);
    }
    // Type "bind" is a bind mount even when the options forget to say so (as crun).
    let mut opts = opts;
    if typ == "bind" {
        opts.flags |= MsFlags::MS_BIND;
    }
    let bind = opts.flags.contains(MsFlags::MS_BIND);
    let source = m.source().as_ref().map(|s| if s.is_relative() && bind { ctx.bundle.join(s) } else { s.clone() });
    let is_file = if bind {
        // Name the real cause: a missing source, not whatever the mount call says later.
        let src = source.as_deref().ok_or_else(|| Error::Spec(format!("bind mount on {} has no source", dest.display())))?;
        let md = std::fs::metadata(src).with_ctx(|| format!("bind mount source {} for {}", src.display(), dest.display()))?;
        !md.is_dir()
    } else {
        false
    };
    let target_fd = safe_path::ensure(ctx.root, dest, is_file)?;
    let target = safe_path::proc_fd_path(&target_fd);

    if let Some(tree) = tree {
        use std::os::fd::AsFd;
        super::idmap::attach(tree, target_fd.as_fd())
            .map_err(|cause| Error::Sys { context: format!("attach the id-mapped mount on {}", dest.display()), cause })?;
        remount_bind(&mounted(ctx, dest)?, opts.flags, dest)?;
    } else if bind {
        let src = source.unwrap_or_default();
        mount(Some(&src), &target, None::<&str>, opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC), None::<&str>)
            .with_ctx(|| format!("bind {} on {}", src.display(), dest.display()))?;
        remount_bind(&mounted(ctx, dest)?, opts.flags, dest)?;
    } else {
        let data = crate::lsm::label_mount_data(typ, opts.data.join(","), ctx.mount_label);
        let data = (!data.is_empty()).then_some(data);
        let r = mount(source.as_deref().or(Some(Path::new(typ))), &target, Some(typ), opts.flags, data.as_deref());
        match r {
            // sysfs can only be mounted by the owner of the network namespace: bind the host's.
            Err(Errno::EPERM) if typ == "sysfs" => {
                mount(Some("/sys"), &target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).with_ctx(what)?;
                remount_bind(&mounted(ctx, dest)?, opts.flags | MsFlags::MS_RDONLY, dest)?;
            }
            // ENODEV: the kernel does not know this file system type; name that.
            Err(Errno::ENODEV) if !known_filesystem(typ) => {
                return Err(Error::Spec(format!("mount {typ} on {}: this kernel has no file system type {typ:?}", dest.display())))
            }
            r => r.with_ctx(what)?,
        }
    }
    if opts.propagation.is_empty() && opts.rec.is_empty() {
        return Ok(());
    }
    // One fresh lookup of the new mount serves both the propagation changes and the
    // recursive attributes.
    let top = mounted(ctx, dest)?;
    for p in &opts.propagation {
        mount(None::<&str>, &*top, None::<&str>, *p, None::<&str>).with_ctx(|| format!("set propagation of {}", dest.display()))?;
    }
    if !opts.rec.is_empty() {
        use std::os::fd::AsFd;
        mount_attr::set_recursive(top._fd.as_fd(), opts.rec).map_err(|e| match e {
            Errno::ENOSYS => {
                Error::Spec(format!("mount on {}: recursive mount options need mount_setattr(2) (Linux 5.12)", dest.display()))
            }
            cause => Error::Sys { context: format!("set recursive attributes of {}", dest.display()), cause },
        })?;
    }
    Ok(())
}

/// A handle on what is now mounted at `dest`: the fd opened before mounting still names
/// the covered directory, so remounts and propagation changes need a fresh lookup.
struct Mounted {
    _fd: std::os::fd::OwnedFd,
    path: PathBuf,
}

impl std::ops::Deref for Mounted {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

fn mounted(ctx: &MountContext, dest: &Path) -> Result<Mounted> {
    let fd =
        safe_path::open_in_root(ctx.root, dest, nix::fcntl::OFlag::O_PATH, 0).with_ctx(|| format!("open {} in rootfs", dest.display()))?;
    let path = safe_path::proc_fd_path(&fd);
    Ok(Mounted { _fd: fd, path })
}

/// Applies per-mount flags to a bind mount (bind itself ignores them), keeping flags a
/// user namespace cannot clear when the first try is refused.
pub fn remount_bind(target: &Path, flags: MsFlags, dest: &Path) -> Result<()> {
    let extra = flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if extra.is_empty() {
        return Ok(());
    }
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match mount(None::<&str>, target, None::<&str>, base | extra, None::<&str>) {
        Err(Errno::EPERM) => {
            let locked = current_flags(target) & LOCKED;
            mount(None::<&str>, target, None::<&str>, base | extra | locked, None::<&str>)
                .with_ctx(|| format!("remount {}", dest.display()))
        }
        r => r.with_ctx(|| format!("remount {}", dest.display())),
    }
}

/// The mount flags currently in force at `path` (from statvfs).
pub fn current_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let Ok(st) = nix::sys::statvfs::statvfs(path) else { return MsFlags::empty() };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

/// cgroup mounts: in a cgroup namespace a fresh cgroup2 mount (rooted at the container's
/// cgroup); without one, a bind of the container's own cgroup directory.
fn mount_cgroup(ctx: &MountContext, dest: &Path, opts: &Options) -> Result<()> {
    let target_fd = safe_path::ensure(ctx.root, dest, false)?;
    let target = safe_path::proc_fd_path(&target_fd);
    let flags = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
    if ctx.new_cgroupns {
        mount(Some("cgroup2"), &target, Some("cgroup2"), flags, None::<&str>)
            .with_ctx(|| format!("mount cgroup2 on {}", dest.display()))?;
    } else {
        mount(Some(ctx.cgroup), &target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .with_ctx(|| format!("bind cgroup on {}", dest.display()))?;
        remount_bind(&mounted(ctx, dest)?, flags, dest)?;
    }
    Ok(())
}

/// Whether the spec mounts a fresh filesystem (not a bind) on `dest`.
pub fn is_fresh_mount_at(mounts: &[Mount], dest: &str) -> bool {
    mounts.iter().any(|m| {
        m.destination() == &PathBuf::from(dest)
            && !parse_options(m.options().as_deref().unwrap_or_default()).flags.contains(MsFlags::MS_BIND)
    })
}

/// Whether /proc/filesystems lists `typ` (else assume it does: the mount error stands).
fn known_filesystem(typ: &str) -> bool {
    match std::fs::read_to_string("/proc/filesystems") {
        Ok(list) => list.lines().any(|l| l.split_whitespace().last() == Some(typ)),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o = parse_options(&s(&["rbind", "ro", "nosuid", "rslave", "size=64m", "mode=755"]));
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, s(&["size=64m", "mode=755"]));
    }

    #[test]
    fn later_options_override_earlier() {
        let o = parse_options(&s(&["ro", "rw", "noexec", "exec"]));
        assert!(o.flags.is_empty());
    }
}
