//! User-namespaced pods (KEP-127, `userns_options` mode POD): the pod's id mapping — the
//! one kubelet sends, or a 65536-id block the daemon allocates — and its pinned user
//! namespace, which owns the pod's network, IPC and UTS namespaces too (so that the
//! pod's root can use them: mount sysfs and mqueue, set its hostname).
//!
//! The allocation has no file of its own: each pod's record holds its mapping, and the
//! blocks in use are the union over the records, so a restart or a removal needs no extra
//! bookkeeping and cannot leak a block.

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;

/// The size of a block the daemon allocates (what kubelet gives each pod).
pub const BLOCK: u32 = 65536;

/// One pod's mapping: container ids `0..len` are host ids `host..host+len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub uid_host: u32,
    pub gid_host: u32,
    pub len: u32,
    /// Allocated by the daemon (from `runtime.userns_first_id`) rather than sent by kubelet.
    pub allocated: bool,
}

/// What a pod's `userns_options` asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// The host's user namespace.
    Node,
    /// A user namespace of the pod's own with this mapping (None: allocate one).
    Pod(Option<IdMap>),
}

fn one(what: &str, v: &[cri::IdMapping]) -> Result<(u32, u32), String> {
    let [m] = v else {
        return Err(format!("userns_options.{what}: exactly one mapping is supported, got {}", v.len()));
    };
    if m.container_id != 0 {
        return Err(format!("userns_options.{what}: the mapping must start at container id 0 (got {})", m.container_id));
    }
    if m.length == 0 {
        return Err(format!("userns_options.{what}: empty mapping"));
    }
    if m.host_id.checked_add(m.length).is_none() {
        return Err(format!("userns_options.{what}: host ids {}+{} overflow", m.host_id, m.length));
    }
    Ok((m.host_id, m.length))
}

/// Checks a pod's (or container's) user namespace options as CRI-O and containerd do:
/// NODE takes no mappings, POD one uid and one gid mapping of the same length starting at
/// container id 0 (or none: the daemon allocates), CONTAINER and TARGET are refused.
pub fn parse(o: Option<&cri::UserNamespace>) -> Result<Request, String> {
    let Some(o) = o else { return Ok(Request::Node) };
    match cri::NamespaceMode::try_from(o.mode) {
        Ok(cri::NamespaceMode::Node) => {
            if !o.uids.is_empty() || !o.gids.is_empty() {
                return Err("userns_options: mode NODE takes no uid/gid mappings".into());
            }
            Ok(Request::Node)
        }
        Ok(cri::NamespaceMode::Pod) => {
            if o.uids.is_empty() && o.gids.is_empty() {
                return Ok(Request::Pod(None));
            }
            let (uid_host, ulen) = one("uids", &o.uids)?;
            let (gid_host, glen) = one("gids", &o.gids)?;
            if ulen != glen {
                return Err(format!("userns_options: uid and gid mappings differ in length ({ulen} and {glen})"));
            }
            Ok(Request::Pod(Some(IdMap { uid_host, gid_host, len: ulen, allocated: false })))
        }
        Ok(m) => Err(format!("userns_options: mode {} is not supported (NODE or POD)", m.as_str_name())),
        Err(_) => Err(format!("userns_options: unknown mode {}", o.mode)),
    }
}

/// The first free block of the configured range, given the blocks in use.
pub fn allocate(first_id: u32, pods: u32, in_use: &[IdMap]) -> Result<IdMap, String> {
    for k in 0..pods as u64 {
        let start = first_id as u64 + k * BLOCK as u64;
        if start + BLOCK as u64 > u32::MAX as u64 {
            break;
        }
        // Any pod's mapping counts, kubelet's too: no two pods may share a host id.
        let overlaps = |h: u32, len: u32| (h as u64) < start + BLOCK as u64 && start < h as u64 + len as u64;
        let taken = in_use.iter().any(|m| overlaps(m.uid_host, m.len) || overlaps(m.gid_host, m.len));
        if !taken {
            return Ok(IdMap { uid_host: start as u32, gid_host: start as u32, len: BLOCK, allocated: true });
        }
    }
    Err(format!("no free user namespace block: all {pods} blocks of {BLOCK} ids from {first_id} are in use (runtime.userns_pods)"))
}

/// An OCI mapping of container ids `0..len` to host ids `host..`.
pub fn oci_map(host: u32, len: u32) -> Vec<oci_spec::runtime::LinuxIdMapping> {
    let m = oci_spec::runtime::LinuxIdMappingBuilder::default().container_id(0u32).host_id(host).size(len).build();
    m.into_iter().collect()
}

impl IdMap {
    /// As the CRI and OCI write a mapping (container id 0).
    pub fn cri(&self) -> cri::UserNamespace {
        let m = |host| vec![cri::IdMapping { host_id: host, container_id: 0, length: self.len }];
        cri::UserNamespace { mode: cri::NamespaceMode::Pod as i32, uids: m(self.uid_host), gids: m(self.gid_host) }
    }
}

/// Whether every directory from `/` down to `p` lets others search it.
pub fn searchable_by_others(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.ancestors().all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// The namespaces pinned for a user-namespaced pod.
#[derive(Debug, Default)]
pub struct Pinned {
    pub user: PathBuf,
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

fn write_all(fd: &OwnedFd, b: u8) {
    // SAFETY: one byte from a live buffer to an fd we own.
    unsafe { libc::write(fd.as_raw_fd(), (&b as *const u8).cast(), 1) };
}

fn read_one(fd: &OwnedFd) -> Option<u8> {
    let mut b = 0u8;
    // SAFETY: one byte into a live buffer.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut b as *mut u8).cast(), 1) };
    (n == 1).then_some(b)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut p = [0i32; 2];
    // SAFETY: an array of two ints for the new fds.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

/// Creates the pod's user namespace with `map`, and inside it new network/IPC/UTS
/// namespaces (those asked for; the UTS one gets `hostname`), and pins each at
/// `dir/<kind>`.
///
/// A user namespace cannot be unshared by a thread of a multi-threaded process, so a
/// forked child does it (as CRI-O's pinns): after fork it only makes async-signal-safe
/// calls — unshare, sethostname, read, write, _exit — while the daemon writes its maps and
/// bind-mounts its `/proc/<pid>/ns/*`.
pub fn pin(dir: &Path, map: &IdMap, net: bool, ipc: bool, uts: Option<&str>) -> io::Result<Pinned> {
    std::fs::create_dir_all(dir)?;
    let host = uts.map(|h| std::ffi::CString::new(h).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))).transpose()?;
    let mut inner = 0;
    if net {
        inner |= libc::CLONE_NEWNET;
    }
    if ipc {
        inner |= libc::CLONE_NEWIPC;
    }
    if uts.is_some() {
        inner |= libc::CLONE_NEWUTS;
    }
    let (to_child_r, to_child_w) = pipe()?;
    let (to_parent_r, to_parent_w) = pipe()?;
    // SAFETY: the child only makes async-signal-safe calls and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls only, as above.
        unsafe {
            // The child's copies of the daemon's ends: closed, or the last read never sees EOF.
            libc::close(to_child_w.as_raw_fd());
            libc::close(to_parent_r.as_raw_fd());
            let step = |ok: bool| {
                write_all(&to_parent_w, if ok { b'1' } else { b'0' });
                if !ok {
                    libc::_exit(1);
                }
            };
            step(libc::unshare(libc::CLONE_NEWUSER) == 0);
            if read_one(&to_child_r) != Some(b'm') {
                libc::_exit(1);
            }
            step(inner == 0 || libc::unshare(inner) == 0);
            if let Some(h) = &host {
                step(libc::sethostname(h.as_ptr(), h.as_bytes().len()) == 0);
            }
            // Stay until the daemon has pinned everything (it closes its end).
            let _ = read_one(&to_child_r);
            libc::_exit(0);
        }
    }
    drop(to_child_r);
    drop(to_parent_w);
    let r = drive(pid, dir, map, &to_child_w, &to_parent_r, net, ipc, uts.is_some());
    drop(to_child_w);
    // SAFETY: reaping the child we forked.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    if r.is_err() {
        for k in ["user", "net", "ipc", "uts"] {
            let _ = super::namespaces::unpin(&dir.join(k));
        }
    }
    r
}

fn drive(
    pid: i32,
    dir: &Path,
    map: &IdMap,
    to_child: &OwnedFd,
    from_child: &OwnedFd,
    net: bool,
    ipc: bool,
    uts: bool,
) -> io::Result<Pinned> {
    let child_failed = |what: &str| io::Error::other(format!("the pod's namespace helper could not {what}"));
    if read_one(from_child) != Some(b'1') {
        return Err(child_failed("create a user namespace"));
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), format!("0 {} {}\n", map.uid_host, map.len))
        .map_err(|e| io::Error::new(e.kind(), format!("write uid_map 0 {} {}: {e}", map.uid_host, map.len)))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), format!("0 {} {}\n", map.gid_host, map.len))
        .map_err(|e| io::Error::new(e.kind(), format!("write gid_map 0 {} {}: {e}", map.gid_host, map.len)))?;
    write_all(to_child, b'm');
    if read_one(from_child) != Some(b'1') {
        return Err(child_failed("create the network/IPC/UTS namespaces"));
    }
    if uts && read_one(from_child) != Some(b'1') {
        return Err(child_failed("set the hostname"));
    }
    let bind = |kind: &str| -> io::Result<PathBuf> {
        let target = dir.join(kind);
        std::fs::File::create(&target)?;
        mount(Some(format!("/proc/{pid}/ns/{kind}").as_str()), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e: Errno| io::Error::new(io::Error::from(e).kind(), format!("pin {kind} namespace: {e}")))?;
        Ok(target)
    };
    let mut p = Pinned { user: bind("user")?, ..Default::default() };
    if net {
        p.net = Some(bind("net")?);
    }
    if ipc {
        p.ipc = Some(bind("ipc")?);
    }
    if uts {
        p.uts = Some(bind("uts")?);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(c: u32, h: u32, l: u32) -> cri::IdMapping {
        cri::IdMapping { container_id: c, host_id: h, length: l }
    }

    fn opts(mode: cri::NamespaceMode, u: Vec<cri::IdMapping>, g: Vec<cri::IdMapping>) -> cri::UserNamespace {
        cri::UserNamespace { mode: mode as i32, uids: u, gids: g }
    }

    #[test]
    fn requests_as_critest_sends_them() {
        use cri::NamespaceMode::*;
        assert_eq!(parse(None), Ok(Request::Node));
        assert_eq!(parse(Some(&opts(Node, vec![], vec![]))), Ok(Request::Node));
        assert_eq!(parse(Some(&opts(Pod, vec![], vec![]))), Ok(Request::Pod(None)));
        let ok = parse(Some(&opts(Pod, vec![m(0, 1000, 100000)], vec![m(0, 1000, 100000)]))).unwrap();
        assert_eq!(ok, Request::Pod(Some(IdMap { uid_host: 1000, gid_host: 1000, len: 100000, allocated: false })));
        assert!(parse(Some(&opts(Pod, vec![m(0, 1000, 10), m(0, 2000, 10)], vec![m(0, 1000, 10)]))).is_err());
        assert!(parse(Some(&opts(Pod, vec![m(1, 1000, 10)], vec![m(1, 1000, 10)]))).is_err());
        assert!(parse(Some(&opts(Pod, vec![m(0, 1000, 10)], vec![m(0, 1000, 20)]))).is_err());
        assert!(parse(Some(&opts(Pod, vec![m(0, u32::MAX, 10)], vec![m(0, 1, 10)]))).is_err());
        assert!(parse(Some(&opts(Container, vec![], vec![]))).is_err());
        assert!(parse(Some(&opts(Target, vec![], vec![]))).is_err());
        assert!(parse(Some(&opts(Node, vec![m(0, 1, 1)], vec![m(0, 1, 1)]))).is_err());
    }

    #[test]
    fn blocks_are_disjoint_and_reused() {
        let a = allocate(1 << 20, 3, &[]).unwrap();
        assert_eq!(a.uid_host, 1 << 20);
        let b = allocate(1 << 20, 3, &[a]).unwrap();
        assert_eq!(b.uid_host, (1 << 20) + BLOCK);
        let c = allocate(1 << 20, 3, &[a, b]).unwrap();
        assert!(allocate(1 << 20, 3, &[a, b, c]).is_err());
        // Freed (its pod removed): the block comes back.
        assert_eq!(allocate(1 << 20, 3, &[a, c]).unwrap(), b);
        // A mapping kubelet chose is avoided too.
        let theirs = IdMap { uid_host: (1 << 20) + 10, gid_host: 5, len: 100, allocated: false };
        assert_eq!(allocate(1 << 20, 3, &[theirs]).unwrap(), b);
        // The range stops below 2^32.
        assert!(allocate(u32::MAX - 10, 5, &[]).is_err());
    }
}
