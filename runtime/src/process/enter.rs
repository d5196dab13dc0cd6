//! Entering a running container for `berth exec`: the forked child joins the init's
//! namespaces (one `setns` on its pidfd), forks the process into the container's pid
//! namespace, and that process takes the container's root and the process spec's
//! identity before it execs.
//!
//! Nothing of the host reaches the process: every fd berth holds is close-on-exec (the
//! root and init handles are closed before the cwd is entered), the cwd is checked to be
//! inside the container's root after `chdir` (CVE-2024-21626), and berth is non-dumpable
//! throughout (set in `main`), so no container process can open `/proc/<pid>/exe` — the
//! host's berth binary — or our fds while we are inside (CVE-2019-5736).

use super::{exec, fds, identity, rlimits};
use crate::error::{Context, Error, Result};
use crate::sync::{Channel, Msg};
use nix::sched::CloneFlags;
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// Namespace files under /proc/<pid>/ns, with the type each one is.
const NAMESPACES: [(&str, LinuxNamespaceType); 8] = [
    ("user", LinuxNamespaceType::User),
    ("mnt", LinuxNamespaceType::Mount),
    ("pid", LinuxNamespaceType::Pid),
    ("net", LinuxNamespaceType::Network),
    ("ipc", LinuxNamespaceType::Ipc),
    ("uts", LinuxNamespaceType::Uts),
    ("cgroup", LinuxNamespaceType::Cgroup),
    ("time", LinuxNamespaceType::Time),
];

/// What the exec process must join, decided by the parent before forking.
pub struct Plan {
    pid: i32,
    /// The init's namespaces that differ from ours (joining one's own user namespace is
    /// an error, so equal ones are left out).
    flags: CloneFlags,
    /// O_PATH handle on the init's root directory.
    root: OwnedFd,
}

pub fn plan(pid: i32) -> Result<Plan> {
    let mut flags = CloneFlags::empty();
    for (name, typ) in NAMESPACES {
        let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
        match (theirs, ours) {
            (Ok(t), Ok(o)) if (t.dev(), t.ino()) == (o.dev(), o.ino()) => {}
            (Ok(_), Ok(_)) => flags |= crate::namespaces::flag(typ),
            // A namespace type this kernel lacks exists for nobody.
            (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            (Err(e), _) | (_, Err(e)) => return Err(e).with_ctx(|| format!("inspect {name} namespace of pid {pid}")),
        }
    }
    let root = nix::fcntl::open(
        format!("/proc/{pid}/root").as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_ctx(|| format!("open root of pid {pid}"))?;
    Ok(Plan { pid, flags, root })
}

pub struct EnterArgs<'a> {
    /// pidfd of the container's init (opened after its identity was checked).
    pub init: &'a OwnedFd,
    pub plan: Plan,
    pub process: &'a Process,
    pub channel: &'a Channel,
    pub console_socket: Option<&'a OwnedFd>,
    pub preserve_fds: i32,
    /// The container is paused: set up outside its (frozen) cgroup, then ask the parent
    /// to move us in, and exec once thawed.
    pub join_cgroup_last: bool,
    /// The container's compiled `linux.seccomp`, which exec processes get too.
    pub seccomp: Option<&'a crate::seccomp::Program>,
}

/// Entry of the forked child: never returns; errors reach the parent as `Failed`.
pub fn child_main(args: EnterArgs) -> ! {
    let ch = args.channel;
    if let Err(e) = stage(args) {
        let _ = ch.send(&Msg::Failed(e.to_string()));
    }
    // SAFETY: leave without running the parent's destructors.
    unsafe { libc::_exit(1) }
}

fn stage(args: EnterArgs) -> Result<()> {
    let ch = args.channel;
    ch.expect(&Msg::CgroupJoined)?;
    join(args.init, &args.plan)?;
    // The pid (and time) namespace applies to children only: fork the process into it.
    // SAFETY: single-threaded; the child continues the exec sequence only.
    match unsafe { fork() }.ctx("fork into the container")? {
        ForkResult::Parent { child } => {
            ch.send(&Msg::InitPid(child.as_raw()))?;
            // SAFETY: the intermediate's work is done.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Child => match run(args) {
            Ok(never) => match never {},
            Err(e) => Err(e),
        },
    }
}

/// setns on the pidfd joins all namespaces at once, in the order the kernel needs;
/// kernels before 5.8 take the namespace files one by one.
fn join(init: &OwnedFd, plan: &Plan) -> Result<()> {
    if plan.flags.is_empty() {
        return Ok(());
    }
    // SAFETY: setns(2) with an fd we own and plain flags.
    if unsafe { libc::setns(init.as_raw_fd(), plan.flags.bits()) } == 0 {
        return Ok(());
    }
    let err = nix::errno::Errno::last();
    if err != nix::errno::Errno::EINVAL {
        return Err(err).ctx("join the container's namespaces");
    }
    let mut joins = Vec::new();
    for (name, typ) in NAMESPACES {
        if plan.flags.contains(crate::namespaces::flag(typ)) {
            let path = format!("/proc/{}/ns/{name}", plan.pid);
            let fd =
                nix::fcntl::open(path.as_str(), nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
                    .with_ctx(|| format!("open {path}"))?;
            joins.push((typ, fd));
        }
    }
    crate::namespaces::join(joins)
}

/// In the container's pid namespace: root, terminal, limits, identity, cwd, execve.
fn run(args: EnterArgs) -> Result<Infallible> {
    let EnterArgs { init: _, plan, process, channel, console_socket, preserve_fds, join_cgroup_last, seccomp } = args;
    super::reset_signals()?;
    // The init's root, whether it got there by pivot_root, MS_MOVE + chroot, or shares ours.
    nix::unistd::fchdir(&plan.root).ctx("enter the container's root")?;
    nix::unistd::chroot(".").ctx("chroot into the container's root")?;
    nix::unistd::chdir("/").ctx("chdir /")?;
    drop(plan);
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());

    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).with_ctx(|| format!("set oomScoreAdj {adj}"))?;
    }
    // As runc, every container process leads a session (and process group) of its own: a
    // monitor that kills the group of an exec'd process (exec-sync timeout) then reaches
    // exactly that process tree, and a pty can become its controlling terminal.
    nix::unistd::setsid().ctx("setsid")?;
    if process.terminal().unwrap_or(false) {
        let sock = console_socket.ok_or_else(|| Error::Spec("terminal needs a console socket".into()))?;
        let size = process.console_size().map(|b| (b.height() as u16, b.width() as u16));
        crate::console::setup(sock, size, process.user().uid(), process.user().gid())?;
    }
    crate::lsm::apply(process)?;
    if let Some(l) = process.rlimits() {
        rlimits::apply(l)?;
    }
    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let argv = process.args().as_deref().unwrap_or_default();
    let path = exec::resolve(&argv[0], &env)?;
    let exec = exec::Exec::new(&path, argv, &env)?;
    if join_cgroup_last {
        channel.send(&Msg::Ready)?;
        channel.expect(&Msg::CgroupJoined)?;
    }
    // Seccomp where runc puts it (see process/init.rs): before dropping capabilities
    // without no_new_privs, else just before execve.
    let nnp = process.no_new_privileges().unwrap_or(false);
    if let Some(p) = seccomp.filter(|_| !nnp) {
        crate::seccomp::install::install_in_init(p, channel)?;
    }
    identity::apply(process)?;
    let cwd = process.cwd();
    nix::unistd::chdir(cwd).with_ctx(|| format!("chdir to cwd {}", cwd.display()))?;
    // A cwd reached through a host fd (e.g. /proc/self/fd/N) is outside our root and shows
    // as "(unreachable)…": refuse it.
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => {}
        _ => return Err(Error::Spec(format!("cwd {} is not inside the container", cwd.display()))),
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(process.user().umask().unwrap_or(0o022)));
    fds::restrict_to(preserve_fds)?;
    if let Some(p) = seccomp.filter(|_| nnp) {
        crate::seccomp::install::install_in_init(p, channel)?;
    }
    Err(exec.exec())
}
