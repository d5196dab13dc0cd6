//! The OCI runtime spec of a CRI container: [`build`] turns a `ContainerConfig` (with its pod's
//! `PodSandboxConfig`, the image config and the paths the sandbox pinned) into the
//! `config.json` the runtime gets.
//!
//! One file per concept; each validates its part of the request and names the field it refuses:
//! - [`image`]: the OCI image config (`ImageConfig::parse`).
//! - [`process`]: args (CRI command/args over the image's Entrypoint/Cmd), env, cwd.
//! - [`user`]: uid/gid/additional gids, names resolved in the image's `/etc/passwd` and
//!   `/etc/group` (read inside the rootfs: symlinks never leave it).
//! - [`mounts`]: the default mounts, the sandbox's files, CRI mounts (propagation, read-only,
//!   parents before children).
//! - [`security`]: privileged, capabilities, no_new_privs, masked/readonly paths, AppArmor.
//! - [`seccomp`]: RuntimeDefault (berth's profile, `default_seccomp.json`) / Unconfined /
//!   Localhost.
//! - [`resources`]: `LinuxContainerResources` → `linux.resources` (also used by
//!   UpdateContainerResources through [`resources::resources`]).
//! - [`namespaces`]: POD / CONTAINER / NODE / TARGET, and the pod's sysctls.
//! - [`devices`]: CRI devices and, for privileged containers, every host device.
//!
//! Nothing here starts a process or changes the host: the only effects are reads (the image's
//! passwd/group files, a Localhost seccomp profile, `stat` of mount sources and devices).

pub mod devices;
pub mod image;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod resources;
pub mod seccomp;
pub mod security;
#[allow(unsafe_code)] // openat2/openat walks of the image's passwd and group
pub mod user;

#[cfg(test)]
mod tests;

pub use image::ImageConfig;
pub use resources::resources;

use k8s_cri::v1::{ContainerConfig, LinuxContainerSecurityContext, PodSandboxConfig};
use oci_spec::runtime::{Linux, LinuxResources, Process, Root, Spec, User};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Annotation keys berth adds (the names containerd uses, so tools that read them work).
pub const ANN_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const ANN_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
pub const ANN_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
pub const ANN_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
pub const ANN_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
pub const ANN_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
pub const ANN_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";

/// What the sandbox prepared for its containers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxPaths {
    /// The pod's pinned network namespace; `None` = the pod uses the host's network.
    pub netns: Option<PathBuf>,
    /// The pod's pinned IPC namespace; `None` (with IPC mode POD) = a new one per container.
    pub ipc_ns: Option<PathBuf>,
    /// The pod's pinned UTS namespace; `None` (own network) = a new one per container.
    pub uts_ns: Option<PathBuf>,
    /// The pod's infra PID namespace, when the pod shares one (PID mode POD).
    pub pid_ns: Option<PathBuf>,
    pub resolv_conf: PathBuf,
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    /// The pod's `/dev/shm`; `None` = a private tmpfs per container.
    pub shm: Option<PathBuf>,
    /// The pod's hostname (`HOSTNAME` and the UTS hostname when the pod has its own).
    pub hostname_value: String,
    /// A user-namespaced pod's pinned user namespace and its mapping.
    pub user_ns: Option<PathBuf>,
    pub idmap: Option<crate::sandbox::userns::IdMap>,
}

pub struct SpecInput<'a> {
    pub container_id: &'a str,
    /// The pod sandbox's id (annotation `io.kubernetes.cri.sandbox-id`).
    pub sandbox_id: &'a str,
    pub config: &'a ContainerConfig,
    pub sandbox_config: &'a PodSandboxConfig,
    pub image: &'a ImageConfig,
    /// The mounted rootfs (read for /etc/passwd and /etc/group).
    pub rootfs: &'a Path,
    pub sandbox: &'a SandboxPaths,
    /// cgroupfs absolute path or systemd `slice:prefix:name`.
    pub cgroups_path: String,
    /// The target container's PID namespace, for PID mode TARGET.
    pub target_pid_ns: Option<PathBuf>,
    /// oom_score_adj below this (the daemon's own) is raised to it rather than refused.
    pub oom_score_adj_min: i32,
    /// Where relative Localhost seccomp profiles (and `localhost/<relative>`) are looked up.
    pub seccomp_localhost_root: Option<&'a Path>,
    /// `None` = AppArmor is not available on this host (see [`security::host_apparmor_enabled`]);
    /// `Some(name)` = it is, and `name` is the loaded profile RuntimeDefault means.
    pub apparmor_default: Option<&'a str>,
    /// What the handler's runtime can do (its `features`).
    pub runtime_features: crate::container::features::RuntimeFeatures,
}

#[derive(Clone, Debug)]
pub struct Built {
    pub spec: Spec,
    /// The image's StopSignal, for StopContainer.
    pub stop_signal: Option<String>,
    /// (uid, gid, additional gids) as resolved, for ContainerStatus.
    pub user: (u32, u32, Vec<u32>),
}

/// Why a spec cannot be built. [`SpecError::code`] is the gRPC status to answer with.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The request is wrong (bad path, unknown user name, bad capability, ...).
    #[error("{0}")]
    Invalid(String),
    /// Something the request names does not exist (a Localhost profile, a host device).
    #[error("{0}")]
    NotFound(String),
    /// Valid, but not possible on this node or not supported by berth yet.
    #[error("{0}")]
    Unsupported(String),
    /// Reading a file failed for another reason than the request.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl SpecError {
    pub fn code(&self) -> tonic::Code {
        match self {
            SpecError::Invalid(_) => tonic::Code::InvalidArgument,
            SpecError::NotFound(_) => tonic::Code::NotFound,
            SpecError::Unsupported(_) => tonic::Code::FailedPrecondition,
            SpecError::Io { .. } => tonic::Code::Internal,
        }
    }
}

impl From<SpecError> for tonic::Status {
    fn from(e: SpecError) -> tonic::Status {
        tonic::Status::new(e.code(), e.to_string())
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> SpecError {
    SpecError::Invalid(msg.into())
}

/// A string that may go into the spec: no NUL (execve, mount and the kernel stop at it).
pub(crate) fn no_nul(field: &str, s: &str) -> Result<(), SpecError> {
    if s.contains('\0') {
        return Err(invalid(format!("{field} contains a NUL byte: {s:?}")));
    }
    Ok(())
}

/// An absolute path with no `..` component and no NUL, returned cleaned (no `.`, no `//`,
/// no trailing `/`).
pub(crate) fn clean_abs(field: &str, p: &str) -> Result<String, SpecError> {
    no_nul(field, p)?;
    if p.is_empty() {
        return Err(invalid(format!("{field} is empty")));
    }
    if !p.starts_with('/') {
        return Err(invalid(format!("{field} {p:?} is not an absolute path")));
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(invalid(format!("{field} {p:?} contains \"..\""))),
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The container's security context (an empty one when the request has none).
pub(crate) fn security_context(c: &ContainerConfig) -> LinuxContainerSecurityContext {
    c.linux.as_ref().and_then(|l| l.security_context.clone()).unwrap_or_default()
}

/// Build the OCI spec of a container.
pub fn build(i: &SpecInput) -> Result<Built, SpecError> {
    let cfg = i.config;
    if i.container_id.is_empty() || i.container_id.contains('/') || i.container_id.contains('\0') {
        return Err(invalid(format!("container id {:?} is not valid", i.container_id)));
    }
    let meta = cfg.metadata.as_ref().ok_or_else(|| invalid("ContainerConfig.metadata is missing"))?;
    if meta.name.is_empty() {
        return Err(invalid("ContainerConfig.metadata.name is empty"));
    }
    no_nul("ContainerConfig.metadata.name", &meta.name)?;
    if !i.rootfs.is_absolute() {
        return Err(invalid(format!("rootfs {:?} is not absolute", i.rootfs)));
    }
    let sc = security_context(cfg);
    let sandbox_sc = i.sandbox_config.linux.as_ref().and_then(|l| l.security_context.clone()).unwrap_or_default();
    let privileged = sc.privileged;
    if privileged && !sandbox_sc.privileged {
        // containerd and CRI-O refuse this too: a pod must declare that it runs privileged containers.
        return Err(invalid("privileged container in a sandbox that is not privileged"));
    }
    if sc.selinux_options.is_some() {
        tracing::debug!("selinux_options ignored: berth-cri does not label (no SELinux support)");
    }

    // Namespaces first: several rules below depend on them (hostname, sysctls).
    let ns = namespaces::namespaces(i, &sc)?;
    let sysctls = namespaces::sysctls(i.sandbox_config, &ns)?;

    let user = user::resolve(i.rootfs, &sc, i.image)?;
    let args = process::args(cfg, i.image)?;
    let env = process::env(cfg, i.image, &i.sandbox.hostname_value)?;
    let cwd = process::cwd(cfg, i.image)?;

    let caps = security::capabilities(&sc)?;
    let seccomp = seccomp::seccomp(&sc, &caps.bounding, i.seccomp_localhost_root)?;
    let apparmor = security::apparmor(&sc, i.apparmor_default)?;
    let (masked, readonly) = security::masked_and_readonly_paths(&sc)?;

    let mounts = mounts::mounts(cfg, i.sandbox, privileged, sc.readonly_rootfs, i.runtime_features.recursive_read_only)?;
    let devices = devices::devices(cfg, privileged)?;

    let res = cfg.linux.as_ref().and_then(|l| l.resources.clone()).unwrap_or_default();
    let mut linux_res: LinuxResources = resources::resources_with(&res, resources::host_swap_available())?;
    linux_res.set_devices(Some(devices.cgroup_rules));
    let oom = resources::oom_score_adj(&res, i.oom_score_adj_min)?;

    let mut u = User::default();
    u.set_uid(user.uid);
    u.set_gid(user.gid);
    u.set_additional_gids(if user.additional_gids.is_empty() { None } else { Some(user.additional_gids.clone()) });
    u.set_username(None);
    u.set_umask(None);

    let mut p = Process::default();
    p.set_terminal(Some(cfg.tty));
    p.set_console_size(None);
    p.set_user(u);
    p.set_args(Some(args));
    p.set_command_line(None);
    p.set_env(Some(env));
    p.set_cwd(PathBuf::from(cwd));
    p.set_capabilities(Some(caps.oci));
    p.set_rlimits(None);
    p.set_no_new_privileges(Some(sc.no_new_privs && !privileged));
    p.set_apparmor_profile(apparmor);
    p.set_oom_score_adj(oom);
    p.set_selinux_label(None);
    p.set_io_priority(None);
    p.set_scheduler(None);
    p.set_exec_cpu_affinity(None);

    let mut l = Linux::default();
    // Joining the pod's user namespace, the mappings are restated: runc needs them to know
    // the container's root on the host.
    l.set_uid_mappings(ns.user.map(|m| crate::sandbox::userns::oci_map(m.uid_host, m.len)));
    l.set_gid_mappings(ns.user.map(|m| crate::sandbox::userns::oci_map(m.gid_host, m.len)));
    l.set_sysctl(if sysctls.is_empty() { None } else { Some(sysctls) });
    l.set_resources(Some(linux_res));
    l.set_cgroups_path(if i.cgroups_path.is_empty() { None } else { Some(PathBuf::from(&i.cgroups_path)) });
    l.set_namespaces(Some(ns.oci.clone()));
    l.set_devices(if devices.nodes.is_empty() { None } else { Some(devices.nodes) });
    l.set_seccomp(seccomp);
    l.set_rootfs_propagation(mounts.rootfs_propagation.clone());
    l.set_masked_paths(Some(masked));
    l.set_readonly_paths(Some(readonly));
    l.set_mount_label(None);

    let mut root = Root::default();
    root.set_path(i.rootfs.to_path_buf());
    root.set_readonly(Some(sc.readonly_rootfs));

    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_string());
    spec.set_root(Some(root));
    spec.set_mounts(Some(mounts.mounts));
    spec.set_process(Some(p));
    // A hostname needs a UTS namespace of the container's own (or the pod's).
    spec.set_hostname(if ns.own_uts && !i.sandbox.hostname_value.is_empty() {
        no_nul("PodSandboxConfig.hostname", &i.sandbox.hostname_value)?;
        Some(i.sandbox.hostname_value.clone())
    } else {
        None
    });
    spec.set_domainname(None);
    spec.set_annotations(Some(annotations(i, &meta.name)?));
    spec.set_linux(Some(l));

    Ok(Built { spec, stop_signal: i.image.stop_signal.clone().filter(|s| !s.is_empty()), user: (user.uid, user.gid, user.additional_gids) })
}

/// The CRI annotations, then berth's `io.kubernetes.cri.*` ones (which win over a request's).
fn annotations(i: &SpecInput, name: &str) -> Result<HashMap<String, String>, SpecError> {
    let mut a = HashMap::new();
    for (k, v) in &i.config.annotations {
        if k.is_empty() {
            return Err(invalid("ContainerConfig.annotations has an empty key"));
        }
        a.insert(k.clone(), v.clone());
    }
    let meta = i.sandbox_config.metadata.clone().unwrap_or_default();
    a.insert(ANN_CONTAINER_TYPE.into(), "container".into());
    a.insert(ANN_SANDBOX_ID.into(), i.sandbox_id.into());
    a.insert(ANN_SANDBOX_NAME.into(), meta.name);
    a.insert(ANN_SANDBOX_NAMESPACE.into(), meta.namespace);
    a.insert(ANN_SANDBOX_UID.into(), meta.uid);
    a.insert(ANN_CONTAINER_NAME.into(), name.into());
    a.insert(ANN_IMAGE_NAME.into(), i.config.image.as_ref().map(|s| s.image.clone()).unwrap_or_default());
    Ok(a)
}
