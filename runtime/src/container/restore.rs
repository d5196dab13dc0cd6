//! `berth restore`: recreate a checkpointed container from CRIU's images (`criu restore`).
//!
//! The bundle gives what the images do not hold: the rootfs, the sources of the external
//! mounts (keyed by destination, see `checkpoint.rs`), the namespaces to join and the cgroup
//! limits. Order:
//! 1. claim `<root>/<id>/` (a `stopped` container of the same id — what `checkpoint` leaves —
//!    is removed first, so `checkpoint ID; restore ID` works as with runc);
//! 2. create the container's cgroup with the bundle's limits;
//! 3. run criu, which between fork and exec joins that cgroup (criu puts the restored
//!    tree in its own cgroup, `--cgroup-root`), enters a private mount namespace and binds
//!    the rootfs on `<root>/<id>/criu-root` (criu's `--root` must be a mount point; the
//!    host's mounts are never touched), with the namespace fds of joined network/pid
//!    namespaces and stdio pipes recorded at dump (`--inherit-fd`);
//! 4. `--restore-detached --restore-sibling`: the restored init is berth's child; its pid
//!    comes from criu's `--pidfile`; state.json is written (status `running`: there is no
//!    exec fifo) and `--pid-file`.
//!
//! Without `--detach` berth then waits for the container like `run` and deletes it.
//! Hooks are not run on restore. Any failure removes the cgroup and the state directory.

use super::checkpoint::{self, cgroup_mode, criu_ns_name, DESCRIPTORS, EXTERNAL_NAMESPACES, EXTERNAL_STDIO};
use super::create::write_pid_file;
use super::delete;
use crate::cgroups;
use crate::criu::Criu;
use crate::error::{Context, Error, Result};
use crate::state::{self, State, Status};
use oci_spec::runtime::LinuxNamespaceType;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct RestoreOpts {
    pub root: PathBuf,
    pub id: String,
    pub criu: PathBuf,
    pub bundle: PathBuf,
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<String>,
    pub systemd_cgroup: bool,
}

/// Undoes a partial restore unless disarmed.
struct Cleanup {
    cgroup: Option<PathBuf>,
    state_dir: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            let _ = cgroups::signal_all(&cg, libc::SIGKILL);
            for _ in 0..200 {
                if cgroups::pids(&cg).is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if let Err(e) = cgroups::remove(&cg) {
                crate::logger::warn(&format!("undo restore: {e}"));
            }
        }
        if let Some(d) = self.state_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Restores the container; returns its exit code without `--detach`, else 0.
pub fn restore(o: &RestoreOpts) -> Result<i32> {
    state::validate_id(&o.id)?;
    let mode = cgroup_mode(o.manage_cgroups_mode.as_deref())?;
    if o.systemd_cgroup {
        return Err(Error::Unsupported("restore with the systemd cgroup driver".into()));
    }
    let bundle = crate::spec::load(&o.bundle)?;
    if bundle.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false) || o.console_socket.is_some() {
        return Err(Error::Unsupported("restoring a container with a terminal (process.terminal, --console-socket)".into()));
    }
    let linux = bundle.spec.linux().as_ref().expect("validated");
    let images = std::path::absolute(&o.image_path).with_ctx(|| format!("image path {}", o.image_path.display()))?;
    let descriptors: Vec<String> = match std::fs::read(images.join(DESCRIPTORS)) {
        Ok(d) => serde_json::from_slice(&d).map_err(|e| Error::Spec(format!("corrupt {}: {e}", images.join(DESCRIPTORS).display())))?,
        Err(e) => return Err(Error::Spec(format!("no checkpoint in {}: {DESCRIPTORS}: {e}", images.display()))),
    };
    let external_stdio: Vec<Option<String>> = match std::fs::read(images.join(EXTERNAL_STDIO)) {
        Ok(d) => serde_json::from_slice(&d).map_err(|e| Error::Spec(format!("corrupt {}: {e}", images.join(EXTERNAL_STDIO).display())))?,
        Err(_) => Vec::new(),
    };
    let work = match &o.work_path {
        Some(w) => std::path::absolute(w).with_ctx(|| format!("work path {}", w.display()))?,
        None => images.clone(),
    };
    std::fs::create_dir_all(&work).with_ctx(|| format!("create {}", work.display()))?;

    replace_stopped(&o.root, &o.id)?;
    std::fs::create_dir_all(&o.root).with_ctx(|| format!("create root {}", o.root.display()))?;
    let dir = state::dir(&o.root, &o.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(Error::Exists(o.id.clone())),
        Err(e) => return Err(e).with_ctx(|| format!("create {}", dir.display())),
    }
    let mut cleanup = Cleanup { cgroup: None, state_dir: Some(dir.clone()) };
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).ctx("chmod state dir")?;

    let cgroup = cgroups::path_for(linux.cgroups_path().as_deref(), &o.id)?;
    cgroups::create(&cgroup, linux.resources().as_ref())?;
    cleanup.cgroup = Some(cgroup.clone());
    let cg_rel = Path::new("/").join(cgroup.strip_prefix(cgroups::root()?).unwrap_or(&cgroup));

    let criu_root = dir.join("criu-root");
    std::fs::create_dir(&criu_root).with_ctx(|| format!("create {}", criu_root.display()))?;
    let pidfile = dir.join("criu.pid");
    let mut c = Criu::new(&o.criu, "restore", &images, &work);
    c.arg("--restore-detached").arg("--restore-sibling").arg("--pidfile").arg(&pidfile).arg("--root").arg(&criu_root);
    c.arg(format!("--manage-cgroups={mode}")).arg("--cgroup-root").arg(&cg_rel).arg("--evasive-devices");
    c.flag(o.tcp_established, "--tcp-established")
        .flag(o.ext_unix_sk, "--ext-unix-sk")
        .flag(o.shell_job, "--shell-job")
        .flag(o.file_locks, "--file-locks");
    for m in checkpoint::external_mounts(&bundle.spec) {
        let src = match m.source {
            Some(s) if s.is_relative() => bundle.path.join(s),
            Some(s) => s,
            None => cgroup.clone(),
        };
        c.ext_mount(&m.dest, &src);
    }
    let mut inherited: Vec<OwnedFd> = Vec::new();
    for ns in linux.namespaces().as_deref().unwrap_or_default() {
        let Some(p) = ns.path() else { continue };
        let typ = ns.typ();
        if let Some((_, key)) = EXTERNAL_NAMESPACES.iter().find(|(t, _)| *t == typ) {
            let fd =
                nix::fcntl::open(p.as_path(), nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
                    .with_ctx(|| format!("open {typ} namespace {}", p.display()))?;
            c.arg("--inherit-fd").arg(format!("fd[{}]:{key}", fd.as_raw_fd()));
            inherited.push(fd);
        } else if typ == LinuxNamespaceType::Cgroup {
            return Err(Error::Unsupported(format!("restore into a joined cgroup namespace ({})", p.display())));
        } else {
            let mut a = std::ffi::OsString::from(format!("{}:", criu_ns_name(typ)));
            a.push(p);
            c.arg("--join-ns").arg(a);
        }
    }
    // The init's stdio at dump: pipes (as runc does) and host files are replaced by ours
    // (fd 0, 1, 2); one fd per key.
    let mut keys: Vec<&str> = Vec::new();
    for fd in 0..3 {
        let key = match (descriptors.get(fd), external_stdio.get(fd).and_then(|k| k.as_deref())) {
            (Some(d), _) if d.starts_with("pipe:") => d.as_str(),
            (_, Some(k)) => k,
            _ => continue,
        };
        if !keys.contains(&key) {
            c.arg("--inherit-fd").arg(format!("fd[{fd}]:{key}"));
            keys.push(key);
        }
    }

    let pre = pre_exec(&cgroup, &bundle.rootfs, &criu_root, inherited.iter().map(|f| f.as_raw_fd()).collect())?;
    c.run(Some(pre), || true)?;
    drop(inherited);

    let text = std::fs::read_to_string(&pidfile).with_ctx(|| format!("read {}", pidfile.display()))?;
    let pid: i32 = text.trim().parse().map_err(|_| Error::Init(format!("criu wrote a bad pid file: {text:?}")))?;
    let pid_start = state::proc_stat(pid).map(|(_, t)| t).ok_or_else(|| Error::Init("restored init exited at once".into()))?;
    let _ = std::fs::remove_file(&pidfile);
    let _ = std::fs::remove_dir(&criu_root);
    let st = State {
        id: o.id.clone(),
        pid,
        pid_start,
        bundle: bundle.path.clone(),
        rootfs: bundle.rootfs.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        owner: super::create::owner_name(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        cgroup: cgroup.clone(),
        systemd_unit: None,
        hooks: bundle.spec.hooks().clone(),
        shares_host_mounts: false,
        // criu gave the restored init our stdio (--inherit-fd fd[0-2]).
        stdio: Some(state::Stdio::of("self")),
    };
    st.save(&o.root)?;
    if let Some(p) = &o.pid_file {
        write_pid_file(p, pid)?;
    }
    cleanup.cgroup = None;
    cleanup.state_dir = None;
    crate::logger::debug(&format!("{}: restored from {}, init pid {pid}", o.id, images.display()));
    if o.detach {
        return Ok(0);
    }
    wait(&o.root, &st)
}

/// A `stopped` container of this id (left by `checkpoint`) is removed; any other is in the way.
fn replace_stopped(root: &Path, id: &str) -> Result<()> {
    match State::load(root, id) {
        Ok(st) => match st.status(root) {
            Status::Stopped => delete::destroy(root, &st),
            _ => Err(Error::Exists(id.into())),
        },
        Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What criu's child does before exec: join the container's cgroup, enter a private mount
/// namespace, bind the rootfs on `criu_root`, keep `keep` open across exec. Only system
/// calls happen in the child (the strings are made here).
fn pre_exec(
    cgroup: &Path,
    rootfs: &Path,
    criu_root: &Path,
    keep: Vec<RawFd>,
) -> Result<Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>> {
    let cstr =
        |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Spec(format!("path {} contains a NUL byte", p.display())));
    let procs = cstr(&cgroup.join("cgroup.procs"))?;
    let rootfs = cstr(rootfs)?;
    let target = cstr(criu_root)?;
    Ok(Box::new(move || crate::sys::criu_restore_child(&procs, &rootfs, &target, &keep)))
}

/// Foreground restore: forward signals to the restored init (berth's child), return its
/// exit code, delete the container.
fn wait(root: &Path, st: &State) -> Result<i32> {
    use nix::sys::signal::{SigSet, Signal};
    let mut mask = SigSet::empty();
    for s in super::run::FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    mask.thread_block().ctx("block signals")?;
    let code = super::run::wait_forwarding(st.pid, &mask);
    let _ = mask.thread_unblock();
    delete::destroy(root, st)?;
    code
}
