//! Which namespaces the container gets new, which it joins, and how the clone stages
//! realise that.
//!
//! Joined namespaces must be entered before new ones are created (a new user namespace
//! would otherwise lack the rights to enter the host's), and pid and time namespaces
//! only apply to children, so the plan decides whether the first clone can create
//! everything at once (the fast path) or an intermediate process must join, unshare
//! and fork the init.

use crate::error::{Context, Error, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::os::fd::OwnedFd;

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

#[derive(Debug)]
pub struct Plan {
    /// Created by the first clone (fast path only).
    pub clone: CloneFlags,
    /// Created by unshare(2) in the cloned process, after it joined `joins`.
    pub unshare: CloneFlags,
    /// Namespaces to enter, opened by the parent (paths are host paths).
    pub joins: Vec<(LinuxNamespaceType, OwnedFd)>,
    /// Whether a new user namespace is created (the parent then writes the id maps).
    pub new_user: bool,
    /// Whether an existing user namespace is joined (a pod's): the process then becomes
    /// its root, and device nodes are bound rather than created, as in a new one.
    pub joined_user: bool,
    /// Whether the init must be forked once more to be inside the pid/time namespace.
    pub fork_init: bool,
    /// Whether the container has its own network namespace (then lo is brought up).
    pub new_net: bool,
    /// Whether the container has its own uts namespace, new or joined (hostname may be set).
    pub own_uts: bool,
    /// Neither a new nor a joined mount namespace: mounts happen in the host's, and the
    /// container is only chrooted into its rootfs (as runc does).
    pub shares_host_mounts: bool,
}

pub fn plan(namespaces: &[LinuxNamespace]) -> Result<Plan> {
    let mut new = CloneFlags::empty();
    let mut joins = Vec::new();
    for ns in namespaces {
        match ns.path() {
            None => new |= flag(ns.typ()),
            Some(p) => {
                let fd = nix::fcntl::open(
                    p.as_path(),
                    nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .with_ctx(|| format!("open {} namespace {}", ns.typ(), p.display()))?;
                joins.push((ns.typ(), fd));
            }
        }
    }
    let time = flag(LinuxNamespaceType::Time);
    let mut late = CloneFlags::CLONE_NEWCGROUP | time;
    if new.contains(time) {
        // The time namespace forces a second fork; the pid namespace must then be
        // unshared too, so that the forked init (not the intermediate) is its pid 1.
        late |= CloneFlags::CLONE_NEWPID;
    }
    let (clone, unshare) = if joins.is_empty() { (new - late, new & late) } else { (CloneFlags::empty(), new) };
    let joined_user = joins.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let pid_joined = joins.iter().any(|(t, _)| *t == LinuxNamespaceType::Pid);
    let own_uts = new.contains(CloneFlags::CLONE_NEWUTS) || joins.iter().any(|(t, _)| *t == LinuxNamespaceType::Uts);
    let shares_host_mounts = !new.contains(CloneFlags::CLONE_NEWNS) && !joins.iter().any(|(t, _)| *t == LinuxNamespaceType::Mount);
    let fork_init = pid_joined || unshare.contains(CloneFlags::CLONE_NEWPID) || new.contains(flag(LinuxNamespaceType::Time));
    Ok(Plan {
        clone,
        unshare,
        joins,
        new_user: new.contains(CloneFlags::CLONE_NEWUSER),
        joined_user,
        fork_init,
        new_net: new.contains(CloneFlags::CLONE_NEWNET),
        own_uts,
        shares_host_mounts,
    })
}

/// Enters the joined namespaces: user namespaces last unless entering the others needs
/// its rights, so both host-owned and container-owned namespaces can be joined.
pub fn join(joins: Vec<(LinuxNamespaceType, OwnedFd)>) -> Result<()> {
    let (users, others): (Vec<_>, Vec<_>) = joins.into_iter().partition(|(t, _)| *t == LinuxNamespaceType::User);
    let mut retry = Vec::new();
    for (t, fd) in others {
        match nix::sched::setns(&fd, flag(t)) {
            Ok(()) => {}
            Err(nix::errno::Errno::EPERM) if !users.is_empty() => retry.push((t, fd)),
            Err(e) => return Err(e).with_ctx(|| format!("join {t} namespace")),
        }
    }
    for (t, fd) in users.into_iter().chain(retry) {
        nix::sched::setns(&fd, flag(t)).with_ctx(|| format!("join {t} namespace"))?;
    }
    Ok(())
}

/// Writes /proc/self/timens_offsets (only possible before any process enters the namespace).
pub fn set_time_offsets(offsets: &std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>) -> Result<()> {
    let mut text = String::new();
    for (clock, off) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::Spec(format!("unknown timeOffsets clock {clock:?}")));
        }
        text.push_str(&format!("{clock} {} {}\n", off.secs().unwrap_or(0), off.nanosecs().unwrap_or(0)));
    }
    std::fs::write("/proc/self/timens_offsets", text).ctx("write time namespace offsets")
}

/// Writes the uid/gid maps of a process that has just created a user namespace.
pub fn write_id_maps(pid: i32, uid: &[oci_spec::runtime::LinuxIdMapping], gid: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    let fmt = |m: &[oci_spec::runtime::LinuxIdMapping]| {
        m.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect::<String>()
    };
    // The kernel checks the whole map at this write: name the map it refused.
    if !uid.is_empty() {
        let m = fmt(uid);
        std::fs::write(format!("/proc/{pid}/uid_map"), &m).with_ctx(|| format!("write uid_map {:?}", m.trim_end()))?;
    }
    if !gid.is_empty() {
        let m = fmt(gid);
        std::fs::write(format!("/proc/{pid}/gid_map"), &m).with_ctx(|| format!("write gid_map {:?}", m.trim_end()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespaceBuilder;

    fn ns(t: LinuxNamespaceType) -> LinuxNamespace {
        LinuxNamespaceBuilder::default().typ(t).build().unwrap()
    }

    #[test]
    fn fast_path_clones_all_but_cgroup_and_time() {
        use LinuxNamespaceType::*;
        let p = plan(&[ns(Pid), ns(Mount), ns(Network), ns(Cgroup), ns(User)]).unwrap();
        assert!(p.clone.contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUSER));
        assert_eq!(p.unshare, CloneFlags::CLONE_NEWCGROUP);
        assert!(!p.fork_init);
        assert!(p.new_user && p.new_net);
    }

    #[test]
    fn time_namespace_needs_a_second_fork() {
        use LinuxNamespaceType::*;
        let p = plan(&[ns(Mount), ns(Time)]).unwrap();
        assert!(p.unshare.contains(flag(Time)));
        assert!(p.fork_init);
        let p = plan(&[ns(Mount), ns(Pid), ns(Time)]).unwrap();
        assert!(p.unshare.contains(CloneFlags::CLONE_NEWPID) && !p.clone.contains(CloneFlags::CLONE_NEWPID));
    }

    #[test]
    fn joining_moves_everything_to_unshare() {
        use LinuxNamespaceType::*;
        let mut n = ns(Network);
        n.set_path(Some("/proc/self/ns/net".into()));
        let p = plan(&[ns(Mount), ns(Pid), n]).unwrap();
        assert!(p.clone.is_empty());
        assert!(p.unshare.contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS));
        assert!(p.fork_init);
        assert_eq!(p.joins.len(), 1);
    }

    #[test]
    fn missing_namespace_path_is_an_error() {
        let mut n = ns(LinuxNamespaceType::Network);
        n.set_path(Some("/nonexistent/ns".into()));
        assert!(plan(&[n]).unwrap_err().to_string().contains("/nonexistent/ns"));
    }
}
