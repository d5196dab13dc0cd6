//! `berth create`: the parent side of the create path.
//!
//! Validate the bundle → claim the state dir → cgroup → exec fifo → clone → place the
//! child in the cgroup → answer its requests (id maps, hooks) → `Ready` → state.json.
//! Any failure kills what was cloned and removes the cgroup and state dir.

use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Kind};
use crate::logger;
use crate::namespaces;
use crate::process::{init::InitArgs, pidfd, spawn};
use crate::spec;
use crate::state::{self, State, Status};
use crate::sync::{self, Msg};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct CreateOpts {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// The systemd cgroup driver: the cgroupsPath is `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

/// Undoes a partial create unless disarmed.
struct Cleanup {
    pids: Vec<i32>,
    cgroup: Option<PathBuf>,
    /// The systemd unit started for `cgroup`.
    unit: Option<String>,
    state_dir: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in self.pids.drain(..) {
            let fd = pidfd::open(pid);
            // A process we cloned.
            crate::sys::kill(pid, libc::SIGKILL);
            // Reap our own children; wait for reparented ones to disappear.
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            if let Some(fd) = fd {
                pidfd::wait_exit(&fd, Duration::from_secs(5));
            }
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        }
        if let Some(cg) = self.cgroup.take() {
            let removed = match self.unit.take() {
                Some(u) => cgroups::systemd::remove(&u, &cg),
                None => cgroups::remove(&cg),
            };
            if let Err(e) = removed {
                logger::warn(&format!("undo create: {e}"));
            }
        }
        if let Some(d) = self.state_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// systemd socket activation: LISTEN_FDS fds are preserved too (as runc does).
fn listen_fds() -> (i32, Vec<String>) {
    match std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse::<i32>().ok()) {
        Some(n) if n > 0 => (n, vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".into()]),
        _ => (0, Vec::new()),
    }
}

/// Creates the container; `console` is a connected console socket when the process has a
/// terminal. Returns with the init blocked before execve.
pub fn create(opts: &CreateOpts, console: Option<OwnedFd>) -> Result<State> {
    state::validate_id(&opts.id)?;
    create_from(opts, spec::load(&opts.bundle)?, console)
}

/// [`create`] for a bundle the caller has already loaded.
pub fn create_from(opts: &CreateOpts, bundle: spec::Bundle, console: Option<OwnedFd>) -> Result<State> {
    state::validate_id(&opts.id)?;
    let (listen, extra_env) = listen_fds();
    let preserve = opts.preserve_fds.max(0) + listen;
    crate::process::fds::check_preserved(preserve)?;
    let process = bundle.spec.process().as_ref().expect("validated");
    let terminal = process.terminal().unwrap_or(false);
    match (terminal, console.is_some()) {
        (true, false) => return Err(Error::Spec("process.terminal is true: a --console-socket is required".into())),
        (false, true) => return Err(Error::Spec("--console-socket given but process.terminal is false".into())),
        _ => {}
    }
    let linux = bundle.spec.linux().as_ref().expect("validated");

    std::fs::create_dir_all(&opts.root).with_ctx(|| format!("create root {}", opts.root.display()))?;
    let dir = state::dir(&opts.root, &opts.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(Error::Exists(opts.id.clone())),
        Err(e) => return Err(e).with_ctx(|| format!("create {}", dir.display())),
    }
    let mut cleanup = Cleanup { pids: Vec::new(), cgroup: None, unit: None, state_dir: Some(dir.clone()) };
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).ctx("chmod state dir")?;

    let plan = namespaces::plan(linux.namespaces().as_deref().unwrap_or_default())?;
    let resources = linux.resources().as_ref();
    // systemd driver: everything is checked now, the unit is started once the init exists.
    let unit = match opts.systemd_cgroup {
        true => {
            let path = linux.cgroups_path().as_deref().map(|p| p.to_string_lossy().into_owned());
            let u = cgroups::systemd::Unit::parse(path.as_deref(), &opts.id)?;
            cgroups::check_new(resources)?;
            Some(u)
        }
        false => None,
    };
    let cgroup = match &unit {
        Some(u) => cgroups::root()?.join(&u.rel),
        None => {
            let cg = cgroups::path_for(linux.cgroups_path().as_deref(), &opts.id)?;
            cgroups::create(&cg, resources)?;
            cleanup.cgroup = Some(cg.clone());
            cg
        }
    };
    logger::debug(&format!("{}: cgroup {}", opts.id, cgroup.display()));

    let fifo_path = dir.join(state::EXEC_FIFO);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622)).ctx("create exec fifo")?;
    // mkfifo honours the umask; the container's user must be able to open it for writing.
    std::fs::set_permissions(&fifo_path, std::os::unix::fs::PermissionsExt::from_mode(0o622)).ctx("chmod exec fifo")?;
    let fifo =
        nix::fcntl::open(&fifo_path, nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC, Mode::empty()).ctx("open exec fifo")?;

    // Before the clone: an idmap can only be given with the host's rights.
    let idmapped = crate::rootfs::idmap::prepare(&bundle.spec, &bundle.path)?;
    let (parent_ch, child_ch) = sync::pair()?;
    let clone_flags = plan.clone;
    let shares_host_mounts = plan.shares_host_mounts;
    let args = InitArgs {
        spec: &bundle.spec,
        id: &opts.id,
        bundle: &bundle.path,
        rootfs: &bundle.rootfs,
        cgroup: &cgroup,
        plan,
        channel: &child_ch,
        fifo: &fifo,
        console_socket: console.as_ref(),
        no_pivot: opts.no_pivot,
        new_keyring: !opts.no_new_keyring,
        preserve_fds: preserve,
        extra_env,
        seccomp: bundle.seccomp.as_ref(),
        idmapped: &idmapped,
    };
    // cgroupfs: the child is born in its cgroup (clone3 CLONE_INTO_CGROUP) where the kernel
    // allows it. systemd: the cgroup does not exist yet; the child waits for CgroupJoined.
    let cgroup_dir = match unit {
        None => Some(std::fs::File::open(&cgroup).with_ctx(|| format!("open cgroup {}", cgroup.display()))?),
        Some(_) => None,
    };
    let (pid, in_cgroup) = match &cgroup_dir {
        Some(d) => spawn::clone_into(clone_flags, d)?,
        None => (spawn::clone(clone_flags)?, false),
    };
    if pid == 0 {
        drop(parent_ch);
        drop(cgroup_dir);
        spawn::child_main(args);
    }
    drop(args);
    drop(child_ch);
    drop(console);
    cleanup.pids.push(pid);
    logger::debug(&format!("{}: cloned pid {pid} ({:?}, born in its cgroup: {in_cgroup})", opts.id, clone_flags));

    drop(cgroup_dir);
    if let Some(u) = &unit {
        cgroups::systemd::start(u, pid, resources.unwrap_or(&Default::default()), &opts.id, &cgroup)?;
        cleanup.cgroup = Some(cgroup.clone());
        cleanup.unit = Some(u.name.clone());
        if u.is_slice() {
            cgroups::add_process(&cgroup, pid)?;
        }
        // The exact values, and those systemd has no property for, before the init runs.
        cgroups::apply_new(&cgroup, resources)?;
        logger::debug(&format!("{}: systemd unit {} started", opts.id, u.name));
    } else if !in_cgroup {
        cgroups::add_process(&cgroup, pid)?;
    }
    parent_ch.send(&Msg::CgroupJoined)?;
    let mut init_pid = pid;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut st = State {
        id: opts.id.clone(),
        pid,
        pid_start: 0,
        bundle: bundle.path.clone(),
        rootfs: bundle.rootfs.clone(),
        created: now,
        owner: owner_name(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        cgroup: cgroup.clone(),
        systemd_unit: unit.as_ref().map(|u| u.name.clone()),
        hooks: bundle.spec.hooks().clone(),
        shares_host_mounts,
        // The init's stdio is ours, unless it gets a terminal.
        stdio: (!terminal).then(|| state::Stdio::of("self")),
    };
    loop {
        let (msg, fd) = parent_ch.recv_with_fd("the container to be ready")?;
        match msg {
            Msg::MapIds => {
                let uid = linux.uid_mappings().as_deref().unwrap_or_default();
                let gid = linux.gid_mappings().as_deref().unwrap_or_default();
                namespaces::write_id_maps(pid, uid, gid)?;
                parent_ch.send(&Msg::IdsMapped)?;
            }
            Msg::InitPid(p) if init_pid == pid => {
                init_pid = p;
                // The intermediate exits right after reporting; once reaped its pid may be
                // reused, so only the init is left to clean up.
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                cleanup.pids = vec![p];
            }
            Msg::RunHooks => {
                st.pid = init_pid;
                let json = super::state_json(&st, Status::Creating);
                if let Some(h) = bundle.spec.hooks() {
                    hooks::run_all(Kind::Prestart, h.prestart().as_deref().unwrap_or_default(), &json)?;
                    hooks::run_all(Kind::CreateRuntime, h.create_runtime().as_deref().unwrap_or_default(), &json)?;
                }
                parent_ch.send(&Msg::HooksDone(String::from_utf8_lossy(&json).into_owned()))?;
            }
            // The init installed a notifying filter: hand its listener to the agent.
            Msg::SeccompListener => {
                let (Some(fd), Some(l)) = (fd, bundle.seccomp.as_ref().and_then(|p| p.listener())) else {
                    return Err(Error::Init("sync: seccomp listener without fd or listenerPath".into()));
                };
                st.pid = init_pid;
                crate::seccomp::notify::send(l, init_pid, &super::state_json(&st, Status::Creating), fd.as_fd())?;
            }
            Msg::Ready => break,
            Msg::Failed(e) => return Err(Error::Init(e)),
            other => return Err(Error::Init(format!("sync: unexpected {other:?}"))),
        }
    }
    st.pid = init_pid;
    st.pid_start = state::proc_stat(init_pid).map(|(_, t)| t).ok_or_else(|| Error::Init("container init exited during create".into()))?;
    st.save(&opts.root)?;
    logger::debug(&format!("{}: created, init pid {init_pid}", opts.id));
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, init_pid)?;
    }
    cleanup.pids.clear();
    cleanup.cgroup = None;
    cleanup.state_dir = None;
    Ok(st)
}

/// Writes the pid file atomically (a reader never sees it half-written).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = std::path::absolute(path).with_ctx(|| format!("pid file {}", path.display()))?;
    let tmp = abs.with_file_name(format!(".{}.tmp", abs.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    std::fs::write(&tmp, pid.to_string()).with_ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &abs).with_ctx(|| format!("write {}", abs.display()))
}

pub(crate) fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string())
}
