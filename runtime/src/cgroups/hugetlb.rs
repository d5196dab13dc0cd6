//! hugetlb controller: `hugepageLimits` → `hugetlb.<size>.max` and, where the kernel has it,
//! `hugetlb.<size>.rsvd.max` (reservations, so a mapping cannot overcommit past the limit and
//! SIGBUS at fault time); usage and failures from `hugetlb.<size>.current` / `.events`.

use super::stats::{Hugetlb, Stats};
use super::{fs, Mode};
use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use std::path::Path;

pub fn wants(r: &LinuxResources) -> Option<&'static str> {
    r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()).then_some("linux.resources.hugepageLimits")
}

/// Page sizes as cgroup files name them ("2MB", "1GB"), from /sys/kernel/mm/hugepages.
pub fn page_sizes() -> Vec<String> {
    let mut out: Vec<(u64, String)> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
            Some((kb, size_name(kb)))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, n)| n).collect()
}

/// The kernel's name for a page size in KiB (hugetlb_cgroup's mem_fmt).
fn size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb.is_multiple_of(1 << 20) {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb.is_multiple_of(1 << 10) {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

pub fn validate(r: &LinuxResources, _mode: Mode) -> Result<()> {
    let sizes = page_sizes();
    for h in r.hugepage_limits().as_deref().unwrap_or_default() {
        if !sizes.iter().any(|s| s == h.page_size()) {
            return Err(Error::Spec(format!(
                "linux.resources.hugepageLimits: page size {:?} is not one of this host's ({})",
                h.page_size(),
                sizes.join(", ")
            )));
        }
        if h.limit() < 0 {
            return Err(Error::Spec(format!("linux.resources.hugepageLimits {}: negative limit {}", h.page_size(), h.limit())));
        }
    }
    Ok(())
}

pub fn apply(dir: &Path, r: &LinuxResources, _mode: Mode) -> Result<()> {
    for h in r.hugepage_limits().as_deref().unwrap_or_default() {
        let limit = h.limit().to_string();
        fs::write(dir, &format!("hugetlb.{}.max", h.page_size()), &limit)?;
        let rsvd = format!("hugetlb.{}.rsvd.max", h.page_size());
        if fs::exists(dir, &rsvd) {
            fs::write(dir, &rsvd, &limit)?;
        }
    }
    Ok(())
}

pub fn stats(dir: &Path, s: &mut Stats) -> Result<()> {
    for size in page_sizes() {
        let current = format!("hugetlb.{size}.current");
        if !fs::exists(dir, &current) {
            continue;
        }
        let events = fs::read_keyed(dir, &format!("hugetlb.{size}.events"))?;
        let h = Hugetlb { usage: fs::read_u64(dir, &current)?, max: 0, failcnt: fs::keyed(&events, "max").unwrap_or(0) };
        s.hugetlb.insert(size, h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::size_name;

    #[test]
    fn page_size_names() {
        assert_eq!(size_name(2048), "2MB");
        assert_eq!(size_name(1 << 20), "1GB");
        assert_eq!(size_name(64), "64KB");
    }
}
