//! The container's init: builds the container around itself, reports `Ready`, blocks on
//! the exec fifo until `start`, then execs the user's process.

use super::{exec, fds, identity, rlimits};
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Kind};
use crate::namespaces::Plan;
use crate::rootfs;
use crate::sync::{Channel, Msg};
use oci_spec::runtime::Spec;
use std::convert::Infallible;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Everything the cloned processes need, prepared by the parent before cloning.
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroup: &'a Path,
    pub plan: Plan,
    pub channel: &'a Channel,
    /// O_PATH handle on the exec fifo (reopened for writing through /proc/self/fd).
    pub fifo: &'a OwnedFd,
    pub console_socket: Option<&'a OwnedFd>,
    pub no_pivot: bool,
    /// Give the container its own session keyring (runc's default; off with --no-new-keyring).
    pub new_keyring: bool,
    pub preserve_fds: i32,
    /// Extra environment (LISTEN_FDS and friends).
    pub extra_env: Vec<String>,
    /// The compiled `linux.seccomp`, installed where runc installs it.
    pub seccomp: Option<&'a crate::seccomp::Program>,
    /// Id-mapped mounts prepared by the parent (see `rootfs::idmap`).
    pub idmapped: &'a rootfs::idmap::Prepared,
}

pub fn run(a: &InitArgs) -> Result<Infallible> {
    // Non-dumpable until execve: no process in the container can open our /proc entries
    // (and through them berth's executable or host fds) while we set it up.
    nix::sys::prctl::set_dumpable(false).ctx("set non-dumpable")?;
    super::reset_signals()?;
    let process = a.spec.process().as_ref().ok_or_else(|| Error::Spec("no process".into()))?;
    let linux = a.spec.linux().as_ref();
    // Spec modes (devices, dirs) are taken as written; the process's umask comes last.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());

    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).with_ctx(|| format!("set oomScoreAdj {adj}"))?;
    }
    if a.new_keyring {
        join_session_keyring(a.id)?;
    }
    if a.plan.new_net {
        loopback_up()?;
    }
    // A joined uts namespace is the container's too (runc sets the hostname there).
    if a.plan.own_uts {
        if let Some(h) = a.spec.hostname().as_ref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h).with_ctx(|| format!("set hostname {h}"))?;
        }
        if let Some(d) = a.spec.domainname().as_ref().filter(|d| !d.is_empty()) {
            // SAFETY: pointer and length of a live buffer.
            if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
                return Err(nix::errno::Errno::last()).with_ctx(|| format!("set domainname {d}"));
            }
        }
    } else if a.spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) {
        return Err(Error::Spec("hostname needs a new uts namespace".into()));
    }

    let new_cgroupns = a.plan.unshare.contains(nix::sched::CloneFlags::CLONE_NEWCGROUP);
    rootfs::prepare(&rootfs::Setup {
        spec: a.spec,
        rootfs: a.rootfs,
        bundle: a.bundle,
        cgroup: a.cgroup,
        new_cgroupns,
        in_userns: a.plan.new_user || a.plan.joined_user,
        shares_host_mounts: a.plan.shares_host_mounts,
        idmapped: a.idmapped,
    })?;

    a.channel.send(&Msg::RunHooks)?;
    let state_json = match a.channel.recv("HooksDone")? {
        Msg::HooksDone(s) => s,
        Msg::Failed(e) => return Err(Error::Init(e)),
        m => return Err(Error::Init(format!("sync: unexpected {m:?}"))),
    };
    let spec_hooks = a.spec.hooks().as_ref();
    if let Some(h) = spec_hooks.and_then(|h| h.create_container().as_ref()) {
        hooks::run_all(Kind::CreateContainer, h, state_json.as_bytes())?;
    }

    if a.plan.shares_host_mounts {
        rootfs::chroot(a.rootfs)?;
    } else {
        rootfs::pivot(a.rootfs, a.no_pivot)?;
    }
    // Sysctls before readonlyPaths make /proc/sys read-only.
    if let Some(s) = linux.and_then(|l| l.sysctl().as_ref()) {
        crate::sysctl::apply(s)?;
    }
    rootfs::finish(a.spec)?;
    // As runc, every container process leads a session (and process group) of its own: a
    // monitor that kills the group of an exec'd process (exec-sync timeout) then reaches
    // exactly that process tree, and a pty can become its controlling terminal.
    nix::unistd::setsid().ctx("setsid")?;
    if process.terminal().unwrap_or(false) {
        let sock = a.console_socket.ok_or_else(|| Error::Spec("terminal needs a console socket".into()))?;
        let size = process.console_size().map(|b| (b.height() as u16, b.width() as u16));
        crate::console::setup(sock, size, process.user().uid(), process.user().gid())?;
    }
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        set_personality(p.domain())?;
    }
    if let Some(l) = process.rlimits() {
        rlimits::apply(l)?;
    }

    let cwd = process.cwd();
    std::fs::create_dir_all(cwd).with_ctx(|| format!("create cwd {}", cwd.display()))?;
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    env.extend(a.extra_env.iter().cloned());
    let args = process.args().as_deref().unwrap_or_default();
    crate::lsm::apply(process)?;
    // Seccomp as runc places it: without no_new_privs installing a filter needs
    // CAP_SYS_ADMIN, so before the capabilities are dropped; with it, as late as possible,
    // so that a profile blocking setuid/capset/... still lets berth finish.
    let nnp = process.no_new_privileges().unwrap_or(false);
    if let Some(p) = a.seccomp.filter(|_| !nnp) {
        crate::seccomp::install::install_in_init(p, a.channel)?;
    }
    identity::apply(process)?;
    nix::unistd::chdir(cwd).with_ctx(|| format!("chdir to cwd {}", cwd.display()))?;
    // The cwd must be inside the container's root (a leaked host directory would show
    // as "(unreachable)" or fail).
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => {}
        _ => return Err(Error::Spec(format!("cwd {} is not inside the container", cwd.display()))),
    }
    let path = exec::resolve(&args[0], &env)?;
    let exec = exec::Exec::new(&path, args, &env)?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(process.user().umask().unwrap_or(0o022)));
    fds::restrict_to(a.preserve_fds)?;
    // After this only Ready (sendto), the exec fifo (openat, write), startContainer hooks
    // and execve run under the filter, as with runc.
    if let Some(p) = a.seccomp.filter(|_| nnp) {
        crate::seccomp::install::install_in_init(p, a.channel)?;
    }

    a.channel.send(&Msg::Ready)?;
    wait_for_start(a.fifo)?;
    if let Some(h) = spec_hooks.and_then(|h| h.start_container().as_ref()) {
        if let Err(e) = hooks::run_all(Kind::StartContainer, h, state_json.as_bytes()) {
            report_after_start(&e);
        }
    }
    let e = exec.exec();
    report_after_start(&e);
}

/// After `Ready` the parent is gone: errors go to the container's stderr, then init exits.
fn report_after_start(e: &Error) -> ! {
    let _ = writeln!(std::io::stderr(), "berth: {e}");
    // SAFETY: terminate without unwinding.
    unsafe { libc::_exit(127) }
}

/// Blocks until `berth start` opens the fifo for reading, then signals it.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).ctx("open exec fifo")?;
    f.write_all(b"0").ctx("write exec fifo")
}

/// A new network namespace has lo down; containers expect it up (as runc does).
fn loopback_up() -> Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let s = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).ctx("socket")?;
    // SAFETY: ifreq is plain data; the ioctls read/write it in place.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[..2].copy_from_slice(&[b'l' as libc::c_char, b'o' as libc::c_char]);
        if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(nix::errno::Errno::last()).ctx("get lo flags");
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(nix::errno::Errno::last()).ctx("bring lo up");
        }
    }
    Ok(())
}

/// A fresh session keyring, so the container cannot see the host's keys.
fn join_session_keyring(id: &str) -> Result<()> {
    let name = std::ffi::CString::new(format!("_ses.{id}")).map_err(|_| Error::Spec("bad id".into()))?;
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl reads the NUL-terminated name.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    match nix::errno::Errno::result(r) {
        // Kernels without keys, or keyrings refused in this user namespace: nothing to isolate.
        Ok(_) | Err(nix::errno::Errno::ENOSYS) | Err(nix::errno::Errno::EACCES) | Err(nix::errno::Errno::EPERM) => Ok(()),
        Err(e) => Err(e).ctx("join session keyring"),
    }
}

/// linux.personality: LINUX32 makes uname report a 32-bit machine (as `linux32` does).
fn set_personality(domain: oci_spec::runtime::LinuxPersonalityDomain) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain::*;
    let persona: libc::c_ulong = match domain {
        PerLinux => 0x0000,
        PerLinux32 => 0x0008,
    };
    // SAFETY: personality(2) takes a plain integer.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(nix::errno::Errno::last()).ctx("set personality");
    }
    Ok(())
}
