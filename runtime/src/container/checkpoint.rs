//! `berth checkpoint`: dump a running container's process tree with CRIU (`criu dump`).
//!
//! What criu cannot see from inside the container is named for it, as runc does:
//! - bind mounts (and a bind of the container's cgroup without a cgroup namespace, and the
//!   device nodes bound in a user namespace) are external mounts, keyed by their
//!   destination, so restore can bind the bundle's sources there again;
//! - a network or pid namespace joined by path (a pod's) is external (`net[inode]:key`): it
//!   is not dumped and restore joins the one named in the bundle;
//! - the init's stdio, as `create` recorded it in the state (a shell redirecting its own
//!   stdout moves the original to another fd, so it is not read at dump time), goes to
//!   `descriptors.json` (runc's file: the fds' link targets), so restore can hand its own
//!   stdio to pipes the dump saw (criu `--inherit-fd`); stdio that is a file of the host
//!   (`/dev/null`, a log file: on a mount the container does not have, which criu cannot
//!   dump) is dumped as an external file (`--external file[mnt_id:inode]`, which covers
//!   every fd of the tree open on it), its key kept in `external-stdio.json` for restore.
//!
//! The processes are frozen through the container's cgroup (`--freeze-cgroup`). Without
//! `--leave-running` criu kills them once dumped: the container is then `stopped` (its
//! state is kept until `delete`, or replaced by `restore` under the same id).
//!
//! If criu fails, the container is left as it was (thawed if criu froze it), and an image
//! or work directory this command created is removed again.

use super::require;
use crate::criu::Criu;
use crate::error::{Context, Error, Result};
use crate::state::{State, Status};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// runc's name for the file with the init's stdio, in the image directory.
pub const DESCRIPTORS: &str = "descriptors.json";
/// berth's: per stdio fd, criu's `file[mnt_id:inode]` key of an external file (or null).
pub const EXTERNAL_STDIO: &str = "external-stdio.json";

/// The cgroup modes criu knows (`--manage-cgroups=MODE`).
pub const CGROUP_MODES: [&str; 4] = ["soft", "full", "strict", "ignore"];

pub struct CheckpointOpts {
    pub root: PathBuf,
    pub id: String,
    /// The criu binary.
    pub criu: PathBuf,
    pub image_path: PathBuf,
    /// Log and temporary files (the image directory when None).
    pub work_path: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub pre_dump: bool,
    pub manage_cgroups_mode: Option<String>,
}

/// A mount criu must treat as external: keyed by its destination in the container.
#[derive(Debug, PartialEq)]
pub(crate) struct ExternalMount {
    pub dest: String,
    /// The host path bound there (None: the container's cgroup, known at restore).
    pub source: Option<PathBuf>,
}

pub fn checkpoint(o: &CheckpointOpts) -> Result<()> {
    if o.pre_dump {
        return Err(Error::Unsupported("checkpoint --pre-dump (iterative migration) is not supported by berth".into()));
    }
    let mode = cgroup_mode(o.manage_cgroups_mode.as_deref())?;
    let st = State::load(&o.root, &o.id)?;
    let status = require(&st, &o.root, &[Status::Running, Status::Paused], "only a running or paused container can be checkpointed")?;
    let spec = crate::spec::load(&st.bundle)?.spec;

    let images = std::path::absolute(&o.image_path).with_ctx(|| format!("image path {}", o.image_path.display()))?;
    let work = match &o.work_path {
        Some(w) => std::path::absolute(w).with_ctx(|| format!("work path {}", w.display()))?,
        None => images.clone(),
    };
    let mut made = Made::default();
    made.dir(&images)?;
    made.dir(&work)?;

    let external_stdio = write_descriptors(&st, &images)?;
    let mut c = Criu::new(&o.criu, "dump", &images, &work);
    let mut seen = Vec::new();
    for key in external_stdio.into_iter().flatten() {
        if !seen.contains(&key) {
            c.arg("--external").arg(&key);
            seen.push(key);
        }
    }
    c.arg("--tree").arg(st.pid.to_string()).arg("--root").arg(&st.rootfs);
    c.arg(format!("--manage-cgroups={mode}"));
    if st.cgroup.join("cgroup.freeze").exists() {
        c.arg("--freeze-cgroup").arg(&st.cgroup);
    }
    c.flag(o.leave_running, "--leave-running")
        .flag(o.tcp_established, "--tcp-established")
        .flag(o.ext_unix_sk, "--ext-unix-sk")
        .flag(o.shell_job, "--shell-job")
        .flag(o.file_locks, "--file-locks");
    for m in external_mounts(&spec) {
        c.ext_mount(&m.dest, Path::new(&m.dest));
    }
    for (typ, key) in EXTERNAL_NAMESPACES {
        if let Some(p) = joined_path(&spec, typ) {
            let ino = std::fs::metadata(&p).with_ctx(|| format!("stat {typ} namespace {}", p.display()))?.ino();
            c.arg("--external").arg(format!("{}[{ino}]:{key}", criu_ns_name(typ)));
        }
    }
    let result = c.run(None, || !made.will_remove(&work));
    if let Err(e) = result {
        // criu thaws what it froze when it fails, but a kill or a crash of criu does not:
        // a container that was running must not stay frozen.
        if status == Status::Running && crate::cgroups::is_frozen(&st.cgroup) {
            let _ = crate::cgroups::freezer::set(&st.cgroup, false);
        }
        made.undo();
        return Err(e.into());
    }
    // A paused container stays paused: criu 3.17 leaves a cgroup it found frozen as it was
    // (tests/cgroup2/checkpoint.rs); should a criu thaw it anyway, it is frozen again.
    if o.leave_running && status == Status::Paused && !crate::cgroups::is_frozen(&st.cgroup) {
        crate::cgroups::freezer::set(&st.cgroup, true)?;
    }
    crate::logger::debug(&format!("{}: checkpointed to {} (leave running: {})", o.id, images.display(), o.leave_running));
    Ok(())
}

/// Validates `--manage-cgroups-mode` (criu's default, soft, when not given).
pub(crate) fn cgroup_mode(m: Option<&str>) -> Result<&str> {
    match m {
        None | Some("") => Ok("soft"),
        Some(m) if CGROUP_MODES.contains(&m) => Ok(m),
        Some(m) => Err(Error::Spec(format!("invalid --manage-cgroups-mode {m:?}: one of {}", CGROUP_MODES.join(", ")))),
    }
}

/// Namespaces criu treats as external when joined by path, and the key both sides use.
pub(crate) const EXTERNAL_NAMESPACES: [(LinuxNamespaceType, &str); 2] =
    [(LinuxNamespaceType::Network, "extRootNetNS"), (LinuxNamespaceType::Pid, "extRootPidNS")];

pub(crate) fn criu_ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

/// The path of a namespace of type `t` the spec joins, if any.
pub(crate) fn joined_path(spec: &Spec, t: LinuxNamespaceType) -> Option<PathBuf> {
    let nss = spec.linux().as_ref()?.namespaces().as_ref()?;
    nss.iter().find(|n| n.typ() == t).and_then(|n| n.path().clone())
}

fn has_namespace(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).is_some_and(|n| n.iter().any(|n| n.typ() == t))
}

/// The mounts criu cannot recreate from its images: bind mounts, the bind of the
/// container's cgroup (a cgroup mount without a cgroup namespace), and the device nodes
/// bound from the host in a user namespace.
pub(crate) fn external_mounts(spec: &Spec) -> Vec<ExternalMount> {
    let mut v = Vec::new();
    let cgroupns = has_namespace(spec, LinuxNamespaceType::Cgroup);
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let dest = clean_dest(m.destination());
        let typ = m.typ().as_deref().unwrap_or("");
        let opts = m.options().as_deref().unwrap_or_default();
        let bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
        if bind {
            v.push(ExternalMount { dest, source: m.source().clone() });
        } else if (typ == "cgroup" || typ == "cgroup2") && !cgroupns {
            v.push(ExternalMount { dest, source: None });
        }
    }
    if has_namespace(spec, LinuxNamespaceType::User) {
        for d in spec.linux().as_ref().and_then(|l| l.devices().as_ref()).map(|d| d.as_slice()).unwrap_or_default() {
            v.push(ExternalMount { dest: clean_dest(d.path()), source: Some(d.path().clone()) });
        }
    }
    v
}

/// A destination as criu sees it inside the container: absolute, without `.`/`..`/`//`.
fn clean_dest(p: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// Writes the init's stdio (recorded at create; read now for a container from an older
/// berth) as `descriptors.json` (runc's: the link targets) and `external-stdio.json` (the
/// external-file keys); returns the keys.
fn write_descriptors(st: &State, images: &Path) -> Result<Vec<Option<String>>> {
    let stdio = st.stdio.clone().unwrap_or_else(|| crate::state::Stdio::of(&st.pid.to_string()));
    for (name, data) in [(DESCRIPTORS, serde_json::to_vec(&stdio.links)), (EXTERNAL_STDIO, serde_json::to_vec(&stdio.file_keys))] {
        let file = images.join(name);
        std::fs::write(&file, data.expect("strings serialize")).with_ctx(|| format!("write {}", file.display()))?;
    }
    Ok(stdio.file_keys)
}

/// Directories this command created, removed again if it fails.
#[derive(Default)]
struct Made(Vec<PathBuf>);

impl Made {
    fn dir(&mut self, d: &Path) -> Result<()> {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {
                self.0.push(d.to_path_buf());
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => Ok(()),
            Err(e) => Err(e).with_ctx(|| format!("create {}", d.display())),
        }
    }
    fn will_remove(&self, d: &Path) -> bool {
        self.0.iter().any(|m| d.starts_with(m))
    }
    fn undo(&mut self) {
        for d in self.0.drain(..).rev() {
            let _ = std::fs::remove_dir_all(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(j: serde_json::Value) -> Spec {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn bind_mounts_and_cgroup_binds_are_external() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data/", "type": "bind", "source": "/srv/data"},
                {"destination": "/etc/hosts", "source": "/tmp/hosts", "options": ["rbind", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
            ],
            "linux": {"namespaces": [{"type": "mount"}, {"type": "network", "path": "/run/netns/x"}]}
        }));
        let m = external_mounts(&s);
        assert_eq!(
            m,
            vec![
                ExternalMount { dest: "/data".into(), source: Some("/srv/data".into()) },
                ExternalMount { dest: "/etc/hosts".into(), source: Some("/tmp/hosts".into()) },
                ExternalMount { dest: "/sys/fs/cgroup".into(), source: None },
            ]
        );
        assert_eq!(joined_path(&s, LinuxNamespaceType::Network), Some(PathBuf::from("/run/netns/x")));
        assert_eq!(joined_path(&s, LinuxNamespaceType::Pid), None);
    }

    #[test]
    fn cgroup_modes() {
        assert_eq!(cgroup_mode(None).unwrap(), "soft");
        assert_eq!(cgroup_mode(Some("strict")).unwrap(), "strict");
        assert!(cgroup_mode(Some("hard")).is_err());
    }
}
