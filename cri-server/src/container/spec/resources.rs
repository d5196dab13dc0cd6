//! `LinuxContainerResources` → `linux.resources` (and the process's oom_score_adj).
//!
//! Zero means "not set" for every CRI number. Memory swap: when only the memory limit is set,
//! swap (memory+swap in the OCI spec) is set to the limit — no swap — as containerd and CRI-O
//! do, where the host has a swap controller. There is no pids field in the CRI.

use super::{invalid, SpecError};
use k8s_cri::v1::LinuxContainerResources;
use oci_spec::runtime::{LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxResources};
use std::sync::OnceLock;

/// `linux.resources` for these resources; for UpdateContainerResources. Invalid values are
/// logged and left out (use [`resources_with`] to see the error).
pub fn resources(r: &LinuxContainerResources) -> LinuxResources {
    match resources_with(r, host_swap_available()) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("container resources: {e}");
            LinuxResources::default()
        }
    }
}

/// [`resources`] with its error: for an UpdateContainerResources that refuses bad input.
pub fn try_resources(r: &LinuxContainerResources) -> Result<LinuxResources, SpecError> {
    resources_with(r, host_swap_available())
}

/// Whether the host's cgroups can limit swap (cgroup v2 `memory.swap.max` in our own cgroup,
/// or v1 `memory.memsw.limit_in_bytes`).
pub fn host_swap_available() -> bool {
    static S: OnceLock<bool> = OnceLock::new();
    *S.get_or_init(|| {
        if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            let own = std::fs::read_to_string("/proc/self/cgroup")
                .ok()
                .and_then(|s| s.lines().find_map(|l| l.strip_prefix("0::").map(String::from)))
                .unwrap_or_default();
            let dir = std::path::Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
            dir.join("memory.swap.max").exists() || dir.parent().is_some_and(|p| p.join("memory.swap.max").exists())
        } else {
            std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        }
    })
}

fn cpuset(field: &str, s: &str) -> Result<Option<String>, SpecError> {
    if s.is_empty() {
        return Ok(None);
    }
    let ok = s.split(',').all(|part| {
        let mut it = part.splitn(2, '-');
        let a = it.next().unwrap_or("");
        let num = |x: &str| !x.is_empty() && x.len() <= 5 && x.bytes().all(|b| b.is_ascii_digit());
        match it.next() {
            None => num(a),
            Some(b) => num(a) && num(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
        }
    });
    if !ok {
        return Err(invalid(format!("{field} {s:?} is not a CPU/node list like \"0-3,5\"")));
    }
    Ok(Some(s.to_string()))
}

/// `2MB`, `1GB`, `64KB`: a number and a binary unit prefix, as kubelet sends.
fn page_size(s: &str) -> bool {
    let Some(num) = s.strip_suffix("KB").or_else(|| s.strip_suffix("MB")).or_else(|| s.strip_suffix("GB")) else {
        return false;
    };
    !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit())
}

pub fn resources_with(r: &LinuxContainerResources, swap_available: bool) -> Result<LinuxResources, SpecError> {
    let mut out = LinuxResources::default();

    if r.cpu_shares < 0 || r.cpu_period < 0 || r.cpu_quota < -1 {
        return Err(invalid(format!(
            "cpu_shares {}, cpu_period {} and cpu_quota {} must not be negative (quota may be -1: unlimited)",
            r.cpu_shares, r.cpu_period, r.cpu_quota
        )));
    }
    let mut cpu = LinuxCpu::default();
    let mut any_cpu = false;
    if r.cpu_shares > 0 {
        cpu.set_shares(Some(r.cpu_shares as u64));
        any_cpu = true;
    }
    if r.cpu_quota != 0 {
        cpu.set_quota(Some(r.cpu_quota));
        any_cpu = true;
    }
    if r.cpu_period > 0 {
        cpu.set_period(Some(r.cpu_period as u64));
        any_cpu = true;
    }
    if let Some(c) = cpuset("cpuset_cpus", &r.cpuset_cpus)? {
        cpu.set_cpus(Some(c));
        any_cpu = true;
    }
    if let Some(m) = cpuset("cpuset_mems", &r.cpuset_mems)? {
        cpu.set_mems(Some(m));
        any_cpu = true;
    }
    if any_cpu {
        out.set_cpu(Some(cpu));
    }

    let (limit, swap) = (r.memory_limit_in_bytes, r.memory_swap_limit_in_bytes);
    if limit < 0 {
        return Err(invalid(format!("memory_limit_in_bytes {limit} is negative")));
    }
    if swap < -1 {
        return Err(invalid(format!("memory_swap_limit_in_bytes {swap} is negative (-1 = unlimited)")));
    }
    if swap > 0 && limit > 0 && swap < limit {
        return Err(invalid(format!("memory_swap_limit_in_bytes {swap} is below memory_limit_in_bytes {limit} (it is memory + swap)")));
    }
    if swap > 0 && limit == 0 {
        return Err(invalid("memory_swap_limit_in_bytes needs memory_limit_in_bytes"));
    }
    if limit > 0 || swap != 0 {
        let mut m = LinuxMemory::default();
        if limit > 0 {
            m.set_limit(Some(limit));
        }
        if swap_available {
            if swap != 0 {
                m.set_swap(Some(swap));
            } else if limit > 0 {
                m.set_swap(Some(limit));
            }
        }
        out.set_memory(Some(m));
    }

    if !r.hugepage_limits.is_empty() {
        let mut v = Vec::new();
        for (n, h) in r.hugepage_limits.iter().enumerate() {
            if !page_size(&h.page_size) {
                return Err(invalid(format!("hugepage_limits[{n}].page_size {:?} is not like \"2MB\"", h.page_size)));
            }
            let limit = i64::try_from(h.limit).map_err(|_| invalid(format!("hugepage_limits[{n}].limit {} is too big", h.limit)))?;
            let mut x = LinuxHugepageLimit::default();
            x.set_page_size(h.page_size.clone());
            x.set_limit(limit);
            v.push(x);
        }
        out.set_hugepage_limits(Some(v));
    }

    if !r.unified.is_empty() {
        for (k, v) in &r.unified {
            let ok = k.split_once('.').is_some_and(|(c, f)| !c.is_empty() && !f.is_empty())
                && !k.contains('/')
                && !k.contains("..")
                && !k.contains('\0');
            if !ok {
                return Err(invalid(format!("unified key {k:?} is not a cgroup v2 file name like \"memory.high\"")));
            }
            if v.contains('\0') {
                return Err(invalid(format!("unified value of {k:?} contains a NUL byte")));
            }
        }
        out.set_unified(Some(r.unified.clone().into_iter().collect()));
    }
    Ok(out)
}

/// The process's oom_score_adj: in -1000..=1000, raised to `min` (the daemon's own value: a
/// process without CAP_SYS_RESOURCE cannot go below it, and failing the pod for that helps
/// nobody — containerd's `restrict_oom_score_adj`). 0 = unset, unless `min` is above 0.
pub fn oom_score_adj(r: &LinuxContainerResources, min: i32) -> Result<Option<i32>, SpecError> {
    let v = r.oom_score_adj;
    if !(-1000..=1000).contains(&v) {
        return Err(invalid(format!("oom_score_adj {v} is outside -1000..=1000")));
    }
    let v = v as i32;
    let clamped = v.max(min.clamp(-1000, 1000));
    Ok(if clamped == 0 { None } else { Some(clamped) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::HugepageLimit;

    fn res() -> LinuxContainerResources {
        LinuxContainerResources::default()
    }

    #[test]
    fn empty_is_empty() {
        let r = resources_with(&res(), true).unwrap();
        assert!(r.cpu().is_none() && r.memory().is_none() && r.hugepage_limits().is_none() && r.unified().is_none());
    }

    #[test]
    fn cpu_mapping() {
        let r = LinuxContainerResources {
            cpu_shares: 512,
            cpu_quota: 50000,
            cpu_period: 100000,
            cpuset_cpus: "0-1,3".into(),
            cpuset_mems: "0".into(),
            ..res()
        };
        let c = resources_with(&r, true).unwrap().cpu().clone().unwrap();
        assert_eq!((c.shares(), c.quota(), c.period()), (Some(512), Some(50000), Some(100000)));
        assert_eq!((c.cpus().as_deref(), c.mems().as_deref()), (Some("0-1,3"), Some("0")));
        assert_eq!(
            resources_with(&LinuxContainerResources { cpu_quota: -1, ..res() }, true).unwrap().cpu().as_ref().unwrap().quota(),
            Some(-1)
        );
        for bad in [
            LinuxContainerResources { cpu_shares: -2, ..res() },
            LinuxContainerResources { cpu_quota: -5, ..res() },
            LinuxContainerResources { cpuset_cpus: "0-".into(), ..res() },
            LinuxContainerResources { cpuset_cpus: "3-1".into(), ..res() },
            LinuxContainerResources { cpuset_mems: "a".into(), ..res() },
        ] {
            assert_eq!(resources_with(&bad, true).unwrap_err().code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn memory_and_swap() {
        let m = |l, s, avail| {
            resources_with(&LinuxContainerResources { memory_limit_in_bytes: l, memory_swap_limit_in_bytes: s, ..res() }, avail)
        };
        let x = m(64 << 20, 0, true).unwrap().memory().unwrap();
        assert_eq!((x.limit(), x.swap()), (Some(64 << 20), Some(64 << 20)), "swap = limit: no swap");
        let x = m(64 << 20, 0, false).unwrap().memory().unwrap();
        assert_eq!((x.limit(), x.swap()), (Some(64 << 20), None), "no swap controller: leave swap alone");
        let x = m(64 << 20, 128 << 20, true).unwrap().memory().unwrap();
        assert_eq!(x.swap(), Some(128 << 20));
        assert_eq!(m(64 << 20, -1, true).unwrap().memory().unwrap().swap(), Some(-1));
        assert!(m(64 << 20, 32 << 20, true).is_err());
        assert!(m(-1, 0, true).is_err());
        assert!(m(0, 1 << 20, true).is_err());
    }

    #[test]
    fn hugepages_and_unified() {
        let r = LinuxContainerResources {
            hugepage_limits: vec![HugepageLimit { page_size: "2MB".into(), limit: 4 << 20 }],
            unified: [("memory.high".to_string(), "max".to_string())].into_iter().collect(),
            ..res()
        };
        let x = resources_with(&r, true).unwrap();
        let h = &x.hugepage_limits().as_ref().unwrap()[0];
        assert_eq!((h.page_size().as_str(), h.limit()), ("2MB", 4 << 20));
        assert_eq!(x.unified().as_ref().unwrap()["memory.high"], "max");
        for bad in [
            LinuxContainerResources { hugepage_limits: vec![HugepageLimit { page_size: "2M".into(), limit: 1 }], ..res() },
            LinuxContainerResources { hugepage_limits: vec![HugepageLimit { page_size: "2MB".into(), limit: u64::MAX }], ..res() },
            LinuxContainerResources { unified: [("../memory.max".to_string(), "1".to_string())].into_iter().collect(), ..res() },
            LinuxContainerResources { unified: [("memory".to_string(), "1".to_string())].into_iter().collect(), ..res() },
        ] {
            assert_eq!(resources_with(&bad, true).unwrap_err().code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
        // The infallible form for UpdateContainerResources.
        assert!(resources(&LinuxContainerResources { cpu_shares: -1, ..res() }).cpu().is_none());
        assert_eq!(resources(&LinuxContainerResources { cpu_shares: 2, ..res() }).cpu().as_ref().unwrap().shares(), Some(2));
    }

    #[test]
    fn oom_clamp() {
        let o = |v, min| oom_score_adj(&LinuxContainerResources { oom_score_adj: v, ..res() }, min);
        assert_eq!(o(0, -999).unwrap(), None);
        assert_eq!(o(-998, -999).unwrap(), Some(-998));
        assert_eq!(o(-1000, -500).unwrap(), Some(-500), "raised to the daemon's own value");
        assert_eq!(o(100, -500).unwrap(), Some(100));
        assert_eq!(o(0, 200).unwrap(), Some(200));
        assert_eq!(o(1000, 0).unwrap(), Some(1000));
        assert!(o(1001, 0).is_err());
        assert!(o(-1001, 0).is_err());
    }
}
