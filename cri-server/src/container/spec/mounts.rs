//! The container's mounts: the OCI defaults, the sandbox's files (`/etc/hosts`,
//! `/etc/resolv.conf`, `/etc/hostname`, `/dev/shm`) and the request's mounts.
//!
//! Order (as containerd): the defaults not overridden by a request mount (a request mount on
//! `/dev` also drops everything under `/dev`), then every bind mount, sandbox files and request
//! mounts together, sorted (stably) by their number of path components so that a parent is
//! mounted before its children.

use super::{clean_abs, invalid, no_nul, SandboxPaths, SpecError};
use k8s_cri::v1::{ContainerConfig, MountPropagation};
use oci_spec::runtime::Mount;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Mounts {
    pub mounts: Vec<Mount>,
    /// `rslave` / `rshared` when a request mount's propagation needs it.
    pub rootfs_propagation: Option<String>,
}

fn m(dst: &str, typ: &str, src: &str, opts: &[&str]) -> Mount {
    let mut x = Mount::default();
    x.set_destination(PathBuf::from(dst));
    x.set_typ(Some(typ.into()));
    x.set_source(Some(PathBuf::from(src)));
    x.set_options(Some(opts.iter().map(|s| s.to_string()).collect()));
    x
}

/// The defaults every container gets (runc's `spec` plus the cgroup mount). sysfs and cgroup are
/// read-only unless privileged.
pub fn defaults(privileged: bool) -> Vec<Mount> {
    let ro = if privileged { "rw" } else { "ro" };
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        m("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        m("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        m("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", ro]),
        m("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", ro]),
    ]
}

struct Bind {
    dst: String,
    src: PathBuf,
    opts: Vec<String>,
    /// Id-mapped with the pod's mapping (a user-namespaced pod's volumes).
    idmap: bool,
}

fn components(p: &str) -> usize {
    p.split('/').filter(|c| !c.is_empty()).count()
}

/// A request mount's host path: absolute, no `..`, existing; symlinks resolved (the CRI asks
/// runtimes to mount the link's target).
fn host_source(field: &str, p: &str) -> Result<PathBuf, SpecError> {
    let clean = clean_abs(field, p)?;
    std::fs::canonicalize(&clean).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => invalid(format!("{field} {p:?} does not exist on the host")),
        _ => SpecError::Io { what: format!("resolve {field} {p:?}"), source: e },
    })
}

/// `rro_supported`: the handler's runtime has the `rro` mount option (its `features`).
pub fn mounts(
    c: &ContainerConfig,
    sb: &SandboxPaths,
    privileged: bool,
    readonly_rootfs: bool,
    rro_supported: bool,
) -> Result<Mounts, SpecError> {
    let mut binds: Vec<Bind> = Vec::new();
    let mut requested: HashSet<String> = HashSet::new();
    let mut propagation: Option<&str> = None;

    for (n, cm) in c.mounts.iter().enumerate() {
        let field = format!("mounts[{n}]");
        let dst = clean_abs(&format!("{field}.container_path"), &cm.container_path)?;
        if cm.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
            return Err(SpecError::Unsupported(format!("{field}: image volumes (Mount.image) are not supported by berth-cri yet")));
        }
        // A user-namespaced pod's volumes are id-mapped with the pod's mapping (what its root
        // writes is the host's root's, as KEP-127 has it); a mount may only restate that mapping.
        if !cm.uid_mappings.is_empty() || !cm.gid_mappings.is_empty() {
            let Some(pod) = &sb.idmap else {
                return Err(invalid(format!("{field}: uid/gid mappings need a pod with a user namespace")));
            };
            let same = |v: &[k8s_cri::v1::IdMapping], host: u32| matches!(v, [m] if m.container_id == 0 && m.host_id == host && m.length == pod.len);
            if !same(&cm.uid_mappings, pod.uid_host) || !same(&cm.gid_mappings, pod.gid_host) {
                return Err(invalid(format!("{field}: uid/gid mappings must be the pod's (0 {} {})", pod.uid_host, pod.len)));
            }
        }
        if cm.recursive_read_only {
            if !cm.readonly {
                return Err(invalid(format!(
                    "{field}: recursive_read_only needs readonly (a read-write mount cannot be recursively read-only)"
                )));
            }
            // A mount that receives new submounts from the host (rslave, rshared) would get
            // writable ones after the fact: the KEP allows only private propagation.
            if cm.propagation != MountPropagation::PropagationPrivate as i32 {
                return Err(invalid(format!(
                    "{field}: recursive_read_only needs private propagation (new submounts would not be read-only)"
                )));
            }
            // Status advertises recursive_read_only_mounts only for such handlers, so kubelet
            // does not ask; a direct client gets told.
            if !rro_supported {
                return Err(SpecError::Unsupported(format!(
                    "{field}: recursive read-only mounts: this handler's runtime has no rro mount option"
                )));
            }
        }
        let src = host_source(&format!("{field}.host_path"), &cm.host_path)?;
        if !requested.insert(dst.clone()) {
            return Err(invalid(format!("{field}: container_path {dst:?} is mounted twice")));
        }
        let prop = match MountPropagation::try_from(cm.propagation) {
            Ok(MountPropagation::PropagationPrivate) => "rprivate",
            Ok(MountPropagation::PropagationHostToContainer) => {
                if propagation != Some("rshared") {
                    propagation = Some("rslave");
                }
                "rslave"
            }
            Ok(MountPropagation::PropagationBidirectional) => {
                propagation = Some("rshared");
                "rshared"
            }
            Err(_) => return Err(invalid(format!("{field}: unknown propagation {}", cm.propagation))),
        };
        // selinux_relabel: nothing to do on a host without SELinux (berth-cri does not label).
        let mut opts: Vec<String> = vec!["rbind".into(), prop.into(), if cm.readonly { "ro" } else { "rw" }.into()];
        // `ro` still makes the top mount read-only where `rro` is refused at run time.
        if cm.recursive_read_only {
            opts.push("rro".into());
        }
        binds.push(Bind { dst, src, opts, idmap: sb.idmap.is_some() });
    }

    // The sandbox's files, unless the request mounts something there.
    let rw = if readonly_rootfs { "ro" } else { "rw" };
    let mut sandbox_files: Vec<(&str, &Path, &str)> =
        vec![("/etc/hosts", &sb.hosts, rw), ("/etc/resolv.conf", &sb.resolv_conf, rw), ("/etc/hostname", &sb.hostname, rw)];
    if let Some(shm) = &sb.shm {
        sandbox_files.push(("/dev/shm", shm, "rw"));
    }
    for (dst, src, rw) in sandbox_files {
        if requested.contains(dst) || (requested.contains("/dev") && dst.starts_with("/dev/")) {
            continue;
        }
        if src.as_os_str().is_empty() {
            continue;
        }
        let s = src.to_str().ok_or_else(|| invalid(format!("sandbox file for {dst} is not UTF-8")))?;
        no_nul(dst, s)?;
        if !src.is_absolute() {
            return Err(invalid(format!("sandbox file for {dst} ({s:?}) is not absolute")));
        }
        requested.insert(dst.to_string());
        binds.push(Bind {
            dst: dst.into(),
            src: src.to_path_buf(),
            opts: vec!["rbind".into(), "rprivate".into(), rw.into()],
            idmap: false,
        });
    }
    binds.sort_by_key(|b| components(&b.dst));

    let mut out: Vec<Mount> = defaults(privileged)
        .into_iter()
        .filter(|d| {
            let dst = d.destination().to_string_lossy().into_owned();
            let under_dev = requested.contains("/dev") && dst.starts_with("/dev/");
            !(requested.contains(&dst) || under_dev)
        })
        .collect();
    for b in binds {
        let mut x = Mount::default();
        x.set_destination(PathBuf::from(b.dst));
        x.set_typ(Some("bind".into()));
        x.set_source(Some(b.src));
        x.set_options(Some(b.opts));
        if let (true, Some(pod)) = (b.idmap, &sb.idmap) {
            x.set_uid_mappings(Some(crate::sandbox::userns::oci_map(pod.uid_host, pod.len)));
            x.set_gid_mappings(Some(crate::sandbox::userns::oci_map(pod.gid_host, pod.len)));
        }
        out.push(x);
    }
    Ok(Mounts { mounts: out, rootfs_propagation: propagation.map(String::from) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::tests::TempDir;
    use k8s_cri::v1::{ImageSpec, Mount as CriMount};

    fn cm(host: &Path, dst: &str) -> CriMount {
        CriMount { host_path: host.to_str().unwrap().into(), container_path: dst.into(), ..Default::default() }
    }

    fn sandbox(t: &TempDir) -> SandboxPaths {
        SandboxPaths {
            hosts: t.path().join("hosts"),
            resolv_conf: t.path().join("resolv.conf"),
            hostname: t.path().join("hostname"),
            shm: Some(t.path().join("shm")),
            ..Default::default()
        }
    }

    fn dsts(m: &Mounts) -> Vec<String> {
        m.mounts.iter().map(|x| x.destination().to_string_lossy().into_owned()).collect()
    }

    fn find<'a>(m: &'a Mounts, d: &str) -> &'a Mount {
        m.mounts.iter().find(|x| x.destination() == Path::new(d)).unwrap_or_else(|| panic!("no mount on {d}"))
    }

    fn opts(x: &Mount) -> Vec<String> {
        x.options().clone().unwrap_or_default()
    }

    #[test]
    fn defaults_and_sandbox_files() {
        let t = TempDir::new("mnt");
        let m = mounts(&ContainerConfig::default(), &sandbox(&t), false, false, true).unwrap();
        assert_eq!(
            dsts(&m),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/dev/shm"
            ]
        );
        assert!(opts(find(&m, "/sys")).contains(&"ro".to_string()));
        assert!(opts(find(&m, "/sys/fs/cgroup")).contains(&"ro".to_string()));
        assert_eq!(find(&m, "/dev/shm").source().as_deref(), Some(t.path().join("shm").as_path()));
        assert_eq!(opts(find(&m, "/etc/hosts")), ["rbind", "rprivate", "rw"]);
        assert_eq!(m.rootfs_propagation, None);
        // Privileged: sysfs and cgroup writable; read-only root: the sandbox files too.
        let m = mounts(&ContainerConfig::default(), &SandboxPaths { shm: None, ..sandbox(&t) }, true, true, true).unwrap();
        assert!(opts(find(&m, "/sys")).contains(&"rw".to_string()));
        assert!(opts(find(&m, "/sys/fs/cgroup")).contains(&"rw".to_string()));
        assert_eq!(find(&m, "/dev/shm").typ().as_deref(), Some("tmpfs"), "no pod shm: a private tmpfs");
        assert!(opts(find(&m, "/etc/resolv.conf")).contains(&"ro".to_string()));
    }

    #[test]
    fn request_mounts_sorted_propagation_readonly() {
        let t = TempDir::new("mnt-req");
        for d in ["a", "b", "c"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        let mut c = ContainerConfig::default();
        let mut deep = cm(&t.path().join("a"), "/data/x/y");
        deep.readonly = true;
        let mut mid = cm(&t.path().join("b"), "/data/x");
        mid.propagation = MountPropagation::PropagationHostToContainer as i32;
        let mut top = cm(&t.path().join("c"), "/data/");
        top.propagation = MountPropagation::PropagationBidirectional as i32;
        let etc = cm(&t.path().join("c"), "/etc");
        c.mounts = vec![deep, mid, top, etc];
        let m = mounts(&c, &sandbox(&t), false, false, true).unwrap();
        let d = dsts(&m);
        let pos = |x: &str| d.iter().position(|y| y == x).unwrap();
        assert!(pos("/data") < pos("/data/x") && pos("/data/x") < pos("/data/x/y"), "{d:?}");
        assert!(pos("/etc") < pos("/etc/hosts"), "a request /etc comes before the sandbox's /etc/hosts: {d:?}");
        assert_eq!(opts(find(&m, "/data/x/y")), ["rbind", "rprivate", "ro"]);
        assert_eq!(opts(find(&m, "/data/x")), ["rbind", "rslave", "rw"]);
        assert_eq!(opts(find(&m, "/data")), ["rbind", "rshared", "rw"]);
        assert_eq!(find(&m, "/data").typ().as_deref(), Some("bind"));
        assert_eq!(m.rootfs_propagation.as_deref(), Some("rshared"));
        c.mounts.retain(|x| x.propagation != MountPropagation::PropagationBidirectional as i32);
        assert_eq!(mounts(&c, &sandbox(&t), false, false, true).unwrap().rootfs_propagation.as_deref(), Some("rslave"));
    }

    #[test]
    fn request_mounts_override_defaults_and_sandbox_files() {
        let t = TempDir::new("mnt-ovr");
        let c = ContainerConfig { mounts: vec![cm(t.path(), "/etc/hosts"), cm(t.path(), "/dev")], ..Default::default() };
        let m = mounts(&c, &sandbox(&t), false, false, true).unwrap();
        let d = dsts(&m);
        assert_eq!(d.iter().filter(|x| *x == "/etc/hosts").count(), 1);
        assert_eq!(find(&m, "/etc/hosts").source().as_deref(), Some(t.path()));
        assert!(!d.iter().any(|x| x.starts_with("/dev/")), "a request /dev drops everything under /dev: {d:?}");
        assert_eq!(find(&m, "/dev").typ().as_deref(), Some("bind"));
    }

    #[test]
    fn symlinked_host_path_is_resolved() {
        let t = TempDir::new("mnt-link");
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink(t.path().join("real"), t.path().join("link")).unwrap();
        let c = ContainerConfig { mounts: vec![cm(&t.path().join("link"), "/x")], ..Default::default() };
        let m = mounts(&c, &sandbox(&t), false, false, true).unwrap();
        assert_eq!(find(&m, "/x").source().as_deref(), Some(t.path().join("real").as_path()));
    }

    #[test]
    fn bad_mounts_refused() {
        let t = TempDir::new("mnt-bad");
        let code = |mnt: CriMount| {
            mounts(&ContainerConfig { mounts: vec![mnt], ..Default::default() }, &sandbox(&t), false, false, true).unwrap_err().code()
        };
        use tonic::Code::*;
        assert_eq!(code(cm(t.path(), "rel/path")), InvalidArgument);
        assert_eq!(code(cm(t.path(), "")), InvalidArgument);
        assert_eq!(code(cm(t.path(), "/a/../../etc")), InvalidArgument);
        assert_eq!(code(cm(Path::new("relative"), "/x")), InvalidArgument);
        assert_eq!(code(cm(&t.path().join("../x"), "/x")), InvalidArgument);
        assert_eq!(code(cm(&t.path().join("missing"), "/x")), InvalidArgument);
        assert_eq!(code(CriMount { propagation: 7, ..cm(t.path(), "/x") }), InvalidArgument);
        assert_eq!(code(CriMount { recursive_read_only: true, ..cm(t.path(), "/x") }), InvalidArgument);
        // Read-only, private, supported: accepted as rbind + ro + rro.
        let ok = ContainerConfig {
            mounts: vec![CriMount { recursive_read_only: true, readonly: true, ..cm(t.path(), "/x") }],
            ..Default::default()
        };
        let m = mounts(&ok, &sandbox(&t), false, false, true).unwrap();
        assert!(find(&m, "/x").options().as_ref().unwrap().iter().any(|o| o == "rro"));
        assert_eq!(mounts(&ok, &sandbox(&t), false, false, false).unwrap_err().code(), FailedPrecondition, "runtime without rro");
        let slave = CriMount {
            recursive_read_only: true,
            readonly: true,
            propagation: MountPropagation::PropagationHostToContainer as i32,
            ..cm(t.path(), "/x")
        };
        assert_eq!(code(slave), InvalidArgument);
        assert_eq!(
            code(CriMount { image: Some(ImageSpec { image: "busybox".into(), ..Default::default() }), ..cm(t.path(), "/x") }),
            FailedPrecondition
        );
        let twice = ContainerConfig { mounts: vec![cm(t.path(), "/x"), cm(t.path(), "/x/")], ..Default::default() };
        assert_eq!(mounts(&twice, &sandbox(&t), false, false, true).unwrap_err().code(), InvalidArgument);
    }
}
