//! Who the container process is: uid, gids, capabilities, no_new_privs.

use crate::error::{Context, Error, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, Process};
use std::str::FromStr;

fn to_caps(set: &Option<Capabilities>, supported: &CapsHashSet) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = serde_json::to_value(c).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let cap = Capability::from_str(&name).map_err(|_| Error::Spec(format!("unknown capability {name}")))?;
        // Capabilities this kernel does not know are skipped, as runc does.
        if supported.contains(&cap) {
            out.insert(cap);
        }
    }
    Ok(out)
}

/// The five capability sets of a process, resolved against the running kernel.
pub struct CapSets {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

pub fn cap_sets(c: Option<&LinuxCapabilities>) -> Result<Option<CapSets>> {
    let Some(c) = c else { return Ok(None) };
    let supported = caps::runtime::thread_all_supported();
    Ok(Some(CapSets {
        bounding: to_caps(c.bounding(), &supported)?,
        effective: to_caps(c.effective(), &supported)?,
        permitted: to_caps(c.permitted(), &supported)?,
        inheritable: to_caps(c.inheritable(), &supported)?,
        ambient: to_caps(c.ambient(), &supported)?,
    }))
}

/// Drops the bounding set, switches to the spec's user, then sets the capability sets.
pub fn apply(process: &Process) -> Result<()> {
    let sets = cap_sets(process.capabilities().as_ref())?;
    if let Some(s) = &sets {
        for cap in caps::runtime::thread_all_supported().difference(&s.bounding) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(|e| Error::Spec(format!("drop {cap} from bounding set: {e}")))?;
        }
    }
    let user = process.user();
    nix::sys::prctl::set_keepcaps(true).ctx("keep capabilities across setuid")?;
    let groups: Vec<nix::unistd::Gid> = user.additional_gids().iter().flatten().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    match nix::unistd::setgroups(&groups) {
        // A joined user namespace may deny setgroups; only an empty list can be let go.
        Err(nix::errno::Errno::EPERM) if groups.is_empty() => {}
        r => r.ctx("setgroups")?,
    }
    // EINVAL from the set*id calls means the id has no mapping in our user namespace:
    // say so, rather than the bare errno.
    let unmapped = |what: &str, id: u32| Error::Spec(format!("{what} {id} is not mapped in the container's user namespace"));
    let gid = nix::unistd::Gid::from_raw(user.gid());
    match nix::unistd::setresgid(gid, gid, gid) {
        Err(nix::errno::Errno::EINVAL) => return Err(unmapped("gid", user.gid())),
        r => r.with_ctx(|| format!("setgid {}", user.gid()))?,
    }
    let uid = nix::unistd::Uid::from_raw(user.uid());
    match nix::unistd::setresuid(uid, uid, uid) {
        Err(nix::errno::Errno::EINVAL) => return Err(unmapped("uid", user.uid())),
        r => r.with_ctx(|| format!("setuid {}", user.uid()))?,
    }
    if let Some(s) = &sets {
        let set =
            |which: CapSet, v: &CapsHashSet| caps::set(None, which, v).map_err(|e| Error::Spec(format!("set {which:?} capabilities: {e}")));
        set(CapSet::Inheritable, &s.inheritable)?;
        set(CapSet::Effective, &s.effective)?;
        set(CapSet::Permitted, &s.permitted)?;
        // The kernel only lets a capability be ambient if it is permitted and inheritable;
        // like runc, skip the others rather than fail (specs often list ambient alone).
        for cap in s.ambient.iter().filter(|c| s.permitted.contains(c) && s.inheritable.contains(c)) {
            caps::raise(None, CapSet::Ambient, *cap).map_err(|e| Error::Spec(format!("raise ambient {cap}: {e}")))?;
        }
    }
    nix::sys::prctl::set_keepcaps(false).ctx("reset keepcaps")?;
    if process.no_new_privileges().unwrap_or(false) {
        nix::sys::prctl::set_no_new_privs().ctx("set no_new_privs")?;
    }
    Ok(())
}
