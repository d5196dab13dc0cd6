//! A container's resource usage read from its cgroup, found through `/proc/<pid>/cgroup`
//! of its init: the handler's runtime chose the cgroup (berth puts it in the cgroup2
//! hierarchy, runc on a hybrid host in the v1 controllers), so berth-cri reads wherever the
//! process really is instead of recomputing the runtime's path rules.
//!
//! A hierarchy counts only when the container's cgroup there differs from berth-cri's own:
//! a process left in its parent's cgroup (a v1 controller the runtime did not use) would
//! otherwise report the whole node's usage as the container's.

use std::path::{Path, PathBuf};

/// Where each hierarchy is mounted, read once from `/proc/self/mountinfo`.
#[derive(Debug, Default, Clone)]
pub struct Mounts {
    /// The cgroup2 mount (`/sys/fs/cgroup` on pure v2 hosts, `/sys/fs/cgroup/unified` on
    /// hybrid ones).
    pub unified: Option<PathBuf>,
    /// v1 controller → its mount point (`cpuacct` → `/sys/fs/cgroup/cpu,cpuacct`).
    pub v1: Vec<(String, PathBuf)>,
}

impl Mounts {
    pub fn read() -> Mounts {
        Self::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
    }

    /// Parses mountinfo: `id parent maj:min root mountpoint opts... - fstype source superopts`.
    pub fn parse(mountinfo: &str) -> Mounts {
        let mut m = Mounts::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let fields: Vec<&str> = left.split(' ').collect();
            let rfields: Vec<&str> = right.split(' ').collect();
            let (Some(point), Some(fstype)) = (fields.get(4), rfields.first()) else { continue };
            match *fstype {
                "cgroup2" if m.unified.is_none() => m.unified = Some(PathBuf::from(point)),
                "cgroup" => {
                    for opt in rfields.get(2).copied().unwrap_or("").split(',') {
                        if matches!(opt, "cpuacct" | "memory" | "pids" | "cpu") {
                            m.v1.push((opt.to_string(), PathBuf::from(point)));
                        }
                    }
                }
                _ => {}
            }
        }
        m
    }

    fn v1_mount(&self, ctrl: &str) -> Option<&Path> {
        self.v1.iter().find(|(c, _)| c == ctrl).map(|(_, p)| p.as_path())
    }
}

/// The cgroup paths of one process: the cgroup2 path and each v1 controller's.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Membership {
    pub unified: Option<String>,
    pub v1: Vec<(String, String)>,
}

impl Membership {
    pub fn of(pid: &str) -> Option<Membership> {
        Some(Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?))
    }

    /// Parses `/proc/<pid>/cgroup`: `0::/path` for cgroup2, `N:ctrl,ctrl:/path` for v1.
    pub fn parse(text: &str) -> Membership {
        let mut m = Membership::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
            if ctrls.is_empty() {
                m.unified = Some(path.to_string());
            } else {
                for c in ctrls.split(',') {
                    m.v1.push((c.to_string(), path.to_string()));
                }
            }
        }
        m
    }

    fn v1_path(&self, ctrl: &str) -> Option<&str> {
        self.v1.iter().find(|(c, _)| c == ctrl).map(|(_, p)| p.as_str())
    }
}

/// What one read of a cgroup gives; `None` where no hierarchy of the container has it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Usage {
    pub cpu_ns: Option<u64>,
    pub memory: Option<Memory>,
    pub pids: Option<u64>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Memory {
    pub usage: u64,
    /// usage minus inactive file pages: what kubelet evicts on.
    pub working_set: u64,
    pub rss: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// The limit minus the working set, when there is a limit.
    pub available: Option<u64>,
    /// The limit itself (`None`: unlimited, or no memory controller).
    pub limit: Option<u64>,
    /// Page cache (`file` / `total_cache`); `None` where only /proc gave the numbers.
    pub cache: Option<u64>,
}

impl Memory {
    /// From a usage, a limit and memory.stat, whose keys for inactive file pages, rss, the
    /// two fault counts and the page cache differ between v2 and v1.
    fn from_stat(usage: u64, limit: Option<u64>, stat: &[(String, u64)], [inactive, rss, faults, major, cache]: [&str; 5]) -> Memory {
        let working_set = usage.saturating_sub(get(stat, inactive).unwrap_or(0));
        Memory {
            usage,
            working_set,
            rss: get(stat, rss).unwrap_or(0),
            page_faults: get(stat, faults).unwrap_or(0),
            major_page_faults: get(stat, major).unwrap_or(0),
            available: limit.map(|l| l.saturating_sub(working_set)),
            limit,
            cache: Some(get(stat, cache).unwrap_or(0)),
        }
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// `key value` lines (cpu.stat, memory.stat).
fn keyed(p: &Path) -> Option<Vec<(String, u64)>> {
    let s = std::fs::read_to_string(p).ok()?;
    Some(
        s.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect(),
    )
}

fn get(kv: &[(String, u64)], key: &str) -> Option<u64> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// Joins a cgroup path (absolute, from /proc) below a mount point without letting `..`
/// leave it.
fn below(mount: &Path, cg: &str) -> Option<PathBuf> {
    let rel = Path::new(cg.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return None;
    }
    Some(mount.join(rel))
}

/// The cgroup2 directory of a container whose membership differs from ours.
pub fn unified_dir(mounts: &Mounts, own: &Membership, it: &Membership) -> Option<PathBuf> {
    let path = it.unified.as_deref()?;
    if own.unified.as_deref() == Some(path) {
        return None;
    }
    below(mounts.unified.as_deref()?, path)
}

fn v1_dir(mounts: &Mounts, own: &Membership, it: &Membership, ctrl: &str) -> Option<PathBuf> {
    let path = it.v1_path(ctrl)?;
    if own.v1_path(ctrl) == Some(path) {
        return None;
    }
    below(mounts.v1_mount(ctrl)?, path)
}

/// Reads a cgroup2 directory: every file is optional (a controller may be off).
pub fn read_unified(dir: &Path) -> Usage {
    let mut u = Usage::default();
    if let Some(cpu) = keyed(&dir.join("cpu.stat")) {
        u.cpu_ns = get(&cpu, "usage_usec").map(|us| us.saturating_mul(1000));
    }
    if let Some(usage) = read_u64(&dir.join("memory.current")) {
        let stat = keyed(&dir.join("memory.stat")).unwrap_or_default();
        let limit = read_u64(&dir.join("memory.max"));
        u.memory = Some(Memory::from_stat(usage, limit, &stat, ["inactive_file", "anon", "pgfault", "pgmajfault", "file"]));
    }
    u.pids = read_u64(&dir.join("pids.current"));
    u
}

/// v1 counterparts, used for what the cgroup2 directory lacks.
fn read_v1(mounts: &Mounts, own: &Membership, it: &Membership, u: &mut Usage) {
    if u.cpu_ns.is_none() {
        u.cpu_ns = v1_dir(mounts, own, it, "cpuacct").and_then(|d| read_u64(&d.join("cpuacct.usage")));
    }
    if u.memory.is_none() {
        if let Some(d) = v1_dir(mounts, own, it, "memory") {
            if let Some(usage) = read_u64(&d.join("memory.usage_in_bytes")) {
                let stat = keyed(&d.join("memory.stat")).unwrap_or_default();
                // v1 says "no limit" with a huge page-aligned number, not "max".
                let limit = read_u64(&d.join("memory.limit_in_bytes")).filter(|l| *l < (1u64 << 62));
                u.memory = Some(Memory::from_stat(
                    usage,
                    limit,
                    &stat,
                    ["total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault", "total_cache"],
                ));
            }
        }
    }
    if u.pids.is_none() {
        u.pids = v1_dir(mounts, own, it, "pids").and_then(|d| read_u64(&d.join("pids.current")));
    }
}

/// The usage of the cgroup `pid` lives in.
pub fn usage_of_pid(mounts: &Mounts, own: &Membership, pid: i32) -> Option<Usage> {
    let it = Membership::of(&pid.to_string())?;
    let unified = unified_dir(mounts, own, &it);
    let mut u = unified.as_deref().map(read_unified).unwrap_or_default();
    read_v1(mounts, own, &it, &mut u);
    if u.pids.is_none() {
        u.pids = unified.as_deref().and_then(|d| procs(d).map(|p| p.len() as u64));
    }
    if u.memory.is_none() {
        // No memory controller for this container anywhere (the hybrid host's cgroup2 has
        // only hugetlb): the resident memory of its processes is the best measure left.
        let pids = unified.as_deref().and_then(procs).unwrap_or_else(|| vec![pid]);
        u.memory = Some(resident(&pids));
    }
    Some(u)
}

fn procs(dir: &Path) -> Option<Vec<i32>> {
    let s = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    Some(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// RSS (anon + file) of processes from /proc/<pid>/status, and their fault counts.
fn resident(pids: &[i32]) -> Memory {
    let mut m = Memory::default();
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        let (anon, file, shmem) = (kib("RssAnon:"), kib("RssFile:"), kib("RssShmem:"));
        m.rss += anon;
        m.usage += anon + file + shmem;
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                // Fields 10 and 12 of stat (minflt, majflt), counted from after the name.
                m.page_faults += f.get(7).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                m.major_page_faults += f.get(9).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    m.working_set = m.usage;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 1 0:22 / /sys rw,nosuid - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
";

    #[test]
    fn mountinfo_of_a_hybrid_host() {
        let m = Mounts::parse(HYBRID);
        assert_eq!(m.unified.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(m.v1_mount("cpuacct"), Some(Path::new("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(m.v1_mount("memory"), Some(Path::new("/sys/fs/cgroup/memory")));
        assert_eq!(m.v1_mount("hugetlb"), None);
    }

    #[test]
    fn a_hierarchy_shared_with_the_daemon_does_not_count() {
        let m = Mounts::parse(HYBRID);
        let own = Membership::parse("4:memory:/system.slice\n3:cpu,cpuacct:/system.slice\n0::/system.slice/x.service\n");
        let it = Membership::parse("4:memory:/system.slice\n3:cpu,cpuacct:/system.slice\n0::/berth/abc\n");
        assert_eq!(unified_dir(&m, &own, &it), Some(PathBuf::from("/sys/fs/cgroup/unified/berth/abc")));
        assert_eq!(v1_dir(&m, &own, &it, "memory"), None);
        let runc = Membership::parse("4:memory:/abc\n3:cpu,cpuacct:/abc\n0::/system.slice/x.service\n");
        assert_eq!(unified_dir(&m, &own, &runc), None);
        assert_eq!(v1_dir(&m, &own, &runc, "memory"), Some(PathBuf::from("/sys/fs/cgroup/memory/abc")));
    }

    #[test]
    fn dot_dot_in_a_cgroup_path_is_refused() {
        assert_eq!(below(Path::new("/sys/fs/cgroup"), "/../../etc"), None);
        assert_eq!(below(Path::new("/sys/fs/cgroup"), "/"), Some(PathBuf::from("/sys/fs/cgroup/")));
    }

    #[test]
    fn unified_files_are_read() {
        let d = std::env::temp_dir().join(format!("berth-stats-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n").unwrap();
        std::fs::write(d.join("memory.current"), "10000\n").unwrap();
        std::fs::write(d.join("memory.stat"), "anon 4000\nfile 6000\ninactive_file 2500\npgfault 77\npgmajfault 3\n").unwrap();
        std::fs::write(d.join("memory.max"), "1000000\n").unwrap();
        std::fs::write(d.join("pids.current"), "4\n").unwrap();
        let u = read_unified(&d);
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(u.cpu_ns, Some(1_500_000));
        assert_eq!(u.pids, Some(4));
        let m = u.memory.unwrap();
        assert_eq!((m.usage, m.working_set, m.rss, m.page_faults, m.major_page_faults), (10000, 7500, 4000, 77, 3));
        assert_eq!((m.available, m.limit, m.cache), (Some(992_500), Some(1_000_000), Some(6000)));
    }

    #[test]
    fn our_own_process_has_resident_memory() {
        let m = resident(&[std::process::id() as i32]);
        assert!(m.rss > 0 && m.usage >= m.rss && m.page_faults > 0, "{m:?}");
    }
}
