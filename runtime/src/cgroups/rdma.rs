//! rdma controller: `rdma` → `rdma.max` lines `<device> hca_handle=N hca_object=M`.
//!
//! (runc's `events` JSON has no RDMA part, so there are no statistics here.)

use super::{fs, Mode};
use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use std::path::Path;

pub fn wants(r: &LinuxResources) -> Option<&'static str> {
    r.rdma().as_ref().is_some_and(|m| !m.is_empty()).then_some("linux.resources.rdma")
}

pub fn validate(r: &LinuxResources, _mode: Mode) -> Result<()> {
    for (dev, l) in r.rdma().iter().flatten() {
        if dev.is_empty() || !dev.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
            return Err(Error::Spec(format!("linux.resources.rdma: bad device name {dev:?}")));
        }
        if l.hca_handles().is_none() && l.hca_objects().is_none() {
            return Err(Error::Spec(format!("linux.resources.rdma.{dev}: neither hcaHandles nor hcaObjects given")));
        }
    }
    Ok(())
}

pub fn line(dev: &str, handles: Option<u32>, objects: Option<u32>) -> String {
    let mut s = dev.to_string();
    if let Some(h) = handles {
        s.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = objects {
        s.push_str(&format!(" hca_object={o}"));
    }
    s
}

pub fn apply(dir: &Path, r: &LinuxResources, _mode: Mode) -> Result<()> {
    let mut devs: Vec<_> = r.rdma().iter().flatten().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, l) in devs {
        fs::write(dir, "rdma.max", &line(dev, l.hca_handles(), l.hca_objects()))?;
    }
    Ok(())
}
