//! RunPodSandbox: validate, reserve the name, persist a `Creating` record, then build the pod
//! — pinned UTS/IPC/network namespaces, /dev/shm, sysctls, resolv.conf/hosts/hostname, CNI —
//! and mark it `Ready`. Any failure undoes what was done; a crash leaves a `Creating` record
//! that the next start cleans up.

use super::CriServer;
use crate::network::{Bandwidth, PodNetwork, PortMapping};
use crate::sandbox::{self, files, namespaces, sysctl, Sandbox, SandboxRecord, SandboxState};
use k8s_cri::v1 as cri;
use tonic::Status;

fn ns_mode(v: i32) -> cri::NamespaceMode {
    cri::NamespaceMode::try_from(v).unwrap_or(cri::NamespaceMode::Pod)
}

/// The pod's network view for CNI, from its config (port mappings, bandwidth annotations,
/// DNS).
pub(crate) fn pod_network(s: &Sandbox) -> Option<PodNetwork> {
    let netns = s.record.netns.clone()?;
    let m = s.metadata();
    let port_mappings = s
        .config
        .port_mappings
        .iter()
        .filter(|p| p.host_port > 0)
        .map(|p| PortMapping {
            host_port: p.host_port as u16,
            container_port: p.container_port as u16,
            protocol: match cri::Protocol::try_from(p.protocol).unwrap_or(cri::Protocol::Tcp) {
                cri::Protocol::Udp => "udp".into(),
                cri::Protocol::Sctp => "sctp".into(),
                _ => "tcp".into(),
            },
            host_ip: p.host_ip.clone(),
        })
        .collect();
    let q = |k: &str| s.config.annotations.get(k).and_then(|v| parse_quantity(v));
    let bandwidth = match (q("kubernetes.io/ingress-bandwidth"), q("kubernetes.io/egress-bandwidth")) {
        (None, None) => None,
        (i, e) => Some(Bandwidth {
            ingress_rate: i.unwrap_or(0),
            ingress_burst: if i.is_some() { u32::MAX as u64 } else { 0 },
            egress_rate: e.unwrap_or(0),
            egress_burst: if e.is_some() { u32::MAX as u64 } else { 0 },
        }),
    };
    let dns = s.config.dns_config.as_ref().map(|d| crate::network::Dns {
        servers: d.servers.clone(),
        searches: d.searches.clone(),
        options: d.options.clone(),
    });
    Some(PodNetwork { id: s.record.id.clone(), name: m.name, namespace: m.namespace, uid: m.uid, netns, port_mappings, bandwidth, dns })
}

/// A Kubernetes quantity in bits per second ("10M", "1Gi", "500k").
fn parse_quantity(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty() && h.len() <= 64 && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// A port mapping's numbers fit a port: the container port 1..=65535, the host port 0 (not
/// published) or 1..=65535 (the `as u16` for CNI must never wrap).
fn check_port_mapping(p: &cri::PortMapping) -> Result<(), String> {
    if !(1..=65535).contains(&p.container_port) {
        return Err(format!("port mapping: container port {} is not in 1..65535", p.container_port));
    }
    if !(0..=65535).contains(&p.host_port) {
        return Err(format!("port mapping: host port {} is not in 1..65535", p.host_port));
    }
    Ok(())
}

impl CriServer {
    pub(crate) async fn do_run_pod_sandbox(&self, r: cri::RunPodSandboxRequest) -> Result<cri::RunPodSandboxResponse, Status> {
        let cfg = r.config.ok_or_else(|| Status::invalid_argument("RunPodSandbox: config is required"))?;
        let meta = cfg.metadata.clone().ok_or_else(|| Status::invalid_argument("RunPodSandbox: metadata is required"))?;
        for (what, v) in [("name", &meta.name), ("namespace", &meta.namespace), ("uid", &meta.uid)] {
            if !sandbox::valid_meta(v) {
                return Err(Status::invalid_argument(format!("RunPodSandbox: metadata.{what} {v:?} is empty or not a valid name")));
            }
        }
        let handler = if r.runtime_handler.is_empty() { self.config.runtime.default_handler.clone() } else { r.runtime_handler.clone() };
        if !self.config.runtime.handlers.contains_key(&handler) {
            return Err(Status::invalid_argument(format!("RunPodSandbox: unknown runtime handler {handler:?}")));
        }
        let ns = cfg.linux.as_ref().and_then(|l| l.security_context.as_ref()).and_then(|s| s.namespace_options.clone()).unwrap_or_default();
        let host_network = ns_mode(ns.network) == cri::NamespaceMode::Node;
        let host_ipc = ns_mode(ns.ipc) == cri::NamespaceMode::Node;
        let host_pid = ns_mode(ns.pid) == cri::NamespaceMode::Node;
        let shared_pid = ns_mode(ns.pid) == cri::NamespaceMode::Pod;
        let userns_req =
            sandbox::userns::parse(ns.userns_options.as_ref()).map_err(|e| Status::invalid_argument(format!("RunPodSandbox: {e}")))?;
        if userns_req != sandbox::userns::Request::Node {
            let rt = self.runtime_for(&handler)?;
            if !self.features.of(&rt).await.user_namespaces {
                return Err(Status::failed_precondition(format!(
                    "RunPodSandbox: handler {handler:?} cannot run user-namespaced pods (its runtime lacks id-mapped mounts or user namespaces, or this kernel is older than 6.15)"
                )));
            }
            if !self.userns_paths_searchable() {
                return Err(Status::failed_precondition(format!(
                    "RunPodSandbox: user-namespaced pods need {} and {} searchable by others (o+x on every directory above them)",
                    self.store.root().display(),
                    self.registry.root.display()
                )));
            }
        }
        if let Some(d) = &cfg.dns_config {
            files::check_dns(d).map_err(|e| Status::invalid_argument(format!("RunPodSandbox: {e}")))?;
        }
        // No hostname asked for: the node's, as containerd and CRI-O do.
        let hostname = if cfg.hostname.is_empty() {
            nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
        } else {
            cfg.hostname.clone()
        };
        // Also for host-network pods: the name lands in the pod's /etc/hostname and hosts files.
        if !valid_hostname(&hostname) {
            return Err(Status::invalid_argument(format!("RunPodSandbox: invalid hostname {hostname:?}")));
        }
        for p in &cfg.port_mappings {
            check_port_mapping(p).map_err(|e| Status::invalid_argument(format!("RunPodSandbox: {e}")))?;
        }
        let mut sysctls = Vec::new();
        if let Some(l) = &cfg.linux {
            for (k, v) in &l.sysctls {
                let kind =
                    sysctl::validate(k, v, host_network, host_ipc).map_err(|e| Status::invalid_argument(format!("RunPodSandbox: {e}")))?;
                sysctls.push((k.clone(), v.clone(), kind));
            }
        }
        if let Some(parent) = cfg.linux.as_ref().map(|l| l.cgroup_parent.as_str()).filter(|p| !p.is_empty()) {
            check_cgroup_parent(parent, self.systemd_cgroup()).map_err(|e| Status::invalid_argument(format!("RunPodSandbox: {e}")))?;
        }
        if !cfg.log_directory.is_empty() && !std::path::Path::new(&cfg.log_directory).is_absolute() {
            return Err(Status::invalid_argument("RunPodSandbox: log_directory must be an absolute path"));
        }

        let id = crate::persist::new_id();
        let key = sandbox::name_key(&meta);
        self.registry
            .reserve(&format!("pod:{key}"), &id)
            .map_err(|holder| Status::already_exists(format!("pod sandbox name {key:?} is reserved for {holder}")))?;
        let lock = self.registry.lock(&id);
        let _g = lock.lock().await;
        let mut sb = Sandbox {
            record: SandboxRecord {
                id: id.clone(),
                name_key: key,
                state: SandboxState::Creating,
                created_at: sandbox::now_ns(),
                handler,
                host_network,
                host_ipc,
                host_pid,
                netns: None,
                ipc_ns: None,
                uts_ns: None,
                shm: None,
                infra_pid: 0,
                infra_start: 0,
                pid_ns: None,
                user_ns: None,
                userns: None,
                ips: vec![],
                network_attached: false,
                hostname,
            },
            config: cfg,
        };
        // Choosing a block and recording it are one step: a concurrent RunPodSandbox sees it.
        let _alloc = USERNS_ALLOC.lock().unwrap_or_else(|e| e.into_inner());
        if let sandbox::userns::Request::Pod(asked) = userns_req {
            let map = match asked {
                Some(m) => m,
                None => {
                    let in_use: Vec<_> = self.registry.sandboxes().iter().filter_map(|s| s.record.userns).collect();
                    let rt = &self.config.runtime;
                    sandbox::userns::allocate(rt.userns_first_id, rt.userns_pods, &in_use).map_err(|e| {
                        self.registry.release(&format!("pod:{}", sb.record.name_key), &id);
                        Status::resource_exhausted(format!("RunPodSandbox: {e}"))
                    })?
                }
            };
            sb.record.userns = Some(map);
        }
        if let Err(e) = self.registry.put_sandbox(sb.clone()) {
            self.registry.release(&format!("pod:{}", sb.record.name_key), &id);
            return Err(Status::internal(format!("RunPodSandbox: persist the sandbox: {e}")));
        }
        drop(_alloc);
        match self.setup_sandbox(&mut sb, sysctls, shared_pid).await {
            Ok(()) => {
                sb.record.state = SandboxState::Ready;
                if let Err(e) = self.registry.put_sandbox(sb.clone()) {
                    self.teardown_sandbox(&sb).await;
                    let _ = self.registry.remove_sandbox(&id);
                    return Err(Status::internal(format!("RunPodSandbox: persist the sandbox: {e}")));
                }
                tracing::info!(id = %id, pod = %meta.name, namespace = %meta.namespace, ips = ?sb.record.ips, "pod sandbox ready");
                self.emit(&id, &id, cri::ContainerEventType::ContainerCreatedEvent);
                self.emit(&id, &id, cri::ContainerEventType::ContainerStartedEvent);
                Ok(cri::RunPodSandboxResponse { pod_sandbox_id: id })
            }
            Err(e) => {
                self.teardown_sandbox(&sb).await;
                let _ = self.registry.remove_sandbox(&id);
                Err(e)
            }
        }
    }

    /// Build the pod's pieces, recording each in the sandbox (and on disk) as it is made, so
    /// that teardown — now or after a crash — finds it.
    async fn setup_sandbox(
        &self,
        sb: &mut Sandbox,
        sysctls: Vec<(String, String, namespaces::Kind)>,
        shared_pid: bool,
    ) -> Result<(), Status> {
        let dir = sandbox::dir(&self.registry.root, &sb.record.id);
        let nsdir = dir.join("ns");
        let internal = |what: &str, e: std::io::Error| Status::internal(format!("RunPodSandbox: {what}: {e}"));
        // The pod's directory holds its /dev/shm and its files: root's alone, but passable
        // (not listable) for a user-namespaced pod's unprivileged init.
        let mode = if sb.record.userns.is_some() { 0o711 } else { 0o700 };
        crate::persist::private_dir(&dir, mode).map_err(|e| internal("pod directory", e))?;
        if let Some(map) = sb.record.userns {
            // The user namespace and, inside it, the pod's network, IPC and UTS namespaces.
            let (d, h) = (nsdir.clone(), sb.record.hostname.clone());
            let (net, ipc) = (!sb.record.host_network, !sb.record.host_ipc);
            let p = blocking_io(move || sandbox::userns::pin(&d, &map, net, ipc, net.then_some(h.as_str())))
                .await
                .map_err(|e| internal("user namespace", e))?;
            sb.record.user_ns = Some(p.user);
            sb.record.netns = p.net;
            sb.record.ipc_ns = p.ipc;
            sb.record.uts_ns = p.uts;
            self.registry.put_sandbox(sb.clone()).map_err(|e| internal("persist", e))?;
        } else if !sb.record.host_network {
            let h = sb.record.hostname.clone();
            let d = nsdir.clone();
            sb.record.uts_ns = Some(
                blocking_io(move || namespaces::pin(namespaces::Kind::Uts, &d, Some(&h)))
                    .await
                    .map_err(|e| internal("UTS namespace", e))?,
            );
            self.registry.put_sandbox(sb.clone()).map_err(|e| internal("persist", e))?;
            let d = nsdir.clone();
            sb.record.netns = Some(
                blocking_io(move || namespaces::pin(namespaces::Kind::Net, &d, None))
                    .await
                    .map_err(|e| internal("network namespace", e))?,
            );
            self.registry.put_sandbox(sb.clone()).map_err(|e| internal("persist", e))?;
        }
        if !sb.record.host_ipc {
            if sb.record.ipc_ns.is_none() {
                let d = nsdir.clone();
                sb.record.ipc_ns = Some(
                    blocking_io(move || namespaces::pin(namespaces::Kind::Ipc, &d, None))
                        .await
                        .map_err(|e| internal("IPC namespace", e))?,
                );
                self.registry.put_sandbox(sb.clone()).map_err(|e| internal("persist", e))?;
            }
            let d = dir.clone();
            sb.record.shm = Some(blocking_io(move || files::mount_shm(&d)).await.map_err(|e| internal("/dev/shm", e))?);
            self.registry.put_sandbox(sb.clone()).map_err(|e| internal("persist", e))?;
        }
        if shared_pid {
            let d = nsdir.clone();
            let user = sb.record.user_ns.clone().zip(sb.record.userns);
            // Recorded before the pin exists would be wrong; the pid is recorded right after.
            let (pid, start, pin) =
                blocking_io(move || crate::sandbox::infra::start(&d, user.as_ref().map(|(p, m)| (p.as_path(), m.uid_host, m.gid_host))))
                    .await
                    .map_err(|e| internal("the pod's PID namespace", e))?;
            sb.record.infra_pid = pid;
            sb.record.infra_start = start;
            sb.record.pid_ns = Some(pin);
            self.registry.put_sandbox(sb.clone()).map_err(|e| internal("persist", e))?;
        }
        for (k, v, kind) in sysctls {
            let ns = match kind {
                namespaces::Kind::Net => sb.record.netns.clone(),
                _ => sb.record.ipc_ns.clone(),
            }
            .ok_or_else(|| Status::invalid_argument(format!("sysctl {k}: the pod has no namespace of its own for it")))?;
            let kk = k.clone();
            blocking_io(move || sysctl::apply(&kk, &v, kind, &ns))
                .await
                .map_err(|e| Status::invalid_argument(format!("RunPodSandbox: sysctl {k}: {e}")))?;
        }
        let resolv = files::resolv_conf(sb.config.dns_config.as_ref()).map_err(|e| internal("resolv.conf", e))?;
        files::write(&dir, "resolv.conf", &resolv).map_err(|e| internal("resolv.conf", e))?;
        files::write(&dir, "hostname", &format!("{}\n", sb.record.hostname)).map_err(|e| internal("hostname", e))?;
        if let Some(pn) = pod_network(sb) {
            sb.record.network_attached = true;
            self.registry.put_sandbox(sb.clone()).map_err(|e| internal("persist", e))?;
            let res = self.cni.add(&pn).await.map_err(|e| Status::internal(format!("RunPodSandbox: network setup: {e}")))?;
            sb.record.ips = res.ips.iter().map(|i| i.to_string()).collect();
        }
        files::write(&dir, "hosts", &files::hosts(&sb.record.hostname, &sb.record.ips)).map_err(|e| internal("hosts", e))?;
        self.registry.put_sandbox(sb.clone()).map_err(|e| internal("persist", e))?;
        Ok(())
    }

    /// Undo a pod's pieces (network, namespaces, /dev/shm); each step tolerates what is
    /// already gone. Errors are logged: teardown goes on with the rest.
    pub(crate) async fn teardown_sandbox(&self, sb: &Sandbox) {
        if sb.record.network_attached {
            if let Some(pn) = pod_network(sb) {
                if let Err(e) = self.cni.del(&pn).await {
                    tracing::warn!(id = %sb.record.id, error = %e, "CNI DEL failed");
                }
            }
        }
        crate::sandbox::infra::stop(sb.record.infra_pid, sb.record.infra_start);
        // The user namespace last: it owns the others.
        let paths: Vec<_> = [&sb.record.netns, &sb.record.ipc_ns, &sb.record.uts_ns, &sb.record.pid_ns, &sb.record.user_ns]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let shm = sb.record.shm.clone();
        let id = sb.record.id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for p in paths {
                if let Err(e) = namespaces::unpin(&p) {
                    tracing::warn!(id = %id, path = %p.display(), error = %e, "cannot unpin namespace");
                }
            }
            if let Some(s) = shm {
                let _ = files::unmount_shm(&s);
            }
        })
        .await;
    }
}

/// Serialises choosing a user namespace block with recording it in the pod's record.
static USERNS_ALLOC: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl CriServer {
    /// A user-namespaced container's init (an unprivileged host uid) walks to its rootfs
    /// under the image store and binds the pod's files from under the state root.
    pub(crate) fn userns_paths_searchable(&self) -> bool {
        sandbox::userns::searchable_by_others(self.store.root()) && sandbox::userns::searchable_by_others(&self.registry.root)
    }
}

/// A cgroup parent must be in the form of the node's cgroup manager (kubelet and the runtime
/// disagreeing on the driver is a misconfiguration to name, not to guess around): a slice
/// name (`kubepods-besteffort-pod1.slice`) for systemd, an absolute path without `..` for
/// cgroupfs.
fn check_cgroup_parent(parent: &str, systemd: bool) -> Result<(), String> {
    if systemd {
        let ok = parent.ends_with(".slice") && !parent.contains('/') && parent.len() > ".slice".len();
        if !ok {
            return Err(format!("cgroup_parent {parent:?} is not a systemd slice name, and the cgroup manager is systemd"));
        }
    } else {
        let p = std::path::Path::new(parent);
        if parent.ends_with(".slice") && !parent.contains('/') {
            return Err(format!("cgroup_parent {parent:?} is a systemd slice, and the cgroup manager is cgroupfs (set runtime.cgroup_manager = \"systemd\")"));
        }
        if !p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(format!("cgroup_parent {parent:?} must be an absolute cgroup path without \"..\""));
        }
    }
    Ok(())
}

pub(crate) async fn blocking_io<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| std::io::Error::other(format!("task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    #[test]
    fn cgroup_parents_follow_the_manager() {
        use super::check_cgroup_parent as c;
        assert!(c("/kubepods/burstable/pod1", false).is_ok());
        assert!(c("kubepods-burstable-pod1.slice", true).is_ok());
        assert!(c("kubepods-burstable-pod1.slice", false).is_err());
        assert!(c("/kubepods/pod1", true).is_err());
        assert!(c("kubepods/pod1", false).is_err());
        assert!(c("/kubepods/../../etc", false).is_err());
        assert!(c(".slice", true).is_err());
    }

    #[test]
    fn port_mappings_out_of_range_are_refused() {
        let m = |container_port, host_port| k8s_cri::v1::PortMapping { container_port, host_port, ..Default::default() };
        assert!(super::check_port_mapping(&m(80, 8080)).is_ok());
        assert!(super::check_port_mapping(&m(80, 0)).is_ok());
        assert!(super::check_port_mapping(&m(65535, 65535)).is_ok());
        for (c, h) in [(0, 80), (-1, 80), (65536, 80), (80, 65536), (80, -5), (70000, 4464)] {
            assert!(super::check_port_mapping(&m(c, h)).is_err(), "{c} {h}");
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(super::parse_quantity("10M"), Some(10_000_000));
        assert_eq!(super::parse_quantity("1Gi"), Some(1 << 30));
        assert_eq!(super::parse_quantity("x"), None);
    }
}
