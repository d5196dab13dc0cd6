//! GetContainerEvents and the events themselves: created/started from the RPCs that made the
//! change (after it is persisted), stopped from the watcher of the monitors' exit files (or
//! from RemoveContainer when it got there first), deleted from the removals. Each carries the
//! pod's status and all its containers' statuses, as kubelet's evented PLEG reads them. Pods
//! have the same four events under their sandbox id.

use super::CriServer;
use crate::container::record::ContainerState;
use k8s_cri::v1 as cri;
use k8s_cri::v1::ContainerEventType as T;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tonic::Status;

impl CriServer {
    fn event(&self, id: &str, sandbox_id: &str, t: T) -> cri::ContainerEventResponse {
        let pod = self.registry.sandbox(sandbox_id).map(|s| super::sandbox_status::status_of(&s));
        let containers = self
            .registry
            .containers()
            .iter()
            .filter(|c| c.record.sandbox_id == sandbox_id && c.record.state != ContainerState::Creating)
            .map(super::container_status::status_of)
            .collect();
        cri::ContainerEventResponse {
            container_id: id.to_string(),
            container_event_type: t as i32,
            created_at: crate::sandbox::now_ns(),
            pod_sandbox_status: pod,
            containers_statuses: containers,
        }
    }

    /// Publishes a created, started or deleted event (of a container, or of a pod when
    /// `id == sandbox_id`).
    pub(crate) fn emit(&self, id: &str, sandbox_id: &str, t: T) {
        let ev = self.event(id, sandbox_id, t);
        self.events.publish(ev);
        if t == T::ContainerDeletedEvent {
            self.events.forget(id);
        }
    }

    /// Publishes the stopped event of `id` unless it was already.
    pub(crate) fn emit_stopped(&self, id: &str, sandbox_id: &str) {
        self.events.publish_once(&format!("stopped:{id}"), || self.event(id, sandbox_id, T::ContainerStoppedEvent));
    }

    pub(crate) async fn do_get_container_events(&self) -> Result<tokio::sync::mpsc::Receiver<cri::ContainerEventResponse>, Status> {
        Ok(self.events.subscribe())
    }

    /// Watches the monitors' exit directory (they rename their exit files into it) and
    /// publishes each container's stop as it happens. Runs for the daemon's life.
    pub fn watch_exits(&self) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let dir = crate::container::record::exit_dir(&self.registry.root);
        std::fs::create_dir_all(&dir)?;
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        ino.add_watch(&dir, AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE)?;
        let fd = crate::sys::async_inotify(ino)?;
        let srv = self.clone();
        // Containers that ended while nobody watched (before this call).
        for c in srv.registry.containers() {
            if c.record.state == ContainerState::Exited {
                srv.events.publish_once(&format!("stopped:{}", c.record.id), || {
                    srv.event(&c.record.id, &c.record.sandbox_id, T::ContainerStoppedEvent)
                });
            }
        }
        Ok(tokio::spawn(async move {
            loop {
                let mut guard = match fd.readable().await {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::error!(error = %e, "exit watcher stopped");
                        return;
                    }
                };
                let events = match guard.try_io(|f| f.get_ref().inotify().read_events().map_err(std::io::Error::from)) {
                    Ok(Ok(evs)) => evs,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "reading exit-file events");
                        continue;
                    }
                    Err(_would_block) => continue,
                };
                for ev in events {
                    let Some(name) = ev.name.as_ref().and_then(|n| n.to_str()) else { continue };
                    if !crate::persist::valid_id(name) {
                        continue;
                    }
                    if srv.registry.container(name).is_none() {
                        continue;
                    }
                    // A container that exits before the runtime's `start` returns has its
                    // exit file before StartContainer published "started": wait for the
                    // container's lock (StartContainer holds it until then) so "stopped"
                    // comes after "started". A task per exit keeps the other containers'
                    // events from waiting on this one.
                    let (srv, id) = (srv.clone(), name.to_string());
                    tokio::spawn(async move {
                        let lock = srv.registry.lock(&id);
                        let _g = lock.lock().await;
                        if let Some(c) = srv.registry.container(&id) {
                            if c.record.state == ContainerState::Exited {
                                srv.emit_stopped(&c.record.id, &c.record.sandbox_id);
                            }
                        }
                    });
                }
            }
        }))
    }
}
