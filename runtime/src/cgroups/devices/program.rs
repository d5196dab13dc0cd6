//! Device rules → a `BPF_PROG_TYPE_CGROUP_DEVICE` program (raw eBPF instructions).
//!
//! Semantics are those of the cgroup v1 device controller the spec's rules were written for:
//! rules apply in order, each one adding (allow) or removing (deny) access bits for the
//! devices it matches, starting from "nothing allowed"; a request is allowed when every bit
//! it asks for (read, write, mknod) is in the result. The program computes exactly that for
//! the one device the kernel asks about: r6 starts at 0, every matching rule ORs or clears
//! its bits, and the request passes if `access & !r6 == 0`. Everything before the last rule
//! that matches every device with every access is dead (it resets r6) and is dropped.
//!
//! The kernel's context (struct bpf_cgroup_dev_ctx): u32 `access << 16 | type`, u32 major,
//! u32 minor. Comparisons use 32-bit jumps (JMP32, kernel ≥ 5.1), so majors and minors up to
//! 2^32 - 1 compare exactly.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;
pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One eBPF instruction (struct bpf_insn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (class | op | source).
pub const LDX_MEM_W: u8 = 0x61;
pub const ALU32_AND_K: u8 = 0x54;
pub const ALU32_AND_X: u8 = 0x5c;
pub const ALU32_OR_K: u8 = 0x44;
pub const ALU32_XOR_K: u8 = 0xa4;
pub const ALU32_RSH_K: u8 = 0x74;
pub const ALU32_MOV_K: u8 = 0xb4;
pub const JMP32_JNE_K: u8 = 0x56;
pub const EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | dst, off, imm }
}

/// A rule in the form the program checks: `None` matches anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

impl Rule {
    const fn allow(kind: u32, major: Option<u32>, minor: Option<u32>, access: u32) -> Rule {
        Rule { allow: true, kind: Some(kind), major, minor, access }
    }
    fn matches_everything(&self) -> bool {
        self.kind.is_none() && self.major.is_none() && self.minor.is_none() && self.access == ACC_ALL
    }
}

/// What runc allows after the spec's rules (so no spec can take them away): mknod of any
/// char or block device, /dev/null, random, full, tty, zero, urandom, the pty slaves
/// (136:*), /dev/ptmx (5:2) and /dev/net/tun (10:200).
pub const DEFAULT_ALLOWED: [Rule; 11] = [
    Rule::allow(DEV_CHAR, None, None, ACC_MKNOD),
    Rule::allow(DEV_BLOCK, None, None, ACC_MKNOD),
    Rule::allow(DEV_CHAR, Some(1), Some(3), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(1), Some(8), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(1), Some(7), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(5), Some(0), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(1), Some(5), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(1), Some(9), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(136), None, ACC_ALL),
    Rule::allow(DEV_CHAR, Some(5), Some(2), ACC_ALL),
    Rule::allow(DEV_CHAR, Some(10), Some(200), ACC_ALL),
];

fn number(what: &str, v: Option<i64>) -> Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(Some(n as u32)),
        // The spec's Go type uses -1 for "any" too.
        Some(-1) => Ok(None),
        Some(n) => Err(Error::Spec(format!("linux.resources.devices: bad {what} {n}"))),
    }
}

/// A spec rule checked and converted.
pub fn rule(d: &LinuxDeviceCgroup) -> Result<Rule> {
    let kind = match d.typ() {
        None | Some(LinuxDeviceType::A) => None,
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
        Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
        Some(t) => return Err(Error::Spec(format!("linux.resources.devices: type {t:?} is not a, b or c"))),
    };
    let mut access = 0;
    for c in d.access().as_deref().unwrap_or("rwm").chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return Err(Error::Spec(format!("linux.resources.devices: bad access {:?} (r, w, m)", d.access()))),
        };
    }
    // An empty access string means all of them (as runc reads it).
    if access == 0 {
        access = ACC_ALL;
    }
    Ok(Rule { allow: d.allow(), kind, major: number("major", d.major())?, minor: number("minor", d.minor())?, access })
}

/// The full rule list of a container: the spec's, then runc's defaults.
pub fn rules(spec: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut v: Vec<Rule> = spec.iter().map(rule).collect::<Result<_>>()?;
    v.extend_from_slice(&DEFAULT_ALLOWED);
    Ok(v)
}

/// Compiles the rules (in order) into the program.
pub fn compile(rules: &[Rule]) -> Vec<Insn> {
    let start = rules.iter().rposition(Rule::matches_everything).unwrap_or(0);
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff), // r2 = type
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16), // r3 = requested access
        insn(LDX_MEM_W, 4, 1, 4, 0),    // r4 = major
        insn(LDX_MEM_W, 5, 1, 8, 0),    // r5 = minor
        insn(ALU32_MOV_K, 6, 0, 0, 0),  // r6 = allowed access
    ];
    for r in &rules[start..] {
        let mut checks: Vec<(u8, u32)> = Vec::new();
        if let Some(k) = r.kind {
            checks.push((2, k));
        }
        if let Some(m) = r.major {
            checks.push((4, m));
        }
        if let Some(m) = r.minor {
            checks.push((5, m));
        }
        // Each check skips the rest of its block: the later checks and the one update.
        let n = checks.len();
        for (i, (reg, v)) in checks.into_iter().enumerate() {
            p.push(insn(JMP32_JNE_K, reg, 0, (n - i) as i16, v as i32));
        }
        p.push(if r.allow { insn(ALU32_OR_K, 6, 0, 0, r.access as i32) } else { insn(ALU32_AND_K, 6, 0, 0, !r.access as i32) });
    }
    p.extend([
        insn(ALU32_XOR_K, 6, 0, 0, -1), // r6 = denied access
        insn(ALU32_AND_X, 3, 6, 0, 0),  // r3 = requested & denied
        insn(ALU32_MOV_K, 0, 0, 0, 0),
        insn(JMP32_JNE_K, 3, 0, 1, 0), // anything denied → return 0
        insn(ALU32_MOV_K, 0, 0, 0, 1),
        insn(EXIT, 0, 0, 0, 0),
    ]);
    p
}

/// Runs a program the way the kernel would (only the opcodes `compile` emits), for tests.
#[cfg(test)]
pub fn run(p: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> u32 {
    let ctx = [access << 16 | kind, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    let dst = |i: &Insn| (i.regs & 0xf) as usize;
    loop {
        let i = p[pc];
        pc += 1;
        match i.code {
            LDX_MEM_W => {
                assert_eq!((i.regs >> 4), 1, "loads only from the context");
                r[dst(&i)] = u64::from(ctx[i.off as usize / 4]);
            }
            ALU32_AND_K => r[dst(&i)] = u64::from(r[dst(&i)] as u32 & i.imm as u32),
            ALU32_AND_X => r[dst(&i)] = u64::from(r[dst(&i)] as u32 & r[(i.regs >> 4) as usize] as u32),
            ALU32_OR_K => r[dst(&i)] = u64::from(r[dst(&i)] as u32 | i.imm as u32),
            ALU32_XOR_K => r[dst(&i)] = u64::from(r[dst(&i)] as u32 ^ i.imm as u32),
            ALU32_RSH_K => r[dst(&i)] = u64::from((r[dst(&i)] as u32) >> i.imm),
            ALU32_MOV_K => r[dst(&i)] = u64::from(i.imm as u32),
            JMP32_JNE_K => {
                if r[dst(&i)] as u32 != i.imm as u32 {
                    pc = (pc as isize + i.off as isize) as usize;
                }
            }
            EXIT => return r[0] as u32,
            c => panic!("opcode {c:#x} not emitted by compile"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn deny_all_then_defaults() {
        let p = compile(&rules(&spec(r#"[{"allow": false, "access": "rwm"}]"#)).unwrap());
        // /dev/null, /dev/zero, ptys, /dev/ptmx, /dev/net/tun: read and write.
        for (maj, min) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2), (136, 7), (10, 200)] {
            assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, maj, min), 1, "c {maj}:{min}");
        }
        // Everything else: no read, no write; mknod allowed for char and block.
        for (kind, maj, min) in [(DEV_CHAR, 1, 1), (DEV_CHAR, 4, 0), (DEV_BLOCK, 8, 0), (DEV_CHAR, 10, 229), (DEV_BLOCK, 1, 3)] {
            assert_eq!(run(&p, kind, ACC_READ, maj, min), 0, "{kind} {maj}:{min} read");
            assert_eq!(run(&p, kind, ACC_WRITE, maj, min), 0, "{kind} {maj}:{min} write");
            assert_eq!(run(&p, kind, ACC_MKNOD, maj, min), 1, "{kind} {maj}:{min} mknod");
        }
    }

    #[test]
    fn later_rules_win_bit_by_bit() {
        let p = compile(
            &rules(&spec(
                r#"[
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "rw"},
            {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "w"},
            {"allow": true, "type": "c", "major": 4294967295, "access": "r"}
        ]"#,
            ))
            .unwrap(),
        );
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 8, 0), 0);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ | ACC_WRITE, 8, 0), 0, "asking for a denied bit denies");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 1), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, u32::MAX, 12), 1, "32-bit majors compare exactly");
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, u32::MAX, 12), 0);
    }

    #[test]
    fn allow_all_and_its_exceptions() {
        let p = compile(
            &rules(&spec(
                r#"[
            {"allow": false, "access": "rwm"},
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 1, "access": "rw"}
        ]"#,
            ))
            .unwrap(),
        );
        // The first rule is dead (reset by the second): not emitted.
        assert_eq!(
            p.len(),
            compile(&rules(&spec(r#"[{"allow": true}, {"allow": false, "type": "c", "major": 1, "minor": 1, "access": "rw"}]"#)).unwrap())
                .len()
        );
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ | ACC_WRITE, 8, 0), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 0, "c 1:1 denied after allow-all");
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD, 1, 1), 1);
    }

    #[test]
    fn no_rules_allows_only_the_defaults() {
        let p = compile(&rules(&[]).unwrap());
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0);
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            r#"[{"allow": true, "type": "c", "major": -2}]"#,
            r#"[{"allow": true, "type": "c", "minor": 4294967296}]"#,
            r#"[{"allow": true, "type": "c", "access": "rx"}]"#,
            r#"[{"allow": true, "type": "p"}]"#,
        ] {
            assert!(rules(&spec(bad)).is_err(), "{bad}");
        }
    }
}
