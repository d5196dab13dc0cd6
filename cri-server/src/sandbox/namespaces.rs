//! Pinned namespaces: a thread unshares the namespace, sets the hostname in a new UTS one,
//! and bind-mounts `/proc/thread-self/ns/<kind>` onto a file; the namespace lives as long as
//! that mount does, with no process in it.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Net,
    Ipc,
    Uts,
}

impl Kind {
    fn flag(self) -> CloneFlags {
        match self {
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
        }
    }
    fn proc_name(self) -> &'static str {
        match self {
            Kind::Net => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
        }
    }
}

/// Create a namespace of `kind` and pin it at `dir/<kind>`.
pub fn pin(kind: Kind, dir: &Path, hostname: Option<&str>) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let target = dir.join(kind.proc_name());
    std::fs::File::create(&target)?;
    let t = target.clone();
    let host = hostname.map(String::from);
    // A thread of its own: unshare changes only the calling thread's namespaces, and the
    // thread ends right after, so no other task of the daemon ever runs in the pod's.
    let r = std::thread::spawn(move || -> io::Result<()> {
        unshare(kind.flag()).map_err(io::Error::from)?;
        if let (Kind::Uts, Some(h)) = (kind, &host) {
            nix::unistd::sethostname(h).map_err(io::Error::from)?;
        }
        let src = format!("/proc/thread-self/ns/{}", kind.proc_name());
        mount(Some(src.as_str()), &t, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(io::Error::from)
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?;
    if let Err(e) = r {
        let _ = std::fs::remove_file(&target);
        return Err(e);
    }
    Ok(target)
}

/// Unpin: detach the bind mount (the namespace goes once no process is in it) and remove the
/// file. A file that is not mounted (a crash between create and mount) is just removed.
pub fn unpin(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(io::Error::from(e)),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Run `f` in a thread that has joined the namespace pinned at `path` (for sysctls).
pub fn in_ns<T: Send + 'static>(path: &Path, kind: Kind, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    let p = path.to_path_buf();
    std::thread::spawn(move || -> io::Result<T> {
        let fd = std::fs::File::open(&p)?;
        nix::sched::setns(&fd, kind.flag()).map_err(io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}
