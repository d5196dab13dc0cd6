//! What a restart does before serving: the records on disk were loaded (`Registry::load`);
//! objects a crash left half-made (`Creating`) are undone — a container's runtime state and
//! rootfs, a pod's network, namespaces and /dev/shm — and every other container's state is
//! brought up to date from its monitor's exit file. Running containers were never touched:
//! their monitors outlived the daemon.

use super::CriServer;
use crate::container::record::ContainerState;
use crate::sandbox::SandboxState;

impl CriServer {
    pub async fn recover(&self) {
        for c in self.registry.containers() {
            if c.record.state == ContainerState::Creating {
                tracing::info!(id = %c.record.id, "removing a container left half-created");
                if let Err(e) = self.destroy_container(&c.record.id, &c.record.handler).await {
                    tracing::warn!(id = %c.record.id, error = %e.message(), "cleanup failed");
                }
            }
        }
        for s in self.registry.sandboxes() {
            if s.record.state == SandboxState::Creating {
                tracing::info!(id = %s.record.id, "removing a pod sandbox left half-created");
                for c in self.registry.containers().into_iter().filter(|c| c.record.sandbox_id == s.record.id) {
                    let _ = self.destroy_container(&c.record.id, &c.record.handler).await;
                }
                self.teardown_sandbox(&s).await;
                if let Err(e) = self.registry.remove_sandbox(&s.record.id) {
                    tracing::warn!(id = %s.record.id, error = %e, "cleanup failed");
                }
            }
        }
        // CNI 1.1 GC with what is still attached: what a crash between a plugin's ADD and
        // our record of it left in the plugins' state goes.
        let attached: Vec<String> =
            self.registry.sandboxes().into_iter().filter(|s| s.record.network_attached).map(|s| s.record.id).collect();
        if let Err(e) = self.cni.gc(&attached).await {
            tracing::warn!(error = %e, "CNI GC failed");
        }
        let n = self.registry.containers().len();
        tracing::info!(sandboxes = self.registry.sandboxes().len(), containers = n, "state recovered");
    }
}
