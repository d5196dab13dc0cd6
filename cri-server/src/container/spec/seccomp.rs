//! Seccomp: RuntimeDefault (berth's profile, [`DEFAULT_PROFILE`]), Unconfined, Localhost.
//!
//! Profiles (berth's own and Localhost ones) are OCI `LinuxSeccomp` JSON, optionally with
//! docker's extensions: `archMap` (the architectures to filter, chosen by the host's) and per-rule
//! `includes` / `excludes` (`caps`: all must be in the container's bounding set / none may be;
//! `arches`: Go names of the host architecture; `minKernel`: `major.minor`). They are rendered
//! to plain `LinuxSeccomp` for the container's capabilities, the host's architecture and kernel.
//!
//! Which profile (the same rules as containerd): privileged → none; the structured `seccomp`
//! field, else the deprecated `seccomp_profile_path` (`runtime/default`, `docker/default`,
//! `unconfined`, `localhost/<path>`); neither → Unconfined (the CRI's documented default;
//! kubelet sends RuntimeDefault explicitly when a pod, or `--seccomp-default`, asks for it).

use super::{clean_abs, invalid, SpecError};
use k8s_cri::v1::{security_profile::ProfileType, LinuxContainerSecurityContext, SecurityProfile};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSyscall};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// berth's RuntimeDefault profile.
pub const DEFAULT_PROFILE: &str = include_str!("default_seccomp.json");

/// Localhost profiles bigger than this are refused.
pub const MAX_PROFILE: u64 = 4 << 20;

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(default)]
    pub comment: Option<serde_json::Value>,
    pub default_action: LinuxSeccompAction,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Option<Vec<Arch>>,
    #[serde(default)]
    pub arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    pub flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    pub listener_path: Option<PathBuf>,
    #[serde(default)]
    pub listener_metadata: Option<String>,
    #[serde(default)]
    pub syscalls: Option<Vec<Rule>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: Arch,
    #[serde(default)]
    pub sub_architectures: Vec<Arch>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub comment: Option<serde_json::Value>,
    #[serde(default)]
    pub names: Vec<String>,
    /// The old single-name form.
    #[serde(default)]
    pub name: Option<String>,
    pub action: LinuxSeccompAction,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    pub includes: Option<Filter>,
    #[serde(default)]
    pub excludes: Option<Filter>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// What a profile is rendered for.
pub struct Host<'a> {
    /// Go's name of the architecture (`amd64`, `arm64`, ...), as profiles write it.
    pub arch: &'a str,
    pub native: Option<Arch>,
    pub kernel: (u32, u32),
    /// Capability names without `CAP_`.
    pub caps: &'a BTreeSet<String>,
}

/// (Go name, libseccomp arch) of the host.
pub fn host_arch() -> (&'static str, Option<Arch>) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", Some(Arch::ScmpArchX86_64)),
        "x86" => ("386", Some(Arch::ScmpArchX86)),
        "aarch64" => ("arm64", Some(Arch::ScmpArchAarch64)),
        "arm" => ("arm", Some(Arch::ScmpArchArm)),
        "s390x" => ("s390x", Some(Arch::ScmpArchS390x)),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", Some(Arch::ScmpArchPpc64le)),
        "powerpc64" => ("ppc64", Some(Arch::ScmpArchPpc64)),
        "riscv64" => ("riscv64", Some(Arch::ScmpArchRiscv64)),
        "loongarch64" => ("loong64", Some(Arch::ScmpArchLoongarch64)),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", Some(Arch::ScmpArchMipsel64)),
        "mips64" => ("mips64", Some(Arch::ScmpArchMips64)),
        other => (other, None),
    }
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// The running kernel's (major, minor).
pub fn host_kernel() -> (u32, u32) {
    static K: OnceLock<(u32, u32)> = OnceLock::new();
    *K.get_or_init(|| {
        let Some(rel) = crate::sys::kernel_release() else { return (0, 0) };
        parse_version(&String::from_utf8_lossy(&rel)).unwrap_or((0, 0))
    })
}

fn bare_cap(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    up.strip_prefix("CAP_").unwrap_or(&up).to_string()
}

impl Profile {
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Profile, SpecError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| invalid(format!("seccomp profile {what}: {e}")))
    }

    /// The plain OCI profile for this host and these capabilities.
    pub fn render(&self, h: &Host) -> Result<LinuxSeccomp, SpecError> {
        let applies = |r: &Rule| -> Result<bool, SpecError> {
            if let Some(inc) = &r.includes {
                if !inc.caps.iter().all(|c| h.caps.contains(&bare_cap(c))) {
                    return Ok(false);
                }
                if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == h.arch) {
                    return Ok(false);
                }
                if let Some(k) = &inc.min_kernel {
                    let want = parse_version(k).ok_or_else(|| invalid(format!("seccomp profile: minKernel {k:?} is not major.minor")))?;
                    if h.kernel < want {
                        return Ok(false);
                    }
                }
            }
            if let Some(exc) = &r.excludes {
                if exc.caps.iter().any(|c| h.caps.contains(&bare_cap(c))) || exc.arches.iter().any(|a| a == h.arch) {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        let mut calls = Vec::new();
        for (n, r) in self.syscalls.iter().flatten().enumerate() {
            let mut names = r.names.clone();
            names.extend(r.name.clone());
            if names.is_empty() || names.iter().any(|s| s.is_empty()) {
                return Err(invalid(format!("seccomp profile: syscalls[{n}] names no syscall")));
            }
            if !applies(r)? {
                continue;
            }
            let mut c = LinuxSyscall::default();
            c.set_names(names);
            c.set_action(r.action);
            c.set_errno_ret(r.errno_ret);
            c.set_args(r.args.clone().filter(|a| !a.is_empty()));
            calls.push(c);
        }
        let arches = match (&self.architectures, &self.arch_map) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(map)) => h.native.and_then(|nat| {
                map.iter()
                    .find(|m| m.architecture == nat)
                    .map(|m| std::iter::once(m.architecture).chain(m.sub_architectures.iter().copied()).collect())
            }),
            (None, None) => None,
        };
        let mut s = LinuxSeccomp::default();
        s.set_default_action(self.default_action);
        s.set_default_errno_ret(self.default_errno_ret);
        s.set_architectures(arches);
        s.set_flags(self.flags.clone());
        s.set_listener_path(self.listener_path.clone());
        s.set_listener_metadata(self.listener_metadata.clone());
        s.set_syscalls(Some(calls));
        Ok(s)
    }
}

/// berth's profile, parsed once.
pub fn default_profile() -> &'static Profile {
    static P: OnceLock<Profile> = OnceLock::new();
    P.get_or_init(|| Profile::parse("RuntimeDefault", DEFAULT_PROFILE.as_bytes()).expect("default_seccomp.json is valid (tested)"))
}

fn host<'a>(caps: &'a BTreeSet<String>) -> Host<'a> {
    let (arch, native) = host_arch();
    Host { arch, native, kernel: host_kernel(), caps }
}

/// RuntimeDefault rendered for a container with these (bounding) capabilities on this host.
pub fn runtime_default(caps: &BTreeSet<String>) -> Result<LinuxSeccomp, SpecError> {
    default_profile().render(&host(caps))
}

fn legacy(path: &str) -> Result<SecurityProfile, SpecError> {
    let p = |t: ProfileType, r: &str| SecurityProfile { profile_type: t as i32, localhost_ref: r.into() };
    Ok(match path {
        "" | "unconfined" => p(ProfileType::Unconfined, ""),
        "runtime/default" | "docker/default" => p(ProfileType::RuntimeDefault, ""),
        s => match s.strip_prefix("localhost/") {
            Some(r) => p(ProfileType::Localhost, r),
            None => return Err(invalid(format!("seccomp_profile_path {s:?} is not runtime/default, unconfined or localhost/<path>"))),
        },
    })
}

/// Where a Localhost profile is: an absolute path, or one relative to `root`.
fn localhost_path(r: &str, root: Option<&Path>) -> Result<PathBuf, SpecError> {
    let r = r.strip_prefix("localhost/").unwrap_or(r);
    if r.is_empty() {
        return Err(invalid("seccomp: a Localhost profile needs localhost_ref"));
    }
    if r.starts_with('/') {
        return Ok(PathBuf::from(clean_abs("seccomp localhost_ref", r)?));
    }
    let root = root.ok_or_else(|| invalid(format!("seccomp localhost_ref {r:?} is not an absolute path")))?;
    let rel = clean_abs("seccomp localhost_ref", &format!("/{r}"))?;
    Ok(root.join(rel.trim_start_matches('/')))
}

pub fn load_localhost(path: &Path, caps: &BTreeSet<String>) -> Result<LinuxSeccomp, SpecError> {
    let what = format!("{path:?}");
    let md = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SpecError::NotFound(format!("seccomp profile {what} does not exist")),
        _ => SpecError::Io { what: format!("seccomp profile {what}"), source: e },
    })?;
    if !md.is_file() {
        return Err(invalid(format!("seccomp profile {what} is not a regular file")));
    }
    if md.len() > MAX_PROFILE {
        return Err(invalid(format!("seccomp profile {what} is {} bytes (at most {MAX_PROFILE})", md.len())));
    }
    let bytes = std::fs::read(path).map_err(|e| SpecError::Io { what: format!("read seccomp profile {what}"), source: e })?;
    Profile::parse(&what, &bytes)?.render(&host(caps))
}

/// The container's `linux.seccomp`.
pub fn seccomp(
    sc: &LinuxContainerSecurityContext,
    caps: &BTreeSet<String>,
    localhost_root: Option<&Path>,
) -> Result<Option<LinuxSeccomp>, SpecError> {
    #[allow(deprecated)]
    let profile = match &sc.seccomp {
        Some(p) => p.clone(),
        None => legacy(&sc.seccomp_profile_path)?,
    };
    let kind = ProfileType::try_from(profile.profile_type)
        .map_err(|_| invalid(format!("unknown seccomp profile type {}", profile.profile_type)))?;
    if kind != ProfileType::Localhost && !profile.localhost_ref.is_empty() {
        return Err(invalid("seccomp: localhost_ref may only be set for a Localhost profile"));
    }
    // Validate the reference before privileged discards it: a bad request is bad either way.
    let local = if kind == ProfileType::Localhost { Some(localhost_path(&profile.localhost_ref, localhost_root)?) } else { None };
    if sc.privileged {
        return Ok(None);
    }
    match kind {
        ProfileType::Unconfined => Ok(None),
        ProfileType::RuntimeDefault => runtime_default(caps).map(Some),
        ProfileType::Localhost => load_localhost(&local.unwrap_or_default(), caps).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::security::DEFAULT_CAPS;
    use crate::container::spec::tests::TempDir;

    fn caps(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn amd64<'a>(c: &'a BTreeSet<String>, kernel: (u32, u32)) -> Host<'a> {
        Host { arch: "amd64", native: Some(Arch::ScmpArchX86_64), kernel, caps: c }
    }

    /// Rules that allow `name` unconditionally / with argument conditions / deny it.
    fn rules_for<'a>(s: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        s.syscalls().iter().flatten().filter(|c| c.names().iter().any(|n| n == name)).collect()
    }

    fn allowed(s: &LinuxSeccomp, name: &str) -> bool {
        rules_for(s, name).iter().any(|c| c.action() == LinuxSeccompAction::ScmpActAllow && c.args().is_none())
    }

    #[test]
    fn default_profile_parses_and_has_the_common_set() {
        let c = caps(&DEFAULT_CAPS);
        let s = default_profile().render(&amd64(&c, (6, 1))).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1), "EPERM");
        assert_eq!(s.architectures().as_deref(), Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..]));
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "mmap",
            "futex",
            "exit_group",
            "socket",
            "clock_gettime",
            "statx",
            "rseq",
            "arch_prctl",
            "ptrace",
            "chroot",
        ] {
            assert!(allowed(&s, name), "{name} allowed");
        }
        for name in [
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "mount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "userfaultfd",
            "io_uring_setup",
            "bpf",
            "reboot",
            "swapon",
            "pivot_root",
            "clock_settime",
            "syslog",
            "open_by_handle_at",
            "acct",
            "modify_ldt_x",
        ] {
            assert!(!allowed(&s, name), "{name} denied");
        }
        assert!(allowed(&s, "modify_ldt"));
        assert!(!allowed(&s, "set_tls"), "an arm-only call is not in an amd64 profile");
        // clone: only without namespace flags; clone3: ENOSYS so libc falls back to clone.
        let clone = rules_for(&s, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].args().as_ref().unwrap()[0].value(), 0x7E02_0000);
        let clone3 = rules_for(&s, "clone3");
        assert_eq!((clone3.len(), clone3[0].action(), clone3[0].errno_ret()), (1, LinuxSeccompAction::ScmpActErrno, Some(38)));
        assert_eq!(rules_for(&s, "personality").len(), 5);
    }

    #[test]
    fn capability_and_kernel_conditions() {
        let c = caps(&["SYS_ADMIN", "SYS_PTRACE", "SYS_TIME"]);
        let s = default_profile().render(&amd64(&c, (4, 4))).unwrap();
        for name in ["mount", "unshare", "setns", "clone", "clone3", "bpf", "ptrace", "kcmp", "clock_settime"] {
            assert!(allowed(&s, name), "{name} allowed with its capability");
        }
        assert!(!rules_for(&s, "clone3").iter().any(|c| c.action() == LinuxSeccompAction::ScmpActErrno));
        let none = caps(&[]);
        let old = default_profile().render(&amd64(&none, (4, 4))).unwrap();
        assert!(!allowed(&old, "ptrace"), "ptrace before 4.8 needs CAP_SYS_PTRACE");
        assert!(!allowed(&old, "chroot"));
        let arm =
            default_profile().render(&Host { arch: "arm64", native: Some(Arch::ScmpArchAarch64), kernel: (6, 1), caps: &none }).unwrap();
        assert!(allowed(&arm, "set_tls") && !allowed(&arm, "arch_prctl"));
        assert_eq!(arm.architectures().as_deref(), Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..]));
    }

    #[test]
    fn rendered_default_is_plain_oci_json() {
        let c = caps(&DEFAULT_CAPS);
        let s = runtime_default(&c).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: LinuxSeccomp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(!json.contains("includes") && !json.contains("archMap"));
    }

    fn sp(t: ProfileType, r: &str) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            seccomp: Some(SecurityProfile { profile_type: t as i32, localhost_ref: r.into() }),
            ..Default::default()
        }
    }

    #[test]
    fn profile_selection() {
        let c = caps(&DEFAULT_CAPS);
        assert!(seccomp(&LinuxContainerSecurityContext::default(), &c, None).unwrap().is_none(), "nothing set: unconfined");
        assert!(seccomp(&sp(ProfileType::Unconfined, ""), &c, None).unwrap().is_none());
        assert!(seccomp(&sp(ProfileType::RuntimeDefault, ""), &c, None).unwrap().is_some());
        let privileged = LinuxContainerSecurityContext { privileged: true, ..sp(ProfileType::RuntimeDefault, "") };
        assert!(seccomp(&privileged, &c, None).unwrap().is_none(), "privileged: no seccomp");
        #[allow(deprecated)]
        for (p, some) in [("runtime/default", true), ("docker/default", true), ("unconfined", false), ("", false)] {
            let s = LinuxContainerSecurityContext { seccomp_profile_path: p.into(), ..Default::default() };
            assert_eq!(seccomp(&s, &c, None).unwrap().is_some(), some, "{p}");
        }
        #[allow(deprecated)]
        let bad = LinuxContainerSecurityContext { seccomp_profile_path: "whatever".into(), ..Default::default() };
        assert_eq!(seccomp(&bad, &c, None).unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(seccomp(&sp(ProfileType::RuntimeDefault, "/x"), &c, None).unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(
            seccomp(
                &LinuxContainerSecurityContext {
                    seccomp: Some(SecurityProfile { profile_type: 7, localhost_ref: String::new() }),
                    ..Default::default()
                },
                &c,
                None
            )
            .unwrap_err()
            .code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn localhost_profiles() {
        let c = caps(&DEFAULT_CAPS);
        let t = TempDir::new("seccomp");
        let p = t.path().join("p.json");
        std::fs::write(&p, r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},{"name":"mount","action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#).unwrap();
        let s = seccomp(&sp(ProfileType::Localhost, p.to_str().unwrap()), &c, None).unwrap().unwrap();
        assert_eq!(s.architectures().as_deref(), Some(&[Arch::ScmpArchX86_64][..]));
        assert!(allowed(&s, "read") && !allowed(&s, "mount"));
        // The deprecated form, and a path relative to the configured root.
        #[allow(deprecated)]
        let legacy = LinuxContainerSecurityContext { seccomp_profile_path: format!("localhost/{}", p.display()), ..Default::default() };
        assert!(seccomp(&legacy, &c, None).unwrap().is_some());
        assert!(seccomp(&sp(ProfileType::Localhost, "p.json"), &c, Some(t.path())).unwrap().is_some());
        use tonic::Code::*;
        let code = |r: &str, root: Option<&Path>| seccomp(&sp(ProfileType::Localhost, r), &c, root).unwrap_err().code();
        assert_eq!(code(t.path().join("missing.json").to_str().unwrap(), None), NotFound);
        assert_eq!(code("p.json", None), InvalidArgument, "relative without a root");
        assert_eq!(code("../p.json", Some(t.path())), InvalidArgument);
        assert_eq!(code("", None), InvalidArgument);
        assert_eq!(code(t.path().to_str().unwrap(), None), InvalidArgument, "a directory");
        std::fs::write(&p, "{\"defaultAction\":\"SCMP_ACT_NOPE\"}").unwrap();
        let e = seccomp(&sp(ProfileType::Localhost, p.to_str().unwrap()), &c, None).unwrap_err();
        assert_eq!(e.code(), InvalidArgument);
        assert!(e.to_string().contains("defaultAction"), "{e}");
    }
}
