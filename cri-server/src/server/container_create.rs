//! CreateContainer: resolve the image, reserve the name, persist a `Creating` record, mount
//! the rootfs, build the OCI spec (`container::spec`), and start the container's berth-mon,
//! which runs the runtime's `create` and reports the init's pid. Any failure undoes it all.
//! An image that is the path of a checkpoint archive makes a container to restore instead
//! (`container_restore.rs`).

use super::CriServer;
use crate::container::record::{self, Container, ContainerRecord, ContainerState};
use crate::container::spec::{self, ImageConfig, SandboxPaths, SpecInput};
use crate::registry::Kind;
use crate::sandbox::{self, SandboxState};
use k8s_cri::v1 as cri;
use std::path::{Component, Path, PathBuf};
use tonic::Status;

/// `<log_directory>/<log_path>`: the relative path may not climb out of the directory.
fn log_path(dir: &str, rel: &str, fallback: &Path) -> Result<PathBuf, Status> {
    if rel.is_empty() {
        return Ok(fallback.to_path_buf());
    }
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Status::invalid_argument(format!(
            "CreateContainer: log_path {rel:?} must be a relative path inside the pod's log directory"
        )));
    }
    if dir.is_empty() {
        return Ok(fallback.to_path_buf());
    }
    Ok(Path::new(dir).join(p))
}

fn cgroups_path(parent: &str, id: &str) -> String {
    if parent.ends_with(".slice") {
        // systemd driver: slice:prefix:name.
        format!("{parent}:berth:{id}")
    } else if parent.is_empty() {
        // No pod cgroup (kubelet always sends one; crictl and critest may not): the runtime's
        // own default place, whose parent it also removes when the last container goes.
        String::new()
    } else {
        format!("{}/berth-{id}", parent.trim_end_matches('/'))
    }
}

impl CriServer {
    pub(crate) async fn do_create_container(&self, r: cri::CreateContainerRequest) -> Result<cri::CreateContainerResponse, Status> {
        if r.pod_sandbox_id.is_empty() {
            return Err(Status::invalid_argument("CreateContainer: pod_sandbox_id is required"));
        }
        let config = r.config.ok_or_else(|| Status::invalid_argument("CreateContainer: config is required"))?;
        let meta = config.metadata.clone().ok_or_else(|| Status::invalid_argument("CreateContainer: metadata is required"))?;
        if !sandbox::valid_meta(&meta.name) {
            return Err(Status::invalid_argument(format!("CreateContainer: metadata.name {:?} is empty or not a valid name", meta.name)));
        }
        let image = super::image_of(config.image.clone())?;
        let restore = self.checkpoint_import(&image).await?;
        let image = match &restore {
            Some(r) => r.image(),
            None => image,
        };
        let sid = self
            .registry
            .resolve(Kind::Sandbox, &r.pod_sandbox_id)
            .ok_or_else(|| Status::not_found(format!("pod sandbox {:?} not found", r.pod_sandbox_id)))?;
        let sb = self.registry.sandbox(&sid).ok_or_else(|| Status::not_found(format!("pod sandbox {sid} not found")))?;
        if sb.record.state != SandboxState::Ready {
            return Err(Status::failed_precondition(format!("CreateContainer: pod sandbox {sid} is not ready")));
        }
        let names = self.names(&image);
        let store = self.store.clone();
        let img = image.clone();
        let rec = super::blocking(move || store.find_image(&img, &names)).await?.ok_or_else(|| match &restore {
            Some(r) => Status::not_found(format!(
                "CreateContainer: image {image:?} of checkpoint {} is not present (pull it first)",
                r.archive.display()
            )),
            None => Status::not_found(format!("CreateContainer: image {image:?} is not present (pull it first)")),
        })?;

        let id = crate::persist::new_id();
        let key = record::name_key(&meta, &sb.metadata());
        self.registry
            .reserve(&format!("ctr:{key}"), &id)
            .map_err(|holder| Status::already_exists(format!("container name {key:?} is reserved for {holder}")))?;
        let lock = self.registry.lock(&id);
        let _g = lock.lock().await;
        let root = self.registry.root.clone();
        let log = match log_path(&sb.config.log_directory, &config.log_path, &record::dir(&root, &id).join("ctr.log")) {
            Ok(l) => l,
            Err(e) => {
                self.registry.release(&format!("ctr:{key}"), &id);
                return Err(e);
            }
        };
        let mut c = Container {
            record: ContainerRecord {
                id: id.clone(),
                sandbox_id: sid.clone(),
                name_key: key.clone(),
                state: ContainerState::Creating,
                created_at: sandbox::now_ns(),
                started_at: 0,
                finished_at: 0,
                exit_code: 0,
                reason: String::new(),
                message: String::new(),
                image: restore
                    .as_ref()
                    .map(|r| r.dump.rootfs_image_name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| image.clone()),
                image_id: rec.id.clone(),
                image_ref: rec.repo_digests.first().cloned().unwrap_or_else(|| rec.id.clone()),
                log_path: log,
                handler: sb.record.handler.clone(),
                pid: 0,
                pid_start: 0,
                monitor_pid: 0,
                stop_signal: None,
                uid: 0,
                gid: 0,
                groups: vec![],
                restore_from: restore
                    .as_ref()
                    .map(|_| super::container_restore::restore_dir(&root, &id).join(crate::container::checkpoint::IMAGES_DIR)),
            },
            config: config.clone(),
        };
        if let Err(e) = self.registry.put_container(c.clone()) {
            self.registry.release(&format!("ctr:{key}"), &id);
            return Err(Status::internal(format!("CreateContainer: persist: {e}")));
        }
        match self.build_container(&mut c, &sb, &rec.id, restore.as_ref()).await {
            Ok(()) => {
                tracing::info!(id = %id, name = %meta.name, pod = %sid, "container created");
                self.emit(&id, &sid, cri::ContainerEventType::ContainerCreatedEvent);
                Ok(cri::CreateContainerResponse { container_id: id })
            }
            Err(e) => {
                if let Err(e2) = self.destroy_container(&id, &c.record.handler).await {
                    tracing::warn!(id = %id, error = %e2.message(), "cleanup after a failed create");
                }
                Err(e)
            }
        }
    }

    async fn build_container(
        &self,
        c: &mut Container,
        sb: &crate::sandbox::Sandbox,
        image_id: &str,
        restore: Option<&super::container_restore::Restore>,
    ) -> Result<(), Status> {
        let id = c.record.id.clone();
        let root = self.registry.root.clone();
        let diff = match restore {
            Some(r) => Some(self.unpack_checkpoint(&id, r).await?),
            None => None,
        };
        let store = self.store.clone();
        let (iid, cid) = (image_id.to_string(), id.clone());
        let idmap = match (&sb.record.user_ns, sb.record.userns) {
            (Some(ns), Some(m)) => Some(crate::image::rootfs::Idmap { userns: ns.clone(), root_uid: m.uid_host, root_gid: m.gid_host }),
            _ => None,
        };
        let unpack = crate::image::unpack::UnpackOptions {
            max_size: self.config.image.max_layer_size,
            allow_devices: self.config.image.allow_device_nodes,
        };
        let rootfs =
            super::blocking(move || store.create_rootfs_with(&iid, &cid, idmap.as_ref(), diff.as_deref().map(|d| (d, unpack)))).await?;
        let store = self.store.clone();
        let iid = image_id.to_string();
        let blob = super::blocking(move || store.read_blob(&iid)).await?;
        let image = ImageConfig::parse(&blob).map_err(|e| Status::internal(format!("CreateContainer: image config: {e}")))?;

        let sdir = sandbox::dir(&root, &sb.record.id);
        let paths = SandboxPaths {
            netns: sb.record.netns.clone(),
            ipc_ns: sb.record.ipc_ns.clone(),
            uts_ns: sb.record.uts_ns.clone(),
            pid_ns: sb.record.pid_ns.clone(),
            resolv_conf: sdir.join("resolv.conf"),
            hosts: sdir.join("hosts"),
            hostname: sdir.join("hostname"),
            shm: sb.record.shm.clone(),
            hostname_value: sb.record.hostname.clone(),
            user_ns: sb.record.user_ns.clone(),
            idmap: sb.record.userns,
        };
        let ns =
            c.config.linux.as_ref().and_then(|l| l.security_context.as_ref()).and_then(|s| s.namespace_options.clone()).unwrap_or_default();
        let target_pid_ns = if cri::NamespaceMode::try_from(ns.pid) == Ok(cri::NamespaceMode::Target) {
            let t = self
                .registry
                .resolve(Kind::Container, &ns.target_id)
                .and_then(|t| self.registry.container(&t))
                .ok_or_else(|| Status::not_found(format!("CreateContainer: target container {:?} not found", ns.target_id)))?;
            if t.record.state != ContainerState::Running {
                return Err(Status::failed_precondition(format!("CreateContainer: target container {} is not running", t.record.id)));
            }
            Some(PathBuf::from(format!("/proc/{}/ns/pid", t.record.pid)))
        } else {
            None
        };
        let parent = sb.config.linux.as_ref().map(|l| l.cgroup_parent.clone()).unwrap_or_default();
        let apparmor = spec::security::host_apparmor_enabled().then_some(crate::container::apparmor::PROFILE);
        let runtime_features = self.features.of(&self.runtime_for(&c.record.handler)?).await;
        let input = SpecInput {
            runtime_features,
            container_id: &id,
            sandbox_id: &sb.record.id,
            apparmor_default: apparmor,
            config: &c.config,
            sandbox_config: &sb.config,
            image: &image,
            rootfs: &rootfs,
            sandbox: &paths,
            cgroups_path: cgroups_path(&parent, &id),
            target_pid_ns,
            oom_score_adj_min: self.oom_score_adj_min(),
            seccomp_localhost_root: None,
        };
        let built = spec::build(&input).map_err(|e| Status::new(e.code(), format!("CreateContainer: {e}")))?;
        if built.spec.process().as_ref().and_then(|p| p.apparmor_profile().as_deref()) == Some(crate::container::apparmor::PROFILE) {
            let scratch = root.join("apparmor");
            tokio::task::spawn_blocking(move || crate::container::apparmor::ensure_default(&scratch))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::failed_precondition(format!("CreateContainer: RuntimeDefault AppArmor profile: {e}")))?;
        }
        let bundle = record::bundle(&root, &id);
        std::fs::create_dir_all(&bundle).map_err(|e| Status::internal(format!("CreateContainer: bundle: {e}")))?;
        std::fs::create_dir_all(record::persist_dir(&root, &id)).map_err(|e| Status::internal(format!("CreateContainer: {e}")))?;
        std::fs::create_dir_all(record::exit_dir(&root)).map_err(|e| Status::internal(format!("CreateContainer: {e}")))?;
        if let Some(d) = c.record.log_path.parent() {
            std::fs::create_dir_all(d).map_err(|e| Status::internal(format!("CreateContainer: log directory {}: {e}", d.display())))?;
        }
        let json = serde_json::to_vec_pretty(&built.spec).map_err(|e| Status::internal(e.to_string()))?;
        crate::persist::write_atomic(&bundle.join("config.json"), &json)
            .map_err(|e| Status::internal(format!("CreateContainer: config.json: {e}")))?;
        c.record.stop_signal = built.stop_signal.clone();
        c.record.uid = built.user.0;
        c.record.gid = built.user.1;
        c.record.groups = built.user.2.clone();

        let rt = self.runtime_for(&c.record.handler)?;
        std::fs::create_dir_all(&rt.root).map_err(|e| Status::internal(format!("CreateContainer: runtime root: {e}")))?;
        let launch = self.launch(c, &rt);
        std::fs::create_dir_all(&launch.socket_dir).map_err(|e| Status::internal(format!("CreateContainer: {e}")))?;
        if c.record.restore_from.is_some() {
            // Restored, not created: the monitor starts with StartContainer.
            c.record.state = ContainerState::Created;
            self.registry.put_container(c.clone()).map_err(|e| Status::internal(format!("CreateContainer: persist: {e}")))?;
            return Ok(());
        }
        self.spawn_monitor(c, launch, "CreateContainer").await?;
        c.record.state = ContainerState::Created;
        self.registry.put_container(c.clone()).map_err(|e| Status::internal(format!("CreateContainer: persist: {e}")))?;
        Ok(())
    }

    /// Starts the container's monitor (which runs the runtime's create, or restore) and
    /// records the init's and the monitor's pids in `c`.
    pub(crate) async fn spawn_monitor(
        &self,
        c: &mut Container,
        launch: crate::container::monitor::Launch,
        rpc: &str,
    ) -> Result<(), Status> {
        let monitor_pidfile = launch.monitor_pidfile.clone();
        let monitor = self.config.runtime.monitor_path.clone();
        let pid = tokio::task::spawn_blocking(move || crate::container::monitor::create(&launch, &monitor))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("{rpc}: {e}")))?;
        c.record.pid = pid;
        c.record.pid_start = record::start_time(pid).unwrap_or(0);
        c.record.monitor_pid = std::fs::read_to_string(&monitor_pidfile).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        Ok(())
    }

    /// How the container's monitor is started (at CreateContainer, or at StartContainer for
    /// a restore).
    pub(crate) fn launch(&self, c: &Container, rt: &crate::container::runtime::Runtime) -> crate::container::monitor::Launch {
        let root = &self.registry.root;
        let id = c.record.id.clone();
        let bundle = record::bundle(root, &id);
        let cdir = record::dir(root, &id);
        crate::container::monitor::Launch {
            monitor: self.config.runtime.monitor_path.clone(),
            runtime: rt.path.clone(),
            runtime_args: rt.global_args(),
            id: id.clone(),
            bundle: bundle.clone(),
            pidfile: cdir.join("pid"),
            restore: None,
            monitor_pidfile: cdir.join("monitor.pid"),
            exit_dir: record::exit_dir(root),
            persist_dir: record::persist_dir(root, &id),
            log_path: c.record.log_path.clone(),
            socket_dir: root.join("attach"),
            tty: c.config.tty,
            stdin: c.config.stdin,
            stdin_once: c.config.stdin_once,
            name: c.metadata().name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_stay_in_the_pod_log_directory() {
        let fb = Path::new("/state/c/ctr.log");
        assert_eq!(log_path("/var/log/pods/x", "app/0.log", fb).unwrap(), PathBuf::from("/var/log/pods/x/app/0.log"));
        assert!(log_path("/var/log/pods/x", "../../etc/passwd", fb).is_err());
        assert!(log_path("/var/log/pods/x", "/etc/passwd", fb).is_err());
        assert_eq!(log_path("", "a.log", fb).unwrap(), fb);
        assert_eq!(cgroups_path("kubepods-besteffort-pod1.slice", "abc"), "kubepods-besteffort-pod1.slice:berth:abc");
        assert_eq!(cgroups_path("/kubepods/pod1", "abc"), "/kubepods/pod1/berth-abc");
    }
}
