//! Seccomp: the spec's `linux.seccomp` compiled to a classic-BPF filter, installed in the
//! container's processes.
//!
//! API (used by `berth create`, and by `berth exec` for its processes):
//! - [`compile`]: `&LinuxSeccomp` → [`Program`]. All validation happens here, so a bad
//!   profile fails before anything is created; `spec::load` calls it once per create.
//! - [`install`]: applies a program to the calling thread; returns the notification
//!   listener fd when the profile uses `SCMP_ACT_NOTIFY`.
//! - [`notify::send`]: hands that listener and the container state to the agent at
//!   `listenerPath` (the runtime spec's "container process state").
//! - [`ACTIONS`], [`OPERATORS`], [`architectures`], [`KNOWN_FLAGS`], [`supported_flags`]:
//!   what `berth features` reports.
//!
//! The compiler is berth's own (pure Rust, no libseccomp): `seccompiler` cannot express
//! `SCMP_ACT_NOTIFY` or one filter covering several ABIs (x86_64 + x86 + x32 on an amd64
//! host), both of which real profiles need. Files: [`syscalls`] (ABIs and numbers), [`bpf`]
//! (instructions, assembler), [`compile`] (rule semantics and the decision tree),
//! [`install`] (seccomp(2)), [`notify`] (the listener hand-over).

pub mod bpf;
pub mod compile;
#[allow(unsafe_code)] // seccomp(2)
pub mod install;
pub mod notify;
pub mod syscalls;

pub use compile::compile;
pub use install::install;

use std::path::PathBuf;

/// A compiled filter, ready to install.
#[derive(Clone, Debug)]
pub struct Program {
    filter: Vec<bpf::SockFilter>,
    /// seccomp(2) flags, NEW_LISTENER included when the profile notifies.
    flags: u32,
    listener: Option<Listener>,
}

impl Program {
    /// Where the listener goes, when the profile uses `SCMP_ACT_NOTIFY`.
    pub fn listener(&self) -> Option<&Listener> {
        self.listener.as_ref()
    }
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.filter.len()
    }
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }
}

/// The seccomp agent that receives the notification listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub path: PathBuf,
    pub metadata: Option<String>,
}

/// seccomp(2) filter flags (linux/seccomp.h).
pub mod flag {
    pub const TSYNC: u32 = 1;
    pub const LOG: u32 = 2;
    pub const SPEC_ALLOW: u32 = 4;
    pub const NEW_LISTENER: u32 = 8;
    pub const TSYNC_ESRCH: u32 = 16;
    pub const WAIT_KILLABLE_RECV: u32 = 32;
}

/// Actions berth implements, as the runtime spec names them.
pub const ACTIONS: [&str; 9] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// Argument operators berth implements.
pub const OPERATORS: [&str; 7] =
    ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"];

/// Architectures berth has syscall tables for (`SCMP_ARCH_...`).
pub fn architectures() -> Vec<&'static str> {
    syscalls::Arch::ALL.iter().map(|a| a.spec_name()).collect()
}

/// Filter flags berth understands.
pub const KNOWN_FLAGS: [&str; 4] =
    ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"];

/// The known flags this kernel accepts, probed without installing anything.
pub fn supported_flags() -> Vec<&'static str> {
    let bits = [flag::TSYNC, flag::LOG, flag::SPEC_ALLOW, flag::WAIT_KILLABLE_RECV | flag::NEW_LISTENER];
    KNOWN_FLAGS.iter().zip(bits).filter(|(_, b)| install::flags_supported(*b)).map(|(n, _)| *n).collect()
}

#[cfg(test)]
mod tests;
