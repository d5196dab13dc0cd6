//! `berth exec`: run one more process in a running (or created) container.
//!
//! The parent (this file) checks the container, builds the process spec (a `--process`
//! file, or the container's own process with runc's overrides), opens a pidfd on the
//! init, and forks. The child ([`crate::process::enter`]) joins the container's cgroup and
//! namespaces, forks the process into its pid namespace and execs. The parent reports
//! the process's pid, then either returns (`--detach`) or waits and returns its exit code.

use super::run::{wait_forwarding, FORWARDED};
use crate::cgroups;
use crate::console;
use crate::error::{Context, Error, Result};
use crate::process::enter::{self, EnterArgs};
use crate::process::pidfd;
use crate::state::{State, Status};
use crate::sync::{self, Msg};
use nix::sys::signal::{SigSet, Signal};
use oci_spec::runtime::{Capability, Process};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

/// runc's `exec` flags that change the process (used when no `--process` file is given).
#[derive(Default)]
pub struct ProcessFlags {
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub tty: bool,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

pub struct ExecOpts {
    pub root: PathBuf,
    pub id: String,
    /// A process.json (OCI `process` object); when set, `flags` are not used.
    pub process_file: Option<PathBuf>,
    pub flags: ProcessFlags,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    /// `--cgroup`: a sub-cgroup of the container's (`path` or `controller:path`).
    pub cgroup: Option<String>,
    pub ignore_paused: bool,
}

/// Runs the exec; returns the process's exit code (0 when detached).
pub fn exec(o: &ExecOpts) -> Result<i32> {
    let st = State::load(&o.root, &o.id)?;
    let status = st.status(&o.root);
    match status {
        Status::Running | Status::Created => {}
        Status::Paused if o.ignore_paused => {}
        Status::Paused => {
            return Err(Error::Status {
                id: st.id.clone(),
                status: status.to_string(),
                why: "cannot exec in a paused container (use --ignore-paused to override)".into(),
            })
        }
        s => return Err(Error::Status { id: st.id.clone(), status: s.to_string(), why: "cannot exec in a stopped container".into() }),
    }
    let bundle = crate::spec::load(&st.bundle)?;
    let process = match &o.process_file {
        Some(p) => load_process(p)?,
        None => from_flags(bundle.spec.process().clone().unwrap_or_default(), &o.flags)?,
    };
    validate(&process)?;
    crate::lsm::check_process(&process)?;
    crate::process::fds::check_preserved(o.preserve_fds)?;
    let cgroup = sub_cgroup(&st.cgroup, o.cgroup.as_deref())?;
    let terminal = process.terminal().unwrap_or(false);
    if !terminal && o.console_socket.is_some() {
        return Err(Error::Spec("--console-socket given but the process has no terminal (use --tty)".into()));
    }
    if terminal && o.console_socket.is_none() && o.detach {
        return Err(Error::Spec("cannot allocate a tty when detaching without a --console-socket".into()));
    }

    // The pidfd pins the init: once it is open and the start time still matches, no pid
    // reuse can make us join another process's namespaces.
    let init = pidfd::open(st.pid).ok_or_else(|| Error::Status {
        id: st.id.clone(),
        status: "stopped".into(),
        why: "cannot exec in a stopped container".into(),
    })?;
    if !st.init_alive() {
        return Err(Error::Status { id: st.id.clone(), status: "stopped".into(), why: "cannot exec in a stopped container".into() });
    }
    let plan = enter::plan(st.pid)?;
    // In a frozen cgroup the process would stop at once: it joins only when set up, and
    // then runs when the container is resumed.
    let frozen = status == Status::Paused;

    let (console, ours) = match (o.console_socket.as_deref(), terminal) {
        (Some(p), true) => (Some(console::connect(p)?), None),
        (None, true) => {
            let (a, b) = std::os::unix::net::UnixStream::pair().ctx("console socketpair")?;
            (Some(OwnedFd::from(a)), Some(OwnedFd::from(b)))
        }
        _ => (None, None),
    };
    if !o.detach {
        // The process is our grandchild; as subreaper we reap it when it exits.
        nix::sys::prctl::set_child_subreaper(true).ctx("become subreaper")?;
    }
    let (parent_ch, child_ch) = sync::pair()?;
    let args = EnterArgs {
        init: &init,
        plan,
        process: &process,
        channel: &child_ch,
        console_socket: console.as_ref(),
        preserve_fds: o.preserve_fds,
        join_cgroup_last: frozen,
        seccomp: bundle.seccomp.as_ref(),
    };
    // SAFETY: berth is single-threaded here; the child only runs the enter sequence.
    let child = match unsafe { nix::unistd::fork() }.ctx("fork exec process")? {
        nix::unistd::ForkResult::Child => {
            drop(parent_ch);
            enter::child_main(args);
        }
        nix::unistd::ForkResult::Parent { child } => child.as_raw(),
    };
    drop(args);
    drop(child_ch);
    drop(console);
    // Until the intermediate has reported the process's pid, it is the one to kill and reap.
    let pid = match report_pid(&parent_ch, &cgroup, child, frozen) {
        Ok(pid) => pid,
        Err(e) => {
            reap(child);
            return Err(e);
        }
    };
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
    // From here a failure kills and reaps the process itself.
    let started = (|| -> Result<()> {
        if frozen {
            match parent_ch.recv("the exec process to be set up")? {
                Msg::Ready => {}
                m => return Err(unexpected(m)),
            }
            cgroups::add_process(&cgroup, pid)?;
            parent_ch.send(&Msg::CgroupJoined)?;
            if o.detach {
                // It execs when the container is resumed; nothing more to wait for.
                return Ok(());
            }
        }
        // The process closes its end at execve (close-on-exec): EOF means it runs.
        loop {
            match parent_ch.recv_with_fd_or_eof()? {
                None => return Ok(()),
                // A notifying filter: its listener goes to the agent, with the container's
                // state and the exec process's pid, as for the init.
                Some((Msg::SeccompListener, Some(fd))) => {
                    let l = bundle
                        .seccomp
                        .as_ref()
                        .and_then(|p| p.listener())
                        .ok_or_else(|| Error::Init("sync: seccomp listener without listenerPath".into()))?;
                    crate::seccomp::notify::send(l, pid, &super::state_json(&st, status), std::os::fd::AsFd::as_fd(&fd))?;
                }
                Some((m, _)) => return Err(unexpected(m)),
            }
        }
    })();
    if let Err(e) = started {
        reap(pid);
        return Err(e);
    }
    if let Some(p) = &o.pid_file {
        super::create::write_pid_file(p, pid)?;
    }
    if o.detach {
        return Ok(0);
    }
    let master = ours.map(|s| console::recv_master(&s)).transpose()?;
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    mask.thread_block().ctx("block signals")?;
    let relay = master.as_ref().map(console::relay);
    let code = wait_forwarding(pid, &mask);
    drop(relay);
    let _ = mask.thread_unblock();
    code
}

/// Places the intermediate in the cgroup (unless the container is frozen), lets it go and
/// returns the pid it reports for the process.
fn report_pid(ch: &sync::Channel, cgroup: &Path, child: i32, frozen: bool) -> Result<i32> {
    if !frozen {
        cgroups::add_process(cgroup, child)?;
    }
    ch.send(&Msg::CgroupJoined)?;
    match ch.recv("the exec process's pid")? {
        Msg::InitPid(p) => Ok(p),
        m => Err(unexpected(m)),
    }
}

/// A sync message out of turn; `Failed` carries the child's own error.
fn unexpected(m: Msg) -> Error {
    match m {
        Msg::Failed(e) => Error::Init(e),
        m => Error::Init(format!("sync: unexpected {m:?}")),
    }
}

/// Kills and reaps a child of the exec that failed before execve.
fn reap(pid: i32) {
    // The process failed before execve and is ours (or our grandchild).
    crate::sys::kill(pid, libc::SIGKILL);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
}

fn load_process(path: &Path) -> Result<Process> {
    let data = std::fs::read(path).with_ctx(|| format!("read process file {}", path.display()))?;
    serde_json::from_slice(&data).map_err(|e| Error::Spec(format!("malformed process file {}: {e}", path.display())))
}

/// The container's process with runc's `exec` overrides applied.
pub fn from_flags(mut p: Process, f: &ProcessFlags) -> Result<Process> {
    p.set_args(Some(f.args.clone()));
    if let Some(cwd) = f.cwd.as_ref().filter(|c| !c.is_empty()) {
        p.set_cwd(PathBuf::from(cwd));
    }
    if let Some(a) = f.apparmor.as_ref().filter(|a| !a.is_empty()) {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = f.process_label.as_ref().filter(|l| !l.is_empty()) {
        p.set_selinux_label(Some(l.clone()));
    }
    if !f.caps.is_empty() {
        // An absent section means no capabilities (not oci-spec's default set).
        let mut caps = p.capabilities().clone().unwrap_or_else(|| serde_json::from_str("{}").expect("empty caps"));
        let mut bounding = caps.bounding().clone().unwrap_or_default();
        let mut effective = caps.effective().clone().unwrap_or_default();
        let mut permitted = caps.permitted().clone().unwrap_or_default();
        let mut ambient = caps.ambient().clone().unwrap_or_default();
        for name in &f.caps {
            let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
                .map_err(|_| Error::Spec(format!("unknown capability {name:?}")))?;
            // As runc since CVE-2022-29162: not inheritable, so ambient only takes effect
            // where the spec already made the capability inheritable.
            for set in [&mut bounding, &mut effective, &mut permitted, &mut ambient] {
                set.insert(cap);
            }
        }
        caps.set_bounding(Some(bounding));
        caps.set_effective(Some(effective));
        caps.set_permitted(Some(permitted));
        caps.set_ambient(Some(ambient));
        p.set_capabilities(Some(caps));
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &f.env {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    p.set_terminal(Some(f.tty));
    if f.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    let mut user = p.user().clone();
    if let Some(u) = f.user.as_ref().filter(|u| !u.is_empty()) {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let num = |s: &str, what: &str| s.parse::<u32>().map_err(|_| Error::Spec(format!("--user {u:?}: {what} must be a number")));
        user.set_uid(num(uid, "uid")?);
        if let Some(g) = gid {
            user.set_gid(num(g, "gid")?);
        }
    }
    if !f.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&f.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    Ok(p)
}

fn validate(p: &Process) -> Result<()> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Spec("exec: no command given (args are empty)".into()));
    }
    if !p.cwd().is_absolute() {
        return Err(Error::Spec(format!("exec: cwd {:?} is not absolute", p.cwd())));
    }
    Ok(())
}

/// `--cgroup path` or `--cgroup controller:path` (cgroup2 has one hierarchy, so every
/// controller names the same path): an existing sub-cgroup of the container's.
fn sub_cgroup(base: &Path, arg: Option<&str>) -> Result<PathBuf> {
    let Some(arg) = arg.filter(|a| !a.is_empty()) else { return Ok(base.to_path_buf()) };
    let rel = match arg.split_once(':') {
        Some((ctrl, p)) if !ctrl.contains('/') => p,
        _ => arg,
    };
    let mut dir = base.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => dir.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::Spec(format!("--cgroup {arg:?} must stay inside the container's cgroup")))
            }
        }
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| Error::Cgroup(format!("--cgroup {arg:?}: {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(Error::Cgroup(format!("--cgroup {arg:?}: {} is not a cgroup", dir.display())));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Process {
        let mut p = Process::default();
        p.set_env(Some(vec!["PATH=/bin".into(), "A=1".into()]));
        p
    }

    #[test]
    fn flags_override_the_container_process() {
        let f = ProcessFlags {
            args: vec!["id".into()],
            cwd: Some("/tmp".into()),
            env: vec!["A=2".into(), "B=3".into()],
            user: Some("1000:1001".into()),
            additional_gids: vec![5, 6],
            caps: vec!["CAP_NET_RAW".into()],
            no_new_privs: true,
            ..Default::default()
        };
        let p = from_flags(base(), &f).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["id"]);
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!(p.env().as_deref().unwrap(), ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1001));
        assert_eq!(p.user().additional_gids().as_deref().unwrap(), [5, 6]);
        let caps = p.capabilities().as_ref().unwrap();
        assert!(caps.bounding().as_ref().unwrap().contains(&Capability::NetRaw));
        assert!(caps.inheritable().as_ref().is_none_or(|s| !s.contains(&Capability::NetRaw)));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.terminal(), Some(false));
    }

    #[test]
    fn user_without_gid_keeps_the_gid() {
        let mut b = base();
        b.user_mut().set_gid(7);
        let p = from_flags(b, &ProcessFlags { args: vec!["x".into()], user: Some("9".into()), ..Default::default() }).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (9, 7));
    }

    #[test]
    fn bad_flags_are_errors() {
        let bad_user = ProcessFlags { args: vec!["x".into()], user: Some("root".into()), ..Default::default() };
        assert!(from_flags(base(), &bad_user).unwrap_err().to_string().contains("uid must be a number"));
        let bad_cap = ProcessFlags { args: vec!["x".into()], caps: vec!["CAP_BOGUS".into()], ..Default::default() };
        assert!(from_flags(base(), &bad_cap).unwrap_err().to_string().contains("CAP_BOGUS"));
        let p = from_flags(base(), &ProcessFlags::default()).unwrap();
        assert!(validate(&p).unwrap_err().to_string().contains("no command"));
    }

    #[test]
    fn sub_cgroup_stays_inside() {
        let d = std::env::temp_dir().join(format!("berth-exec-cg-{}", std::process::id()));
        std::fs::create_dir_all(d.join("sub")).unwrap();
        assert_eq!(sub_cgroup(&d, None).unwrap(), d);
        assert_eq!(sub_cgroup(&d, Some("sub")).unwrap(), d.join("sub"));
        assert_eq!(sub_cgroup(&d, Some("cpu:/sub")).unwrap(), d.join("sub"));
        assert!(sub_cgroup(&d, Some("../x")).is_err());
        assert!(sub_cgroup(&d, Some("missing")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
