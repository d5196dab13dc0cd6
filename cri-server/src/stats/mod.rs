//! Container and pod statistics: the numbers kubelet's `/stats/summary` is built from.
//! CPU, memory and process counts come from the cgroup the container's init really lives in
//! (`cgroup.rs`), the writable layer's usage from its overlay upper directory (`fs.rs`),
//! network counters from the pod's pinned network namespace (`net.rs`).
//!
//! `usage_nano_cores` is a rate: the previous sample of each container and pod is kept in
//! memory, and the first one is measured against the container's start time. Nothing here
//! is persisted: after a restart the first rate is again the average since the start.

pub mod cgroup;
pub mod fs;
pub mod net;

use crate::container::record::{start_time, Container, ContainerState};
use crate::sandbox::Sandbox;
use k8s_cri::v1 as cri;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct Stats {
    mounts: cgroup::Mounts,
    own: cgroup::Membership,
    /// id → (timestamp ns, cumulative cpu ns) of the last sample.
    last_cpu: Mutex<HashMap<String, (i64, u64)>>,
    /// The container rootfs directory of the image store (`<image_root>/containers`).
    rootfs_root: PathBuf,
}

fn u64v(value: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value })
}

/// One container's usage at one instant (`None` parts: not running, or not measurable).
#[derive(Debug, Default, Clone)]
struct Sample {
    usage: Option<cgroup::Usage>,
    timestamp: i64,
}

/// One container's raw numbers at one instant, for ListPodSandboxMetrics: the same reads
/// as ContainerStats, without the CPU rate (a metrics scrape must not move the rate's
/// previous sample under the stats RPCs' feet).
#[derive(Debug, Default, Clone)]
pub struct Reading {
    /// ns since the epoch.
    pub timestamp: i64,
    /// `None`: the container does not run.
    pub usage: Option<cgroup::Usage>,
    /// The writable layer (`None`: no upper directory).
    pub writable: Option<fs::DirUsage>,
}

impl Stats {
    pub fn new(image_root: &Path) -> Stats {
        Stats {
            mounts: cgroup::Mounts::read(),
            own: cgroup::Membership::of("self").unwrap_or_default(),
            last_cpu: Mutex::new(HashMap::new()),
            rootfs_root: image_root.join("containers"),
        }
    }

    /// Drops what is kept of a removed container or pod.
    pub fn forget(&self, id: &str) {
        self.last_cpu.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    fn sample(&self, c: &Container) -> Sample {
        let r = &c.record;
        let timestamp = crate::sandbox::now_ns();
        let running = r.state == ContainerState::Running && r.pid > 0 && start_time(r.pid) == Some(r.pid_start);
        let usage = if running { cgroup::usage_of_pid(&self.mounts, &self.own, r.pid) } else { None };
        Sample { usage, timestamp }
    }

    /// The CPU rate since the last sample of `id` (or since `since`, the start).
    fn cpu(&self, id: &str, timestamp: i64, total: u64, since: i64) -> cri::CpuUsage {
        let mut last = self.last_cpu.lock().unwrap_or_else(|e| e.into_inner());
        let (t0, c0) = last.get(id).copied().filter(|(t, c)| *t < timestamp && *c <= total).unwrap_or((since, 0));
        last.insert(id.to_string(), (timestamp, total));
        let dt = (timestamp - t0).max(1) as u128;
        let rate = ((total - c0) as u128 * 1_000_000_000 / dt) as u64;
        cri::CpuUsage { timestamp, usage_core_nano_seconds: u64v(total), usage_nano_cores: u64v(rate) }
    }

    fn memory(timestamp: i64, m: &cgroup::Memory) -> cri::MemoryUsage {
        cri::MemoryUsage {
            timestamp,
            working_set_bytes: u64v(m.working_set),
            available_bytes: m.available.and_then(u64v),
            usage_bytes: u64v(m.usage),
            rss_bytes: u64v(m.rss),
            page_faults: u64v(m.page_faults),
            major_page_faults: u64v(m.major_page_faults),
        }
    }

    /// The raw numbers of one container (see `Reading`).
    pub fn reading(&self, c: &Container) -> Reading {
        let s = self.sample(c);
        Reading { timestamp: s.timestamp, usage: s.usage, writable: self.writable(&c.record.id) }
    }

    fn writable(&self, id: &str) -> Option<fs::DirUsage> {
        fs::usage(&self.rootfs_root.join(id).join("upper"))
    }

    /// The counters of a pod's own network namespace (`None`: host network, no namespace,
    /// or unreadable).
    pub fn pod_network(sb: &Sandbox) -> Option<Vec<net::Interface>> {
        match (&sb.record.netns, sb.record.host_network) {
            (Some(ns), false) => net::interfaces(ns).ok(),
            _ => None,
        }
    }

    /// Stats of one container; a container that does not run has its attributes and
    /// writable layer only.
    pub fn container(&self, c: &Container) -> cri::ContainerStats {
        let s = self.sample(c);
        self.container_from(c, &s)
    }

    fn container_from(&self, c: &Container, s: &Sample) -> cri::ContainerStats {
        let r = &c.record;
        let since = if r.started_at > 0 { r.started_at } else { r.created_at };
        let cpu = s.usage.as_ref().and_then(|u| u.cpu_ns).map(|ns| self.cpu(&r.id, s.timestamp, ns, since));
        let memory = s.usage.as_ref().and_then(|u| u.memory.as_ref()).map(|m| Self::memory(s.timestamp, m));
        let writable_layer = self.writable(&r.id).map(|u| cri::FilesystemUsage {
            timestamp: s.timestamp,
            fs_id: Some(cri::FilesystemIdentifier { mountpoint: self.rootfs_root.display().to_string() }),
            used_bytes: u64v(u.bytes),
            inodes_used: u64v(u.inodes),
        });
        cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: r.id.clone(),
                metadata: Some(c.metadata()),
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
            }),
            cpu,
            memory,
            writable_layer,
            swap: None,
        }
    }

    /// Stats of a pod: its containers, their sums (plus the infra process's memory when
    /// the pod has one), the processes, and the network counters of its namespace.
    pub fn sandbox(&self, sb: &Sandbox, containers: &[Container]) -> cri::PodSandboxStats {
        let samples: Vec<Sample> = containers.iter().map(|c| self.sample(c)).collect();
        let timestamp = crate::sandbox::now_ns();
        let usages: Vec<&cgroup::Usage> = samples.iter().filter_map(|s| s.usage.as_ref()).collect();
        let r = &sb.record;
        let infra = (r.infra_pid > 0 && start_time(r.infra_pid) == Some(r.infra_start))
            .then(|| cgroup::usage_of_pid(&self.mounts, &self.own, r.infra_pid))
            .flatten();
        let all: Vec<&cgroup::Usage> = usages.iter().copied().chain(infra.as_ref()).collect();
        let (cpu, memory, process) = if all.is_empty() {
            (None, None, None)
        } else {
            let cpu_total: u64 = all.iter().filter_map(|u| u.cpu_ns).sum();
            let mut m = cgroup::Memory::default();
            for mm in all.iter().filter_map(|u| u.memory.as_ref()) {
                m.usage += mm.usage;
                m.working_set += mm.working_set;
                m.rss += mm.rss;
                m.page_faults += mm.page_faults;
                m.major_page_faults += mm.major_page_faults;
            }
            let procs: u64 = all.iter().filter_map(|u| u.pids).sum();
            (
                Some(self.cpu(&r.id, timestamp, cpu_total, r.created_at)),
                Some(Self::memory(timestamp, &m)),
                Some(cri::ProcessUsage { timestamp, process_count: u64v(procs) }),
            )
        };
        let network = Self::pod_network(sb).map(|ifs| {
            let iface = |i: &net::Interface| cri::NetworkInterfaceUsage {
                name: i.name.clone(),
                rx_bytes: u64v(i.rx_bytes),
                rx_errors: u64v(i.rx_errors),
                tx_bytes: u64v(i.tx_bytes),
                tx_errors: u64v(i.tx_errors),
            };
            let default = ifs.iter().find(|i| i.name == "eth0").or(ifs.first());
            cri::NetworkUsage { timestamp, default_interface: default.map(iface), interfaces: ifs.iter().map(iface).collect() }
        });
        cri::PodSandboxStats {
            attributes: Some(cri::PodSandboxAttributes {
                id: r.id.clone(),
                metadata: Some(sb.metadata()),
                labels: sb.config.labels.clone(),
                annotations: sb.config.annotations.clone(),
            }),
            linux: Some(cri::LinuxPodSandboxStats {
                cpu,
                memory,
                network,
                process,
                containers: containers.iter().zip(&samples).map(|(c, s)| self.container_from(c, s)).collect(),
            }),
            windows: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_rate_is_taken_between_samples() {
        let s = Stats::new(Path::new("/nonexistent"));
        // First sample: against the start, 1 s of cpu over 2 s → half a core.
        let a = s.cpu("c", 3_000_000_000, 1_000_000_000, 1_000_000_000);
        assert_eq!(a.usage_nano_cores.unwrap().value, 500_000_000);
        // Then 0.25 s of cpu over 1 s.
        let b = s.cpu("c", 4_000_000_000, 1_250_000_000, 1_000_000_000);
        assert_eq!(b.usage_nano_cores.unwrap().value, 250_000_000);
        assert_eq!(b.usage_core_nano_seconds.unwrap().value, 1_250_000_000);
        // A counter that went back (a new cgroup under the same id) starts over.
        let c = s.cpu("c", 5_000_000_000, 100, 4_000_000_000);
        assert_eq!(c.usage_nano_cores.unwrap().value, 100);
        s.forget("c");
        assert!(s.last_cpu.lock().unwrap().is_empty());
    }
}
