//! Namespaces (the container's `NamespaceOption`) and the pod's sysctls.
//!
//! | kind    | POD                                   | CONTAINER | NODE | TARGET            |
//! |---------|---------------------------------------|-----------|------|-------------------|
//! | network | the pod's netns (none: host network)  | refused   | host | refused           |
//! | ipc     | the pod's ipc ns (none pinned: new)   | new       | host | refused           |
//! | pid     | the pod's pid ns (none pinned: new)   | new       | host | the target's      |
//!
//! UTS follows the network: the host's with host networking, else the pod's (new when none is
//! pinned). Mount: always new. Cgroup: new on cgroup v2 hosts (as containerd). User: a
//! user-namespaced pod's containers join its user namespace (mode POD, with the pod's
//! mapping or none restated); NODE in such a pod, or POD in a pod without one, is refused.

use super::{invalid, SpecError, SpecInput};
use k8s_cri::v1::{LinuxContainerSecurityContext, NamespaceMode, PodSandboxConfig};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Namespaces {
    pub oci: Vec<LinuxNamespace>,
    pub own_net: bool,
    pub own_ipc: bool,
    pub own_uts: bool,
    /// The pod's mapping, when the container joins its user namespace.
    pub user: Option<crate::sandbox::userns::IdMap>,
}

fn ns(typ: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(typ);
    n.set_path(path.map(Path::to_path_buf));
    n
}

fn mode(field: &str, v: i32) -> Result<NamespaceMode, SpecError> {
    NamespaceMode::try_from(v).map_err(|_| invalid(format!("namespace_options.{field}: unknown mode {v}")))
}

fn path_ok(what: &str, p: &Path) -> Result<(), SpecError> {
    if !p.is_absolute() || p.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(invalid(format!("{what} {p:?} is not an absolute path")));
    }
    Ok(())
}

pub fn host_cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

pub fn namespaces(i: &SpecInput, sc: &LinuxContainerSecurityContext) -> Result<Namespaces, SpecError> {
    namespaces_with(i, sc, host_cgroup_v2())
}

pub(crate) fn namespaces_with(i: &SpecInput, sc: &LinuxContainerSecurityContext, cgroup_v2: bool) -> Result<Namespaces, SpecError> {
    use crate::sandbox::userns::{self, Request};
    let o = sc.namespace_options.clone().unwrap_or_default();
    let mut out = Vec::new();
    let sb = i.sandbox;
    // No userns_options: the pod's choice (kubelet always copies the pod's).
    let user = match (o.userns_options.as_ref().map(|u| userns::parse(Some(u))).transpose().map_err(invalid)?, &sb.idmap) {
        (None, pod) => *pod,
        (Some(Request::Node), None) => None,
        (Some(Request::Node), Some(_)) => return Err(invalid("userns_options: mode NODE in a pod that has a user namespace")),
        (Some(Request::Pod(_)), None) => return Err(invalid("userns_options: mode POD in a pod without a user namespace")),
        (Some(Request::Pod(asked)), Some(pod)) => {
            if let Some(a) = asked {
                if (a.uid_host, a.gid_host, a.len) != (pod.uid_host, pod.gid_host, pod.len) {
                    return Err(invalid(format!("userns_options: the mapping differs from the pod's (0 {} {})", pod.uid_host, pod.len)));
                }
            }
            Some(*pod)
        }
    };
    if user.is_some() {
        let p = sb.user_ns.as_ref().ok_or_else(|| invalid("the pod's user namespace is not pinned"))?;
        path_ok("the pod's user namespace", p)?;
        out.push(ns(LinuxNamespaceType::User, Some(p)));
    }

    let own_net = match mode("network", o.network)? {
        NamespaceMode::Pod => match &sb.netns {
            Some(p) => {
                path_ok("the pod's netns", p)?;
                out.push(ns(LinuxNamespaceType::Network, Some(p)));
                true
            }
            None => false,
        },
        NamespaceMode::Node => false,
        m => return Err(invalid(format!("namespace_options.network: mode {} is not supported (POD or NODE)", m.as_str_name()))),
    };

    let own_ipc = match mode("ipc", o.ipc)? {
        NamespaceMode::Pod => {
            if let Some(p) = &sb.ipc_ns {
                path_ok("the pod's ipc namespace", p)?;
            }
            out.push(ns(LinuxNamespaceType::Ipc, sb.ipc_ns.as_deref()));
            true
        }
        NamespaceMode::Container => {
            out.push(ns(LinuxNamespaceType::Ipc, None));
            true
        }
        NamespaceMode::Node => false,
        NamespaceMode::Target => return Err(invalid("namespace_options.ipc: TARGET is not supported (POD, CONTAINER or NODE)")),
    };

    let own_uts = own_net;
    if own_uts {
        if let Some(p) = &sb.uts_ns {
            path_ok("the pod's uts namespace", p)?;
        }
        out.push(ns(LinuxNamespaceType::Uts, sb.uts_ns.as_deref()));
    }

    match mode("pid", o.pid)? {
        NamespaceMode::Pod => {
            // A pod that does not share a PID namespace has none pinned: the container gets its own.
            if let Some(p) = &sb.pid_ns {
                path_ok("the pod's pid namespace", p)?;
            }
            out.push(ns(LinuxNamespaceType::Pid, sb.pid_ns.as_deref()));
        }
        NamespaceMode::Container => out.push(ns(LinuxNamespaceType::Pid, None)),
        NamespaceMode::Node => {}
        NamespaceMode::Target => {
            if o.target_id.is_empty() {
                return Err(invalid("namespace_options.pid is TARGET but target_id is empty"));
            }
            let p: &PathBuf = i
                .target_pid_ns
                .as_ref()
                .ok_or_else(|| SpecError::NotFound(format!("target container {:?} has no PID namespace to join", o.target_id)))?;
            path_ok("the target's pid namespace", p)?;
            out.push(ns(LinuxNamespaceType::Pid, Some(p)));
        }
    }

    out.push(ns(LinuxNamespaceType::Mount, None));
    if cgroup_v2 {
        out.push(ns(LinuxNamespaceType::Cgroup, None));
    }
    Ok(Namespaces { oci: out, own_net, own_ipc, own_uts, user })
}

/// kubelet accepts `net/ipv4/ip_forward` as well as dots: if the first separator is `/`, `/`
/// and `.` swap (Kubernetes' `ConvertSysctlVariableToDotsSeparator`).
fn dotted(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_string(),
    }
}

/// The pod's sysctls, for each of its containers: only namespaced ones, and only where the
/// container has the namespace (net.* its own netns; kernel.shm*/msg*/sem and fs.mqueue.* its
/// own IPC namespace; kernel.domainname its own UTS namespace).
pub fn sysctls(sandbox: &PodSandboxConfig, n: &Namespaces) -> Result<HashMap<String, String>, SpecError> {
    let mut out = HashMap::new();
    let Some(l) = &sandbox.linux else { return Ok(out) };
    for (raw, v) in &l.sysctls {
        let k = dotted(raw);
        // In the dotted form a `/` stands for a literal dot (`eth0/1` is interface eth0.1): a
        // component that would become `.` or `..` under /proc/sys is a traversal.
        if k.contains('\0') || k.split('.').any(|c| c.is_empty() || c.chars().all(|ch| ch == '/')) {
            return Err(invalid(format!("sysctl name {raw:?} is not valid")));
        }
        if v.contains('\0') || v.contains('\n') {
            return Err(invalid(format!("sysctl {raw:?}: value {v:?} is not valid")));
        }
        let ipc = k.starts_with("kernel.shm") || k.starts_with("kernel.msg") || k == "kernel.sem" || k.starts_with("fs.mqueue.");
        let (needs, has) = if k.starts_with("net.") {
            ("its own network namespace (not host network)", n.own_net)
        } else if ipc {
            ("its own IPC namespace (not host IPC)", n.own_ipc)
        } else if k == "kernel.domainname" {
            ("its own UTS namespace", n.own_uts)
        } else {
            return Err(invalid(format!("sysctl {raw:?} is not namespaced: it cannot be set for a pod")));
        };
        if !has {
            return Err(invalid(format!("sysctl {raw:?} needs {needs}")));
        }
        out.insert(k, v.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::tests::input_parts;
    use k8s_cri::v1::{LinuxPodSandboxConfig, NamespaceOption, UserNamespace};

    fn sc(network: NamespaceMode, pid: NamespaceMode, ipc: NamespaceMode) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            namespace_options: Some(NamespaceOption { network: network as i32, pid: pid as i32, ipc: ipc as i32, ..Default::default() }),
            ..Default::default()
        }
    }

    fn kinds(n: &Namespaces) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        n.oci.iter().map(|x| (x.typ(), x.path().clone())).collect()
    }

    #[test]
    fn pod_modes_join_pinned_namespaces() {
        let parts = input_parts();
        let mut i = parts.input();
        i.sandbox = &parts.sandbox;
        let n = namespaces_with(&i, &sc(NamespaceMode::Pod, NamespaceMode::Pod, NamespaceMode::Pod), true).unwrap();
        use LinuxNamespaceType::*;
        assert_eq!(
            kinds(&n),
            vec![
                (Network, Some("/run/pod/net".into())),
                (Ipc, Some("/run/pod/ipc".into())),
                (Uts, Some("/run/pod/uts".into())),
                (Pid, Some("/run/pod/pid".into())),
                (Mount, None),
                (Cgroup, None),
            ]
        );
        assert!(n.own_net && n.own_ipc && n.own_uts);
        let n = namespaces_with(&i, &sc(NamespaceMode::Pod, NamespaceMode::Container, NamespaceMode::Container), false).unwrap();
        assert!(kinds(&n).contains(&(Pid, None)) && kinds(&n).contains(&(Ipc, None)));
        assert!(!kinds(&n).iter().any(|k| k.0 == Cgroup), "no cgroup namespace on cgroup v1");
    }

    #[test]
    fn node_modes_use_the_host() {
        let parts = input_parts();
        let i = parts.input();
        let n = namespaces_with(&i, &sc(NamespaceMode::Node, NamespaceMode::Node, NamespaceMode::Node), true).unwrap();
        use LinuxNamespaceType::*;
        assert_eq!(kinds(&n), vec![(Mount, None), (Cgroup, None)]);
        assert!(!n.own_net && !n.own_ipc && !n.own_uts);
        // A pod on the host network (no netns pinned) also means the host's UTS namespace.
        let mut sb = parts.sandbox.clone();
        sb.netns = None;
        sb.pid_ns = None;
        let i = SpecInput { sandbox: &sb, ..parts.input() };
        let n = namespaces_with(&i, &sc(NamespaceMode::Pod, NamespaceMode::Pod, NamespaceMode::Pod), true).unwrap();
        assert!(!kinds(&n).iter().any(|k| k.0 == Network || k.0 == Uts));
        assert!(kinds(&n).contains(&(Pid, None)), "a pod without a shared pid ns: a new one");
    }

    #[test]
    fn target_pid() {
        let parts = input_parts();
        let mut s = sc(NamespaceMode::Pod, NamespaceMode::Target, NamespaceMode::Pod);
        s.namespace_options.as_mut().unwrap().target_id = "other".into();
        let i = SpecInput { target_pid_ns: Some("/proc/42/ns/pid".into()), ..parts.input() };
        let n = namespaces_with(&i, &s, true).unwrap();
        assert!(kinds(&n).contains(&(LinuxNamespaceType::Pid, Some("/proc/42/ns/pid".into()))));
        assert_eq!(namespaces_with(&parts.input(), &s, true).unwrap_err().code(), tonic::Code::NotFound);
        s.namespace_options.as_mut().unwrap().target_id.clear();
        assert_eq!(namespaces_with(&i, &s, true).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn refused_modes() {
        let parts = input_parts();
        let i = parts.input();
        for s in [
            sc(NamespaceMode::Container, NamespaceMode::Pod, NamespaceMode::Pod),
            sc(NamespaceMode::Target, NamespaceMode::Pod, NamespaceMode::Pod),
            sc(NamespaceMode::Pod, NamespaceMode::Pod, NamespaceMode::Target),
            LinuxContainerSecurityContext {
                namespace_options: Some(NamespaceOption { pid: 9, ..Default::default() }),
                ..Default::default()
            },
        ] {
            assert_eq!(namespaces_with(&i, &s, true).unwrap_err().code(), tonic::Code::InvalidArgument, "{s:?}");
        }
        let userns = LinuxContainerSecurityContext {
            namespace_options: Some(NamespaceOption {
                userns_options: Some(UserNamespace { mode: NamespaceMode::Pod as i32, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        // POD in a pod that has no user namespace of its own.
        assert_eq!(namespaces_with(&i, &userns, true).unwrap_err().code(), tonic::Code::InvalidArgument);
        let mut sb = i.sandbox.clone();
        sb.user_ns = Some("/run/pod/ns/user".into());
        sb.idmap = Some(crate::sandbox::userns::IdMap { uid_host: 1000, gid_host: 2000, len: 65536, allocated: false });
        let mut i2 = parts.input();
        i2.sandbox = &sb;
        let n = namespaces_with(&i2, &userns, true).unwrap();
        assert!(n.oci.iter().any(|x| x.typ() == LinuxNamespaceType::User && x.path().as_deref() == Some(Path::new("/run/pod/ns/user"))));
        assert_eq!(n.user.unwrap().gid_host, 2000);
        let node = LinuxContainerSecurityContext {
            namespace_options: Some(NamespaceOption {
                userns_options: Some(UserNamespace { mode: NamespaceMode::Node as i32, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(namespaces_with(&i2, &node, true).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    fn pod(sysctls: &[(&str, &str)]) -> PodSandboxConfig {
        PodSandboxConfig {
            linux: Some(LinuxPodSandboxConfig {
                sysctls: sysctls.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sysctl_validation() {
        let own = Namespaces { oci: vec![], own_net: true, own_ipc: true, own_uts: true, user: None };
        let host = Namespaces { oci: vec![], own_net: false, own_ipc: false, own_uts: false, user: None };
        let s = sysctls(
            &pod(&[
                ("net.ipv4.ip_unprivileged_port_start", "0"),
                ("kernel.shmmax", "1"),
                ("net/ipv4/conf/eth0.1/forwarding", "1"),
                ("fs.mqueue.msg_max", "10"),
            ]),
            &own,
        )
        .unwrap();
        assert_eq!(s["net.ipv4.ip_unprivileged_port_start"], "0");
        assert_eq!(s["net.ipv4.conf.eth0/1.forwarding"], "1", "slash form converted as kubelet does");
        assert_eq!(s.len(), 4);
        for (k, v, ns) in [
            ("net.ipv4.ip_forward", "1", &host),
            ("kernel.msgmax", "1", &host),
            ("kernel.panic", "1", &own),
            ("vm.swappiness", "1", &own),
            ("", "1", &own),
            ("net.core.somaxconn", "1\n2", &own),
            ("net..x", "1", &own),
            ("net.//.//.kernel.x", "1", &own),
        ] {
            assert_eq!(sysctls(&pod(&[(k, v)]), ns).unwrap_err().code(), tonic::Code::InvalidArgument, "{k}");
        }
        assert!(sysctls(&PodSandboxConfig::default(), &host).unwrap().is_empty());
    }
}
