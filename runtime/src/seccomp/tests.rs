//! The compiler's programs evaluated with the test interpreter (`bpf::run`) on synthetic
//! `seccomp_data`, against the semantics each rule states.

use super::bpf::{self, SockFilter};
use super::compile::*;
use super::syscalls::{Arch, X32_SYSCALL_BIT};
use super::{compile, flag};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompOperator as Op};
use serde_json::{json, Value};

const X86_64: u32 = 0xc000_003e;
const I386: u32 = 0x4000_0003;
const AARCH64: u32 = 0xc000_00b7;
const ERRNO_EPERM: u32 = RET_ERRNO | 1;
const ERRNO_ENOSYS: u32 = RET_ERRNO | 38;

fn spec(v: Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("valid LinuxSeccomp JSON")
}

fn prog(v: Value) -> Vec<SockFilter> {
    compile(&spec(v)).expect("compiles").filter
}

fn err(v: Value) -> String {
    compile(&spec(v)).expect_err("must be refused").to_string()
}

fn nr(arch: Arch, name: &str) -> u32 {
    arch.resolve(name).unwrap_or_else(|| panic!("{name} on {arch:?}"))
}

fn run(p: &[SockFilter], arch: Arch, name: &str, args: [u64; 6]) -> u32 {
    bpf::run(p, nr(arch, name), arch.audit(), args)
}

const AMD64_ABIS: [&str; 3] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

/// Values at and around the 32-bit boundaries, with differences in either half.
const EDGES: [u64; 14] = [
    0,
    1,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0001,
    0x1_ffff_ffff,
    0x2_0000_0000,
    0xffff_ffff_0000_0000,
    0xffff_ffff_ffff_fffe,
    u64::MAX,
    0x8000_0000_0000_0000,
];

const OPS: [(&str, Op); 6] = [
    ("SCMP_CMP_NE", Op::ScmpCmpNe),
    ("SCMP_CMP_LT", Op::ScmpCmpLt),
    ("SCMP_CMP_LE", Op::ScmpCmpLe),
    ("SCMP_CMP_EQ", Op::ScmpCmpEq),
    ("SCMP_CMP_GE", Op::ScmpCmpGe),
    ("SCMP_CMP_GT", Op::ScmpCmpGt),
];

#[test]
fn every_operator_at_the_32bit_boundaries() {
    for (name, op) in OPS {
        for v in EDGES {
            let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": AMD64_ABIS, "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
                 "args": [{"index": 2, "value": v, "op": name}]}]}));
            let c = Cond { index: 2, op, value: v, value_two: 0 };
            for arg in EDGES {
                let want = |a: u64| if c.holds(a) { RET_ERRNO | 5 } else { RET_ALLOW };
                let args = [7, 7, arg, 7, 7, 7];
                // 64-bit ABIs compare the whole value.
                assert_eq!(run(&p, Arch::X86_64, "personality", args), want(arg), "x86_64 {arg:#x} {name} {v:#x}");
                assert_eq!(run(&p, Arch::X32, "personality", args), want(arg), "x32 {arg:#x} {name} {v:#x}");
                // x86's arguments are 32-bit: only the low half is the argument.
                assert_eq!(run(&p, Arch::X86, "personality", args), want(arg & 0xffff_ffff), "x86 {arg:#x} {name} {v:#x}");
            }
        }
    }
}

#[test]
fn masked_eq_on_both_halves() {
    let cases: [(u64, u64); 7] = [
        (0xffff_ffff_ffff_ffff, 0x1_0000_0001),
        (0xff, 0x12),
        (0xffff_ffff_0000_0000, 0x1_0000_0000),
        (0x1_0000_0000, 0),
        (0x8000_0000_0000_0001, 0x8000_0000_0000_0000),
        (0x0f, 0xf0), // datum outside the mask never matches (libseccomp)
        (0, 0),
    ];
    for (mask, datum) in cases {
        let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": AMD64_ABIS, "syscalls": [
            {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": mask, "valueTwo": datum, "op": "SCMP_CMP_MASKED_EQ"}]}]}));
        let c = Cond { index: 0, op: Op::ScmpCmpMaskedEq, value: mask, value_two: datum };
        for arg in EDGES.iter().copied().chain([datum, datum | !mask, 0x12, 0x1_0000_0012]) {
            let want = |a: u64| if c.holds(a) { ERRNO_EPERM } else { RET_ALLOW };
            assert_eq!(run(&p, Arch::X86_64, "clone", [arg, 0, 0, 0, 0, 0]), want(arg), "{arg:#x} & {mask:#x} == {datum:#x}");
            assert_eq!(run(&p, Arch::X86, "clone", [arg, 0, 0, 0, 0, 0]), want(arg & 0xffff_ffff), "x86 {arg:#x}");
        }
    }
}

#[test]
fn conditions_of_one_rule_are_anded() {
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]}]}));
    assert_eq!(run(&p, Arch::X86_64, "socket", [16, 3, 9, 0, 0, 0]), ERRNO_EPERM);
    assert_eq!(run(&p, Arch::X86_64, "socket", [16, 3, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&p, Arch::X86_64, "socket", [2, 3, 9, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn same_argument_twice_makes_separate_rules() {
    // runc: two conditions on one index are ORed (each its own rule).
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 0x20000, "op": "SCMP_CMP_EQ"}]}]}));
    assert_eq!(run(&p, Arch::X86_64, "personality", [8, 0, 0, 0, 0, 0]), ERRNO_EPERM);
    assert_eq!(run(&p, Arch::X86_64, "personality", [0x20000, 0, 0, 0, 0, 0]), ERRNO_EPERM);
    assert_eq!(run(&p, Arch::X86_64, "personality", [0, 0, 0, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn several_rules_for_one_syscall() {
    // Allowlist with argument rules (Docker's personality rules), default EPERM.
    let p = prog(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_GE"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}));
    let pers = |a: u64| run(&p, Arch::X86_64, "personality", [a, 0, 0, 0, 0, 0]);
    assert_eq!(pers(0), RET_ALLOW);
    assert_eq!(pers(8), RET_ALLOW, "the first rule that matches decides");
    assert_eq!(pers(9), RET_ERRNO | 22);
    assert_eq!(pers(0xffff_ffff), RET_ERRNO | 22, "an earlier rule matched first");
    assert_eq!(pers(3), ERRNO_EPERM, "no rule matches: default");
}

#[test]
fn unconditional_rules_win() {
    // libseccomp: an unconditional rule replaces the conditional ones, and the first
    // unconditional rule stays.
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3, "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4},
        {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
        {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6, "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]}));
    for a in [0, 1, 2] {
        assert_eq!(run(&p, Arch::X86_64, "ptrace", [a, 0, 0, 0, 0, 0]), RET_ERRNO | 4);
    }
}

#[test]
fn rules_equal_to_the_default_are_skipped() {
    // runc skips them: the later unconditional ALLOW does not override the ERRNO rule.
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW"}]}));
    assert_eq!(run(&p, Arch::X86_64, "ptrace", [1, 0, 0, 0, 0, 0]), ERRNO_EPERM);
    assert_eq!(run(&p, Arch::X86_64, "ptrace", [2, 0, 0, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn every_action_value() {
    let cases = [
        (json!({"action": "SCMP_ACT_KILL"}), RET_KILL_THREAD),
        (json!({"action": "SCMP_ACT_KILL_THREAD"}), RET_KILL_THREAD),
        (json!({"action": "SCMP_ACT_KILL_PROCESS"}), RET_KILL_PROCESS),
        (json!({"action": "SCMP_ACT_TRAP"}), RET_TRAP),
        (json!({"action": "SCMP_ACT_ERRNO"}), ERRNO_EPERM),
        (json!({"action": "SCMP_ACT_ERRNO", "errnoRet": 0}), RET_ERRNO),
        (json!({"action": "SCMP_ACT_ERRNO", "errnoRet": 38}), ERRNO_ENOSYS),
        (json!({"action": "SCMP_ACT_ERRNO", "errnoRet": 65535}), RET_ERRNO | 0xffff),
        (json!({"action": "SCMP_ACT_TRACE"}), RET_TRACE | 1),
        (json!({"action": "SCMP_ACT_TRACE", "errnoRet": 1234}), RET_TRACE | 1234),
        (json!({"action": "SCMP_ACT_LOG"}), RET_LOG),
        (json!({"action": "SCMP_ACT_ALLOW"}), RET_ALLOW),
    ];
    for (mut rule, want) in cases {
        rule["names"] = json!(["mkdirat"]);
        let p = prog(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 99, "syscalls": [rule]}));
        assert_eq!(run(&p, Arch::X86_64, "mkdirat", [0; 6]), want, "{rule}");
        assert_eq!(run(&p, Arch::X86_64, "getppid", [0; 6]), RET_ERRNO | 99, "defaultErrnoRet");
    }
    let p = prog(json!({"defaultAction": "SCMP_ACT_KILL_PROCESS"}));
    assert_eq!(run(&p, Arch::X86_64, "getppid", [0; 6]), RET_KILL_PROCESS);
}

#[test]
fn arch_dispatch_and_unknown_abis() {
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": AMD64_ABIS, "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7}]}));
    for a in [Arch::X86_64, Arch::X86, Arch::X32] {
        assert_eq!(run(&p, a, "getppid", [0; 6]), RET_ERRNO | 7, "{a:?}");
        assert_eq!(run(&p, a, "getpid", [0; 6]), RET_ALLOW, "{a:?}");
    }
    // An ABI the filter does not cover is killed, like libseccomp's bad-arch action.
    assert_eq!(bpf::run(&p, 173, AARCH64, [0; 6]), RET_KILL_PROCESS);
    assert_eq!(bpf::run(&p, 0, 0x1234_5678, [0; 6]), RET_KILL_PROCESS);

    // Only the native ABI when none is listed: x86 and x32 syscalls are killed.
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    assert_eq!(run(&p, Arch::X86_64, "getppid", [0; 6]), RET_ALLOW);
    assert_eq!(run(&p, Arch::X86, "getppid", [0; 6]), RET_KILL_PROCESS);
    assert_eq!(run(&p, Arch::X32, "getppid", [0; 6]), RET_KILL_PROCESS);

    // The native ABI is always covered, even when the list omits it (libseccomp).
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"]}));
    assert_eq!(run(&p, Arch::X86_64, "getppid", [0; 6]), RET_ALLOW);
    assert_eq!(run(&p, Arch::X86, "getppid", [0; 6]), RET_ALLOW);
    assert_eq!(run(&p, Arch::X32, "getppid", [0; 6]), RET_KILL_PROCESS);

    // An ABI without a table is dropped: stricter (killed), never weaker.
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PPC64LE", "SCMP_ARCH_AARCH64"]}));
    assert_eq!(bpf::run(&p, 173, AARCH64, [0; 6]), RET_ALLOW);
    assert_eq!(bpf::run(&p, 20, 0xc000_0015, [0; 6]), RET_KILL_PROCESS);
}

#[test]
fn x32_numbers_carry_their_bit() {
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": AMD64_ABIS, "syscalls": [
        {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO"}]}));
    // x32's ioctl is 514 | bit; the x86_64 number with the bit is not ioctl (x32 has none there).
    assert_eq!(bpf::run(&p, X32_SYSCALL_BIT | 514, X86_64, [0; 6]), ERRNO_EPERM);
    assert_eq!(bpf::run(&p, X32_SYSCALL_BIT | 16, X86_64, [0; 6]), RET_ALLOW);
    assert_eq!(bpf::run(&p, 16, X86_64, [0; 6]), ERRNO_EPERM);
    assert_eq!(bpf::run(&p, 514, X86_64, [0; 6]), RET_ALLOW);
    // Without x32 in the filter, any number with the x32 bit is killed on x86_64
    // (it would otherwise be judged by the x86_64 rules).
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(bpf::run(&p, X32_SYSCALL_BIT | 16, X86_64, [0; 6]), RET_KILL_PROCESS);
    assert_eq!(bpf::run(&p, u32::MAX, X86_64, [0; 6]), RET_KILL_PROCESS);
}

#[test]
fn x86_socketcall_and_ipc_are_covered() {
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": AMD64_ABIS, "syscalls": [
        {"names": ["socket", "accept", "shmget"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["connect"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9, "args": [{"index": 2, "value": 16, "op": "SCMP_CMP_EQ"}]}]}));
    let x86 = |nr: u32, args: [u64; 6]| bpf::run(&p, nr, I386, args);
    assert_eq!(x86(359, [0; 6]), ERRNO_EPERM, "direct socket");
    assert_eq!(x86(102, [1, 0, 0, 0, 0, 0]), ERRNO_EPERM, "socketcall(SYS_SOCKET)");
    assert_eq!(x86(102, [5, 0, 0, 0, 0, 0]), ERRNO_EPERM, "socketcall(SYS_ACCEPT): accept has no direct x86 syscall");
    assert_eq!(x86(102, [2, 0, 0, 0, 0, 0]), RET_ALLOW, "socketcall(SYS_BIND)");
    assert_eq!(x86(395, [0; 6]), ERRNO_EPERM, "direct shmget");
    assert_eq!(x86(117, [23, 0, 0, 0, 0, 0]), ERRNO_EPERM, "ipc(SHMGET)");
    assert_eq!(x86(117, [24, 0, 0, 0, 0, 0]), RET_ALLOW, "ipc(SHMCTL)");
    assert_eq!(x86(362, [0, 0, 16, 0, 0, 0]), RET_ERRNO | 9, "direct connect with its condition");
    assert_eq!(x86(362, [0, 0, 15, 0, 0, 0]), RET_ALLOW);
    // the muxed rule keeps the conditions on other arguments (libseccomp)
    assert_eq!(x86(102, [3, 0, 16, 0, 0, 0]), RET_ERRNO | 9);
    assert_eq!(x86(102, [3, 0, 15, 0, 0, 0]), RET_ALLOW);
    // x86_64 has no multiplexer
    assert_eq!(run(&p, Arch::X86_64, "socket", [0; 6]), ERRNO_EPERM);
}

#[test]
fn unknown_names_are_skipped() {
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": AMD64_ABIS, "syscalls": [
        {"names": ["no_such_syscall", "arch_prctl", "socketcall"], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(run(&p, Arch::X86_64, "arch_prctl", [0; 6]), ERRNO_EPERM);
    assert_eq!(run(&p, Arch::X86, "socketcall", [0; 6]), ERRNO_EPERM, "x86-only name applies to x86");
    assert_eq!(bpf::run(&p, 102, X86_64, [0; 6]), RET_ALLOW, "102 on x86_64 is not socketcall");
}

/// Docker's shape: a long allowlist, default EPERM. Every syscall number of each ABI (and
/// beyond) gets exactly the action its name deserves, and the search is short.
#[test]
fn decision_tree_picks_the_right_action_for_every_syscall() {
    // Every third syscall of the x86_64 table is allowed, a few get ERRNO(EINVAL).
    let all: Vec<(&str, u32)> = syscalls::x86_64::Sysno::iter().map(|s| (s.name(), s.id() as u32)).collect();
    let allowed: Vec<&str> = all.iter().filter(|(_, n)| n % 3 == 0).map(|(s, _)| *s).collect();
    let einval: Vec<&str> = all.iter().filter(|(_, n)| n % 7 == 1 && n % 3 != 0).map(|(s, _)| *s).collect();
    let p = prog(json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": AMD64_ABIS, "syscalls": [
        {"names": allowed, "action": "SCMP_ACT_ALLOW"},
        {"names": einval, "action": "SCMP_ACT_ERRNO", "errnoRet": 22}]}));
    for abi in [Arch::X86_64, Arch::X86, Arch::X32] {
        let named = |want: &[&str]| -> Vec<u32> { want.iter().filter_map(|n| abi.resolve(n)).collect() };
        let (allow_nrs, einval_nrs) = (named(&allowed), named(&einval));
        let max = allow_nrs.iter().chain(&einval_nrs).max().copied().unwrap();
        let base = if abi == Arch::X32 { X32_SYSCALL_BIT } else { 0 };
        let mut longest = 0;
        for nr in base..base + 1100 {
            let want = if allow_nrs.contains(&nr) {
                RET_ALLOW
            } else if einval_nrs.contains(&nr) {
                RET_ERRNO | 22
            } else if nr > max {
                ERRNO_ENOSYS // runc's stub: newer than the profile
            } else {
                ERRNO_EPERM
            };
            let (got, steps) = bpf::run_counted(&p, nr, abi.audit(), [0; 6]);
            assert_eq!(got, want, "{abi:?} nr {nr:#x}");
            // (x86's socketcall/ipc carry one argument check per sub-call, a linear chain)
            if !(abi == Arch::X86 && (nr == 102 || nr == 117)) {
                longest = longest.max(steps);
            }
        }
        assert!(longest <= 20, "{abi:?}: a syscall took {longest} instructions: not a binary search");
    }
    assert!(p.len() < 2000, "program of {} instructions", p.len());
}

#[test]
fn no_enosys_stub_when_the_default_lets_through() {
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(bpf::run(&p, 1000, X86_64, [0; 6]), RET_ALLOW);
    let p = prog(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "getppid"], "action": "SCMP_ACT_ALLOW"}]}));
    assert_eq!(bpf::run(&p, 1000, X86_64, [0; 6]), ERRNO_ENOSYS);
    assert_eq!(bpf::run(&p, 111, X86_64, [0; 6]), ERRNO_ENOSYS);
    assert_eq!(bpf::run(&p, 110, X86_64, [0; 6]), RET_ALLOW);
    assert_eq!(bpf::run(&p, 1, X86_64, [0; 6]), ERRNO_EPERM);
    // defaultErrnoRet ENOSYS already is the stub's answer
    let p = prog(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert_eq!(bpf::run(&p, 1000, X86_64, [0; 6]), ERRNO_ENOSYS);
}

#[test]
fn bad_profiles_fail_clearly() {
    let cases = [
        (json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}), "errnoRet 1 given for"),
        (json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}), "16 bits"),
        (json!({"defaultAction": "SCMP_ACT_NOTIFY"}), "default action"),
        (json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}), "names is empty"),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 3}]}),
            "syscalls[0]",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
            "argument index 6",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath is not set",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}),
            "sendmsg",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "rel.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "not absolute",
        ),
        (json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}), "listenerMetadata"),
    ];
    for (v, want) in cases {
        let e = err(v.clone());
        assert!(e.contains(want) && e.starts_with("linux.seccomp: "), "{v}: {e:?} lacks {want:?}");
    }
    // Too many argument checks for one program.
    let rules: Vec<Value> = (0..1500u64)
        .map(|i| json!({"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": i, "op": "SCMP_CMP_EQ"}]}))
        .collect();
    assert!(err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})).contains("more than the kernel's 4096"));
}

#[test]
fn flags_and_listener() {
    let s = compile(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})))
    .unwrap();
    assert_eq!(s.flags, flag::LOG | flag::SPEC_ALLOW | flag::TSYNC, "WAIT_KILLABLE_RECV means nothing without a listener");
    assert!(s.listener().is_none());
    let s = compile(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock", "listenerMetadata": "m",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]})))
    .unwrap();
    assert_eq!(s.flags, flag::TSYNC | flag::TSYNC_ESRCH | flag::NEW_LISTENER | flag::WAIT_KILLABLE_RECV);
    assert_eq!(s.listener().unwrap().metadata.as_deref(), Some("m"));
    assert_eq!(run(&s.filter, Arch::X86_64, "mkdirat", [0; 6]), RET_USER_NOTIF);
    // listenerPath without NOTIFY is ignored (the spec says so).
    let s = compile(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock"}))).unwrap();
    assert!(s.listener().is_none() && s.flags & flag::NEW_LISTENER == 0);
}

#[test]
fn features_lists() {
    assert!(super::architectures().contains(&"SCMP_ARCH_X32"));
    assert_eq!(super::ACTIONS.len(), 9);
    // every listed name parses as the spec's enum
    for a in super::ACTIONS {
        serde_json::from_value::<oci_spec::runtime::LinuxSeccompAction>(json!(a)).unwrap();
    }
    for o in super::OPERATORS {
        serde_json::from_value::<Op>(json!(o)).unwrap();
    }
    for f in super::KNOWN_FLAGS {
        serde_json::from_value::<oci_spec::runtime::LinuxSeccompFilterFlag>(json!(f)).unwrap();
    }
    for a in super::architectures() {
        serde_json::from_value::<oci_spec::runtime::Arch>(json!(a)).unwrap();
    }
    // This machine's kernel (5.19+) knows all four.
    let supported = super::supported_flags();
    assert!(supported.contains(&"SECCOMP_FILTER_FLAG_LOG"), "{supported:?}");
}
