//! Architectures a filter can cover and their syscall-number tables.
//!
//! The numbers come from the `syscalls` crate, which is generated from the kernel's own
//! `syscall_*.tbl` files and kept current (it knows syscalls up to 469, `file_setattr`) —
//! better than a table of our own. It has no x32 table, so x32 is derived from the x86_64
//! one with the kernel's x32 ABI rules: every `common` syscall keeps its number, the
//! `64`-only ones do not exist, and the 36 that x32 replaced live at 512–547 (a list that
//! has been frozen since Linux 4.x; new syscalls are all `common`). All x32 numbers carry
//! `X32_SYSCALL_BIT`, as the kernel reports them in `seccomp_data.nr`.
//!
//! Checked against libseccomp 2.5.4 (Debian 12, what its runc uses): for x86_64, x86, x32,
//! aarch64 and arm every name libseccomp knows resolves to the same number here.

use oci_spec::runtime::Arch as SpecArch;
use std::collections::HashMap;
use std::str::FromStr;

/// `__X32_SYSCALL_BIT`: set in the syscall number of every x32 syscall.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;

/// An ABI berth can filter (one section of the program each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    X32,
    X86,
    Aarch64,
    Arm,
}

impl Arch {
    /// All ABIs with a table, in the order their names appear in `berth features`.
    pub const ALL: [Arch; 5] = [Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64, Arch::Arm];

    /// The runtime spec's name (`SCMP_ARCH_...`).
    pub fn spec_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::X32 => "SCMP_ARCH_X32",
            Arch::X86 => "SCMP_ARCH_X86",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
            Arch::Arm => "SCMP_ARCH_ARM",
        }
    }

    /// `seccomp_data.arch` of this ABI (x32 shares x86_64's; the number tells them apart).
    pub fn audit(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::X32 => AUDIT_ARCH_X86_64,
            Arch::X86 => AUDIT_ARCH_I386,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
            Arch::Arm => AUDIT_ARCH_ARM,
        }
    }

    /// Whether syscall arguments are 32-bit values: only the low half of each
    /// `seccomp_data.args[i]` is meaningful (the kernel's handlers truncate), so only it is
    /// compared. x32 passes 64-bit registers to the x86_64 handlers (e.g. a 64-bit `off_t`),
    /// so it is compared in full.
    pub fn args_32bit(self) -> bool {
        matches!(self, Arch::X86 | Arch::Arm)
    }

    /// The ABI this binary runs as (`SCMP_ARCH_NATIVE`).
    pub fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else if cfg!(target_arch = "x86") {
            Arch::X86
        } else if cfg!(target_arch = "arm") {
            Arch::Arm
        } else {
            Arch::X86_64
        }
    }

    /// The spec's architecture, or `None` for one berth has no table for. Those can only be
    /// dropped: syscalls of an ABI missing from the filter are killed, so dropping one
    /// makes the filter stricter, never weaker.
    pub fn from_spec(a: SpecArch) -> Option<Arch> {
        match a {
            SpecArch::ScmpArchNative => Some(Arch::native()),
            SpecArch::ScmpArchX86_64 => Some(Arch::X86_64),
            SpecArch::ScmpArchX86 => Some(Arch::X86),
            SpecArch::ScmpArchX32 => Some(Arch::X32),
            SpecArch::ScmpArchAarch64 => Some(Arch::Aarch64),
            SpecArch::ScmpArchArm => Some(Arch::Arm),
            _ => None,
        }
    }

    /// The syscall number of `name` in this ABI (with the x32 bit for x32).
    pub fn resolve(self, name: &str) -> Option<u32> {
        // The crate's names where they differ from the kernel's (and libseccomp's): a Rust
        // keyword, and aarch64's generic `newfstatat`.
        let name = match (self, name) {
            (Arch::X86, "break") => "r#break",
            (Arch::Aarch64, "newfstatat") => "fstatat",
            _ => name,
        };
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok().map(|s| s.id() as u32),
            Arch::X86 => syscalls::x86::Sysno::from_str(name).ok().map(|s| s.id() as u32),
            Arch::Aarch64 => syscalls::aarch64::Sysno::from_str(name).ok().map(|s| s.id() as u32),
            Arch::Arm => syscalls::arm::Sysno::from_str(name).ok().map(|s| s.id() as u32),
            Arch::X32 => x32(name).map(|n| n | X32_SYSCALL_BIT),
        }
    }

    /// The whole name → number table of this ABI. A compile looks up hundreds of names per
    /// ABI; hashing them is several times cheaper than the crate's `FromStr` (a match over
    /// ~400 names) each time.
    pub fn table(self) -> Table {
        fn fill<I: Iterator<Item = (&'static str, u32)>>(it: I) -> Map {
            let mut m = Map::with_capacity_and_hasher(512, Default::default());
            m.extend(it);
            m
        }
        let x86_64 = || syscalls::x86_64::Sysno::iter().map(|s| (s.name(), s.id() as u32));
        let mut m = match self {
            Arch::X86_64 => fill(x86_64()),
            Arch::X86 => fill(syscalls::x86::Sysno::iter().map(|s| (s.name(), s.id() as u32))),
            Arch::Aarch64 => fill(syscalls::aarch64::Sysno::iter().map(|s| (s.name(), s.id() as u32))),
            Arch::Arm => fill(syscalls::arm::Sysno::iter().map(|s| (s.name(), s.id() as u32))),
            Arch::X32 => fill(x86_64().filter_map(|(n, nr)| x32_of(n, nr).map(|nr| (n, nr | X32_SYSCALL_BIT)))),
        };
        // The crate's names where they differ from the kernel's (and libseccomp's): a Rust
        // keyword, and aarch64's generic `newfstatat`.
        if let Some(nr) = m.remove("r#break") {
            m.insert("break", nr);
        }
        if self == Arch::Aarch64 {
            if let Some(&nr) = m.get("fstatat") {
                m.insert("newfstatat", nr);
            }
        }
        Table(m)
    }

    /// For ABIs that multiplex socket and SysV IPC calls (x86's `socketcall(2)` and
    /// `ipc(2)`): the multiplexer's number and the sub-call number passed as its first
    /// argument. The kernel also has direct syscalls for most of them; a rule must cover
    /// both ways in, as libseccomp does.
    pub fn multiplexed(self, name: &str) -> Option<(u32, u32)> {
        if self != Arch::X86 {
            return None;
        }
        const SOCKETCALL: u32 = 102;
        const IPC: u32 = 117;
        let socket = [
            "socket",
            "bind",
            "connect",
            "listen",
            "accept",
            "getsockname",
            "getpeername",
            "socketpair",
            "send",
            "recv",
            "sendto",
            "recvfrom",
            "shutdown",
            "setsockopt",
            "getsockopt",
            "sendmsg",
            "recvmsg",
            "accept4",
            "recvmmsg",
            "sendmmsg",
        ];
        if let Some(i) = socket.iter().position(|n| *n == name) {
            return Some((SOCKETCALL, i as u32 + 1));
        }
        let ipc: [(&str, u32); 12] = [
            ("semop", 1),
            ("semget", 2),
            ("semctl", 3),
            ("semtimedop", 4),
            ("msgsnd", 11),
            ("msgrcv", 12),
            ("msgget", 13),
            ("msgctl", 14),
            ("shmat", 21),
            ("shmdt", 22),
            ("shmget", 23),
            ("shmctl", 24),
        ];
        ipc.iter().find(|(n, _)| *n == name).map(|(_, sub)| (IPC, *sub))
    }
}

/// FNV-1a: syscall names are short and trusted-shape, and this map lives for one compile,
/// so a cheap hash beats SipHash (which dominated compile time).
#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
}

type Map = HashMap<&'static str, u32, std::hash::BuildHasherDefault<Fnv>>;

/// One ABI's syscall numbers by name.
pub struct Table(Map);

impl Table {
    pub fn get(&self, name: &str) -> Option<u32> {
        self.0.get(name).copied()
    }
}

/// x86_64 syscalls that only the 64-bit ABI has (`64` in syscall_64.tbl); x32 has its own
/// entry at 512+ for most of them.
const X86_64_ONLY: [&str; 47] = [
    "rt_sigaction",
    "rt_sigreturn",
    "ioctl",
    "readv",
    "writev",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "execve",
    "ptrace",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "sigaltstack",
    "timer_create",
    "mq_notify",
    "kexec_load",
    "waitid",
    "set_robust_list",
    "get_robust_list",
    "vmsplice",
    "move_pages",
    "preadv",
    "pwritev",
    "rt_tgsigqueueinfo",
    "recvmmsg",
    "sendmmsg",
    "process_vm_readv",
    "process_vm_writev",
    "setsockopt",
    "getsockopt",
    "io_setup",
    "io_submit",
    "execveat",
    "preadv2",
    "pwritev2",
    // 64-only with no x32 counterpart
    "uselib",
    "_sysctl",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "set_thread_area",
    "get_thread_area",
    "epoll_ctl_old",
    "epoll_wait_old",
    "vserver",
];

/// The x32 number (without the x32 bit) of `name`.
fn x32(name: &str) -> Option<u32> {
    syscalls::x86_64::Sysno::from_str(name).ok().and_then(|s| x32_of(name, s.id() as u32))
}

/// The x32 number of the x86_64 syscall `name` numbered `nr`.
fn x32_of(name: &str, nr: u32) -> Option<u32> {
    match X86_64_ONLY.iter().position(|n| *n == name) {
        // The first 36 entries of X86_64_ONLY are, in order, x32's 512..=547.
        Some(i) => (i < 36).then_some(512 + i as u32),
        None => Some(nr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers() {
        assert_eq!(Arch::X86_64.resolve("read"), Some(0));
        assert_eq!(Arch::X86_64.resolve("getppid"), Some(110));
        assert_eq!(Arch::X86_64.resolve("clone3"), Some(435));
        assert_eq!(Arch::X86.resolve("getppid"), Some(64));
        assert_eq!(Arch::X86.resolve("socketcall"), Some(102));
        assert_eq!(Arch::X86.resolve("socket"), Some(359));
        assert_eq!(Arch::X86_64.resolve("socketcall"), None);
        assert_eq!(Arch::Aarch64.resolve("getppid"), Some(173));
        assert_eq!(Arch::Aarch64.resolve("open"), None, "aarch64 has only openat");
        assert_eq!(Arch::Aarch64.resolve("newfstatat"), Some(79));
        assert_eq!(Arch::X86.resolve("break"), Some(17));
        assert_eq!(Arch::X86_64.resolve("no_such_syscall"), None);
    }

    #[test]
    fn x32_numbers() {
        // common syscalls keep their number, with the x32 bit
        assert_eq!(Arch::X32.resolve("read"), Some(X32_SYSCALL_BIT));
        assert_eq!(Arch::X32.resolve("getppid"), Some(X32_SYSCALL_BIT | 110));
        assert_eq!(Arch::X32.resolve("mseal"), Some(X32_SYSCALL_BIT | 462));
        // replaced ones move to 512+
        assert_eq!(Arch::X32.resolve("rt_sigaction"), Some(X32_SYSCALL_BIT | 512));
        assert_eq!(Arch::X32.resolve("ioctl"), Some(X32_SYSCALL_BIT | 514));
        assert_eq!(Arch::X32.resolve("execve"), Some(X32_SYSCALL_BIT | 520));
        assert_eq!(Arch::X32.resolve("setsockopt"), Some(X32_SYSCALL_BIT | 541));
        assert_eq!(Arch::X32.resolve("execveat"), Some(X32_SYSCALL_BIT | 545));
        assert_eq!(Arch::X32.resolve("pwritev2"), Some(X32_SYSCALL_BIT | 547));
        // 64-only ones do not exist
        assert_eq!(Arch::X32.resolve("uselib"), None);
        assert_eq!(Arch::X32.resolve("set_thread_area"), None);
        // every 64-only name is a real x86_64 syscall (no typo in the list)
        for n in X86_64_ONLY {
            assert!(Arch::X86_64.resolve(n).is_some(), "{n}");
        }
    }

    #[test]
    fn tables_agree_with_resolve() {
        for a in Arch::ALL {
            let t = a.table();
            for n in ["read", "getppid", "newfstatat", "break", "ioctl", "execve", "socketcall", "uselib", "clone3", "nope"] {
                assert_eq!(t.get(n), a.resolve(n), "{a:?} {n}");
            }
        }
        let (t, x) = (Arch::X32.table(), Arch::X86_64.table());
        assert!(t.0.len() + 11 == x.0.len(), "x32 lacks exactly the 11 64-only syscalls without an x32 twin");
    }

    #[test]
    fn multiplexed_calls() {
        assert_eq!(Arch::X86.multiplexed("socket"), Some((102, 1)));
        assert_eq!(Arch::X86.multiplexed("sendmmsg"), Some((102, 20)));
        assert_eq!(Arch::X86.multiplexed("shmctl"), Some((117, 24)));
        assert_eq!(Arch::X86.multiplexed("read"), None);
        assert_eq!(Arch::X86_64.multiplexed("socket"), None);
    }
}
