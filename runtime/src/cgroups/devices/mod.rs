//! The device "controller" of cgroup v2: `linux.resources.devices` (plus runc's default
//! allowed devices) compiled to an eBPF program attached to the container's cgroup.
//! Without a program every device would be reachable, so one is attached on every create,
//! rules or not; `update` with device rules replaces it.

#[allow(unsafe_code)] // bpf(2)
pub mod bpf;
pub mod program;

use crate::error::{Context, Result};
use oci_spec::runtime::LinuxResources;
use std::path::Path;

/// Checks the spec's rules (done before anything is created).
pub fn validate(r: &LinuxResources) -> Result<()> {
    program::rules(r.devices().as_deref().unwrap_or_default()).map(|_| ())
}

/// Compiles, loads and attaches the program for the resources' device rules.
pub fn apply(dir: &Path, r: &LinuxResources) -> Result<()> {
    let rules = program::rules(r.devices().as_deref().unwrap_or_default())?;
    let prog = bpf::load(&program::compile(&rules))?;
    let cg = std::fs::File::open(dir).with_ctx(|| format!("open cgroup {}", dir.display()))?;
    bpf::attach(&cg, &prog)
}
