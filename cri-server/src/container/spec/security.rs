//! Capabilities, masked and read-only paths, AppArmor.
//!
//! - Capabilities: the common container default set (containerd's; CRI-O's default is smaller:
//!   it leaves out NET_RAW, MKNOD, SYS_CHROOT and AUDIT_WRITE), then "ALL" in add (every
//!   capability), "ALL" in drop (none), then the named adds, then the named drops — containerd's
//!   order. Names with or without `CAP_`, any case. Bounding = effective = permitted = the
//!   result; ambient (and inheritable) only from `add_ambient_capabilities`, which also join
//!   every other set. Privileged: every capability the kernel has.
//! - Masked / read-only paths: the request's lists when non-empty, else berth's defaults;
//!   none when privileged.
//! - AppArmor: see [`apparmor`].

use super::{clean_abs, invalid, SpecError};
use k8s_cri::v1::{security_profile::ProfileType, LinuxContainerSecurityContext, SecurityProfile};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};
use std::collections::BTreeSet;
use std::str::FromStr;

/// Every capability by number (capability.h); the index is the number.
pub const ALL_CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The default set (containerd's and docker's).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

pub const DEFAULT_MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const DEFAULT_READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

#[derive(Debug)]
pub struct Caps {
    pub oci: LinuxCapabilities,
    /// Names without `CAP_` (for seccomp's conditions).
    pub bounding: BTreeSet<String>,
}

/// `CAP_SYS_ADMIN`, `sys_admin` → `SYS_ADMIN`; unknown → InvalidArgument.
pub fn normalize(name: &str) -> Result<String, SpecError> {
    let up = name.trim().to_ascii_uppercase();
    let bare = up.strip_prefix("CAP_").unwrap_or(&up);
    if ALL_CAPS.contains(&bare) {
        Ok(bare.to_string())
    } else {
        Err(invalid(format!("unknown capability {name:?}")))
    }
}

/// The highest capability number the running kernel knows (`/proc/sys/kernel/cap_last_cap`).
fn cap_last_cap() -> usize {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .map(|n| n.min(ALL_CAPS.len() - 1))
        .unwrap_or(ALL_CAPS.len() - 1)
}

fn to_oci(set: &BTreeSet<String>) -> Capabilities {
    set.iter().filter_map(|c| Capability::from_str(c).ok()).collect()
}

/// The daemon's own bounding set (`CapBnd` of /proc/self/status): a container cannot be given
/// more than the process that starts it has (here, CAP_SYS_RESOURCE is missing everywhere),
/// so "ALL" and privileged mean these — containerd's "all current capabilities".
fn own_bounding() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapBnd:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()))
        .unwrap_or(u64::MAX)
}

pub fn capabilities(sc: &LinuxContainerSecurityContext) -> Result<Caps, SpecError> {
    capabilities_with_mask(sc, cap_last_cap(), own_bounding())
}

#[cfg(test)]
pub(crate) fn capabilities_with(sc: &LinuxContainerSecurityContext, last_cap: usize) -> Result<Caps, SpecError> {
    capabilities_with_mask(sc, last_cap, u64::MAX)
}

pub(crate) fn capabilities_with_mask(sc: &LinuxContainerSecurityContext, last_cap: usize, bounding: u64) -> Result<Caps, SpecError> {
    let all: BTreeSet<String> = ALL_CAPS[..=last_cap.min(ALL_CAPS.len() - 1)]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i >= 64 || bounding & (1u64 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect();
    let req = sc.capabilities.clone().unwrap_or_default();
    let is_all = |s: &String| s.trim().eq_ignore_ascii_case("ALL");
    // Validate every name, also when privileged ignores them.
    let named = |v: &Vec<String>| -> Result<Vec<String>, SpecError> { v.iter().filter(|s| !is_all(s)).map(|s| normalize(s)).collect() };
    let add = named(&req.add_capabilities)?;
    let drop = named(&req.drop_capabilities)?;
    let ambient = named(&req.add_ambient_capabilities)?;
    if req.add_ambient_capabilities.iter().any(is_all) {
        return Err(invalid("\"ALL\" is not accepted in add_ambient_capabilities"));
    }

    let mut set: BTreeSet<String> = if sc.privileged {
        all.clone()
    } else {
        let mut set: BTreeSet<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
        if req.add_capabilities.iter().any(is_all) {
            set = all.clone();
        }
        if req.drop_capabilities.iter().any(is_all) {
            set.clear();
        }
        set.extend(add);
        for d in &drop {
            set.remove(d);
        }
        set
    };
    let ambient: BTreeSet<String> = ambient.into_iter().collect();
    set.extend(ambient.iter().cloned());
    // A capability the kernel does not have cannot be raised (runc drops them with a warning).
    set.retain(|c| all.contains(c));
    let ambient: BTreeSet<String> = ambient.into_iter().filter(|c| all.contains(c)).collect();

    let mut oci = LinuxCapabilities::default();
    oci.set_bounding(Some(to_oci(&set)));
    oci.set_effective(Some(to_oci(&set)));
    oci.set_permitted(Some(to_oci(&set)));
    oci.set_inheritable(Some(to_oci(&ambient)));
    oci.set_ambient(Some(to_oci(&ambient)));
    Ok(Caps { oci, bounding: set })
}

/// (masked, readonly). kubelet sends the default lists for procMount Default and empty lists
/// for Unmasked; an empty list cannot be told from an absent one on the wire, so empty means
/// berth's defaults (as containerd and CRI-O): Unmasked is not honoured (it needs a user
/// namespace anyway, which berth-cri does not support yet).
pub fn masked_and_readonly_paths(sc: &LinuxContainerSecurityContext) -> Result<(Vec<String>, Vec<String>), SpecError> {
    if sc.privileged {
        return Ok((Vec::new(), Vec::new()));
    }
    let pick = |field: &str, req: &[String], dflt: &[&str]| -> Result<Vec<String>, SpecError> {
        if req.is_empty() {
            return Ok(dflt.iter().map(|s| s.to_string()).collect());
        }
        req.iter().enumerate().map(|(n, p)| clean_abs(&format!("{field}[{n}]"), p)).collect()
    };
    Ok((
        pick("masked_paths", &sc.masked_paths, &DEFAULT_MASKED_PATHS)?,
        pick("readonly_paths", &sc.readonly_paths, &DEFAULT_READONLY_PATHS)?,
    ))
}

/// Whether AppArmor can be used: enabled in the kernel and its securityfs interface mounted
/// (as runc decides; without the interface no profile can be loaded or applied).
pub fn host_apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim_start().starts_with('Y'))
        && std::path::Path::new("/sys/kernel/security/apparmor").is_dir()
}

pub(crate) fn apparmor_loaded(name: &str) -> bool {
    std::fs::read_to_string("/sys/kernel/security/apparmor/profiles")
        .is_ok_and(|s| s.lines().any(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(" ("))))
}

/// The process's AppArmor profile.
///
/// The structured `apparmor` field wins over the deprecated `apparmor_profile` string
/// (`runtime/default`, `unconfined`, `localhost/<name>`). Privileged and Unconfined: none.
/// On a host without AppArmor (`default` = None), RuntimeDefault and Unconfined are ignored and
/// Localhost is refused (FailedPrecondition) — the request cannot be honoured. (CRI-O ignores
/// every profile there; containerd refuses RuntimeDefault too.) With AppArmor, RuntimeDefault
/// is `default` and a Localhost profile must be loaded (NotFound otherwise).
pub fn apparmor(sc: &LinuxContainerSecurityContext, default: Option<&str>) -> Result<Option<String>, SpecError> {
    #[allow(deprecated)]
    let legacy = sc.apparmor_profile.as_str();
    let profile = match &sc.apparmor {
        Some(p) => p.clone(),
        None => match legacy {
            "" | "runtime/default" => SecurityProfile { profile_type: ProfileType::RuntimeDefault as i32, localhost_ref: String::new() },
            "unconfined" => SecurityProfile { profile_type: ProfileType::Unconfined as i32, localhost_ref: String::new() },
            s => match s.strip_prefix("localhost/") {
                Some(name) => SecurityProfile { profile_type: ProfileType::Localhost as i32, localhost_ref: name.into() },
                None => return Err(invalid(format!("apparmor_profile {s:?} is not runtime/default, unconfined or localhost/<name>"))),
            },
        },
    };
    let kind = ProfileType::try_from(profile.profile_type)
        .map_err(|_| invalid(format!("unknown apparmor profile type {}", profile.profile_type)))?;
    if kind != ProfileType::Localhost && !profile.localhost_ref.is_empty() {
        return Err(invalid("apparmor: localhost_ref may only be set for a Localhost profile"));
    }
    if sc.privileged {
        return Ok(None);
    }
    match (kind, default) {
        (ProfileType::Unconfined, _) | (ProfileType::RuntimeDefault, None) => Ok(None),
        (ProfileType::RuntimeDefault, Some(d)) => Ok(Some(d.to_string())),
        (ProfileType::Localhost, None) => Err(SpecError::Unsupported(format!(
            "apparmor profile {:?} requested, but AppArmor is not enabled on this node",
            profile.localhost_ref
        ))),
        (ProfileType::Localhost, Some(_)) => {
            let name = profile.localhost_ref.strip_prefix("localhost/").unwrap_or(&profile.localhost_ref);
            if name.is_empty() || name.contains('\0') || name.contains('\n') {
                return Err(invalid(format!("apparmor localhost_ref {:?} is not a profile name", profile.localhost_ref)));
            }
            if !apparmor_loaded(name) {
                return Err(SpecError::NotFound(format!("apparmor profile {name:?} is not loaded")));
            }
            Ok(Some(name.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::Capability as CriCaps;

    fn sc(add: &[&str], drop: &[&str]) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            capabilities: Some(CriCaps {
                add_capabilities: add.iter().map(|s| s.to_string()).collect(),
                drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
                add_ambient_capabilities: vec![],
            }),
            ..Default::default()
        }
    }

    fn names(c: &Caps) -> Vec<String> {
        c.bounding.iter().cloned().collect()
    }

    fn set(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn every_name_maps_to_an_oci_capability() {
        for c in ALL_CAPS {
            assert!(Capability::from_str(c).is_ok(), "{c}");
            assert_eq!(normalize(&format!("cap_{}", c.to_lowercase())).unwrap(), c);
        }
    }

    #[test]
    fn default_set() {
        let c = capabilities_with(&LinuxContainerSecurityContext::default(), 40).unwrap();
        assert_eq!(names(&c), set(&DEFAULT_CAPS));
        assert_eq!(c.oci.effective().as_ref().unwrap().len(), 14);
        assert!(c.oci.bounding().as_ref().unwrap().contains(&Capability::NetRaw));
        assert!(c.oci.ambient().as_ref().unwrap().is_empty());
        assert!(c.oci.inheritable().as_ref().unwrap().is_empty());
    }

    #[test]
    fn add_drop_forms_and_all() {
        let c = capabilities_with(&sc(&["CAP_SYS_ADMIN", "net_admin"], &["kill", "CAP_MKNOD"]), 40).unwrap();
        let n = names(&c);
        assert!(n.contains(&"SYS_ADMIN".into()) && n.contains(&"NET_ADMIN".into()));
        assert!(!n.contains(&"KILL".into()) && !n.contains(&"MKNOD".into()));
        assert_eq!(names(&capabilities_with(&sc(&["NET_BIND_SERVICE"], &["ALL"]), 40).unwrap()), ["NET_BIND_SERVICE"]);
        let all = capabilities_with(&sc(&["ALL"], &["SYS_ADMIN"]), 40).unwrap();
        assert_eq!(all.bounding.len(), 40);
        assert!(!all.bounding.contains("SYS_ADMIN"));
        assert!(capabilities_with(&sc(&[], &["all"]), 40).unwrap().bounding.is_empty());
        // The kernel's last capability bounds "ALL".
        assert_eq!(capabilities_with(&sc(&["ALL"], &[]), 37).unwrap().bounding.len(), 38);
    }

    #[test]
    fn ambient_joins_every_set() {
        let mut s = sc(&[], &["ALL"]);
        s.capabilities.as_mut().unwrap().add_ambient_capabilities = vec!["CAP_NET_BIND_SERVICE".into()];
        let c = capabilities_with(&s, 40).unwrap();
        for v in [c.oci.bounding(), c.oci.effective(), c.oci.permitted(), c.oci.inheritable(), c.oci.ambient()] {
            assert_eq!(v.as_ref().unwrap().iter().collect::<Vec<_>>(), [&Capability::NetBindService]);
        }
    }

    #[test]
    fn unknown_capability_refused() {
        for (a, d) in [(vec!["CAP_FLY"], vec![]), (vec![], vec!["SYS_WHATEVER"]), (vec!["CAP_"], vec![])] {
            let e = capabilities_with(&sc(&a, &d), 40).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.to_string().contains("unknown capability"), "{e}");
        }
    }

    #[test]
    fn privileged_gets_all() {
        let s = LinuxContainerSecurityContext { privileged: true, ..sc(&[], &["ALL"]) };
        assert_eq!(capabilities_with(&s, 40).unwrap().bounding.len(), 41);
        assert_eq!(masked_and_readonly_paths(&s).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn masked_paths() {
        let (m, r) = masked_and_readonly_paths(&LinuxContainerSecurityContext::default()).unwrap();
        assert!(m.contains(&"/proc/kcore".to_string()) && r.contains(&"/proc/sys".to_string()));
        let s = LinuxContainerSecurityContext {
            masked_paths: vec!["/proc/x".into()],
            readonly_paths: vec!["/proc/y/".into()],
            ..Default::default()
        };
        assert_eq!(masked_and_readonly_paths(&s).unwrap(), (vec!["/proc/x".into()], vec!["/proc/y".into()]));
        let s = LinuxContainerSecurityContext { masked_paths: vec!["proc".into()], ..Default::default() };
        assert_eq!(masked_and_readonly_paths(&s).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn apparmor_without_apparmor() {
        let p = |t: ProfileType, r: &str| LinuxContainerSecurityContext {
            apparmor: Some(SecurityProfile { profile_type: t as i32, localhost_ref: r.into() }),
            ..Default::default()
        };
        assert_eq!(apparmor(&LinuxContainerSecurityContext::default(), None).unwrap(), None);
        assert_eq!(apparmor(&p(ProfileType::RuntimeDefault, ""), None).unwrap(), None);
        assert_eq!(apparmor(&p(ProfileType::Unconfined, ""), None).unwrap(), None);
        assert_eq!(apparmor(&p(ProfileType::Localhost, "mine"), None).unwrap_err().code(), tonic::Code::FailedPrecondition);
        #[allow(deprecated)]
        let legacy = LinuxContainerSecurityContext { apparmor_profile: "localhost/mine".into(), ..Default::default() };
        assert_eq!(apparmor(&legacy, None).unwrap_err().code(), tonic::Code::FailedPrecondition);
        assert_eq!(apparmor(&p(ProfileType::RuntimeDefault, "x"), None).unwrap_err().code(), tonic::Code::InvalidArgument);
        // With AppArmor: RuntimeDefault is the daemon's profile; privileged and Unconfined get none.
        assert_eq!(apparmor(&p(ProfileType::RuntimeDefault, ""), Some("berth-default")).unwrap().as_deref(), Some("berth-default"));
        assert_eq!(apparmor(&p(ProfileType::Unconfined, ""), Some("berth-default")).unwrap(), None);
        let privileged = LinuxContainerSecurityContext { privileged: true, ..p(ProfileType::RuntimeDefault, "") };
        assert_eq!(apparmor(&privileged, Some("berth-default")).unwrap(), None);
        assert_eq!(apparmor(&p(ProfileType::Localhost, "surely-not-loaded-xyz"), Some("d")).unwrap_err().code(), tonic::Code::NotFound);
    }
}
