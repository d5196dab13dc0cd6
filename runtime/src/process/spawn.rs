//! Cloning the container's first process and, where needed, the intermediate stage that
//! joins namespaces, unshares the rest and forks the init into its pid/time namespace.

use super::init::{self, InitArgs};
use crate::error::{Context, Result};
use crate::namespaces;
use crate::sync::{Channel, Msg};
use nix::sched::CloneFlags;
use nix::unistd::{fork, ForkResult, Gid, Uid};
use std::io::Read;
use std::os::fd::AsRawFd;

/// fork(2) that also creates the namespaces in `flags` (the clone syscall without a new
/// stack behaves like fork). Returns 0 in the child.
pub fn clone(flags: CloneFlags) -> Result<i32> {
    let bits = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a null stack gives fork semantics; berth is single-threaded here, so the
    // child's copy of the address space is consistent.
    let r = unsafe { libc::syscall(libc::SYS_clone, bits, 0usize, 0usize, 0usize, 0usize) };
    if r < 0 {
        return Err(nix::errno::Errno::last()).ctx("clone container process");
    }
    Ok(r as i32)
}

/// linux/sched.h (libc's c_int constant overflows).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2); libc has no
/// definition of it for glibc targets.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// [`clone`] with the child born in the cgroup `cgroup` (an fd of its directory) through
/// clone3's CLONE_INTO_CGROUP: no migration through cgroup.procs afterwards (which costs an
/// RCU grace period), and no moment in which the child runs outside its limits. Returns
/// (pid, placed); when the kernel lacks clone3 or refuses the placement (older kernels,
/// cgroup v1 fds) this falls back to plain clone and `placed` is false.
pub fn clone_into(flags: CloneFlags, cgroup: &impl AsRawFd) -> Result<(i32, bool)> {
    let mut args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: as for clone: no stack (fork semantics), single-threaded caller; the kernel
    // only reads `args`.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if r >= 0 {
        return Ok((r as i32, true));
    }
    Ok((clone(flags)?, false))
}

/// Entry of the cloned child: never returns. Errors go to the parent as `Failed`.
pub fn child_main(args: InitArgs) -> ! {
    let ch = args.channel;
    let result = stage(args);
    if let Err(e) = result {
        let _ = ch.send(&Msg::Failed(e.to_string()));
    }
    // SAFETY: leave without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(1) }
}

fn stage(mut args: InitArgs) -> Result<()> {
    let ch: &Channel = args.channel;
    ch.expect(&Msg::CgroupJoined)?;
    namespaces::join(std::mem::take(&mut args.plan.joins))?;
    if args.plan.joined_user {
        become_joined_userns_root()?;
    }
    if !args.plan.unshare.is_empty() {
        nix::sched::unshare(args.plan.unshare).ctx("unshare namespaces")?;
    }
    if args.plan.new_user {
        ch.send(&Msg::MapIds)?;
        ch.expect(&Msg::IdsMapped)?;
        become_userns_root(&args)?;
    }
    if let Some(offsets) = args.spec.linux().as_ref().and_then(|l| l.time_offsets().as_ref()) {
        if !offsets.is_empty() {
            namespaces::set_time_offsets(offsets)?;
        }
    }
    if args.plan.fork_init {
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe")?;
        // SAFETY: single-threaded; the child only continues the init sequence.
        match unsafe { fork() }.ctx("fork init")? {
            ForkResult::Child => {
                drop(wr);
                // Wait until the intermediate has told the parent our pid (EOF).
                let mut f = std::fs::File::from(rd);
                let _ = f.read(&mut [0u8; 1]);
            }
            ForkResult::Parent { child } => {
                ch.send(&Msg::InitPid(child.as_raw()))?;
                drop(wr);
                // SAFETY: the intermediate's work is done.
                unsafe { libc::_exit(0) }
            }
        }
    }
    match init::run(&args) {
        Ok(never) => match never {},
        Err(e) => Err(e),
    }
}

/// After joining a user namespace the process keeps its host ids, which that namespace
/// may not map (then it could create nothing: EOVERFLOW). Its root is what the container
/// is made as, as runc does; EINVAL means the namespace maps no id 0, and the ids stay.
fn become_joined_userns_root() -> Result<()> {
    let root_g = Gid::from_raw(0);
    match nix::unistd::setresgid(root_g, root_g, root_g) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(e).ctx("setgid 0 in the joined user namespace"),
    }
    let root_u = Uid::from_raw(0);
    match nix::unistd::setresuid(root_u, root_u, root_u) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => Ok(()),
        Err(e) => Err(e).ctx("setuid 0 in the joined user namespace"),
    }
}

/// Inside a new user namespace, act as its root (when the spec maps uid/gid 0).
fn become_userns_root(args: &InitArgs) -> Result<()> {
    let linux = args.spec.linux().as_ref();
    let maps0 = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| m.is_some_and(|m| m.iter().any(|m| m.container_id() == 0));
    if maps0(linux.and_then(|l| l.gid_mappings().as_ref())) {
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).ctx("setgid 0 in user namespace")?;
    }
    if maps0(linux.and_then(|l| l.uid_mappings().as_ref())) {
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).ctx("setuid 0 in user namespace")?;
    }
    Ok(())
}
