//! `linux.seccomp` → rules per ABI → one classic-BPF program.
//!
//! Rule semantics follow runc over libseccomp, so a profile means here what it means there:
//! - a rule whose action equals the default action is skipped (runc);
//! - a name unknown on an ABI is skipped there with a debug log (runc);
//! - conditions of one rule are ANDed; when one argument index appears more than once,
//!   each condition becomes a rule of its own (ORed), as runc does;
//! - an unconditional rule for a syscall wins over every conditional one, and of two
//!   unconditional rules the first wins (libseccomp's rule database);
//! - of several conditional rules for a syscall the first one (in profile order) whose
//!   conditions all hold decides; none holding → the default action;
//! - on x86 a socket or SysV IPC rule also covers the `socketcall(2)`/`ipc(2)` way in,
//!   with the sub-call as the first argument (libseccomp);
//! - the native ABI is always filtered; a syscall of an ABI the filter does not cover kills
//!   the process (libseccomp's bad-arch action);
//! - unless the default action lets syscalls through, a syscall number above the largest
//!   one the profile names gets ENOSYS, so a newer libc falls back instead of failing
//!   (runc's -ENOSYS stub, e.g. for clone3 under older profiles).
//!
//! The program: load the arch, dispatch on it, load the number, then a balanced binary
//! search over the number line cut into intervals of equal outcome (runs of allowed
//! syscalls merge into one interval), so a syscall costs ~log2(intervals) comparisons.

use super::bpf::{self, Asm, Cmp, Label, SockFilter};
use super::syscalls::{Arch, X32_SYSCALL_BIT};
use super::{flag, Listener, Program};
use crate::error::{Error, Result};
use crate::logger;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompFilterFlag, LinuxSeccompOperator as Op};
use std::collections::BTreeMap;

// SECCOMP_RET_* values.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0x0000_0000;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::Spec(format!("linux.seccomp: {msg}"))
}

/// The kernel's return value for an action; `errno` is only allowed where the action takes one.
pub fn action_value(a: Action, errno: Option<u32>, what: &str) -> Result<u32> {
    let data = |errno: Option<u32>| match errno {
        Some(e) if e > 0xffff => Err(bad(format!("{what}: errnoRet {e} does not fit the 16 bits seccomp returns"))),
        Some(e) => Ok(e),
        None => Ok(EPERM),
    };
    match a {
        Action::ScmpActErrno => return Ok(RET_ERRNO | data(errno)?),
        Action::ScmpActTrace => return Ok(RET_TRACE | data(errno)?),
        _ => {}
    }
    if let Some(e) = errno {
        return Err(bad(format!("{what}: errnoRet {e} given for {a}, which returns no errno")));
    }
    Ok(match a {
        Action::ScmpActKill | Action::ScmpActKillThread => RET_KILL_THREAD,
        Action::ScmpActKillProcess => RET_KILL_PROCESS,
        Action::ScmpActTrap => RET_TRAP,
        Action::ScmpActNotify => RET_USER_NOTIF,
        Action::ScmpActLog => RET_LOG,
        Action::ScmpActAllow => RET_ALLOW,
        Action::ScmpActErrno | Action::ScmpActTrace => unreachable!(),
    })
}

/// One argument comparison: `args[index] <op> value` (MASKED_EQ: `args[index] & value == value_two`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

impl Cond {
    /// What the condition says about a 64-bit argument value (the reference semantics).
    #[cfg(test)]
    pub fn holds(&self, arg: u64) -> bool {
        let v = self.value;
        match self.op {
            Op::ScmpCmpNe => arg != v,
            Op::ScmpCmpLt => arg < v,
            Op::ScmpCmpLe => arg <= v,
            Op::ScmpCmpEq => arg == v,
            Op::ScmpCmpGe => arg >= v,
            Op::ScmpCmpGt => arg > v,
            Op::ScmpCmpMaskedEq => arg & v == self.value_two,
        }
    }
}

/// Conditional rules of one syscall: (all of these hold → this action).
#[derive(Clone, Debug, Default)]
struct Rules {
    unconditional: Option<u32>,
    chains: Vec<(Vec<Cond>, u32)>,
}

impl Rules {
    fn add(&mut self, conds: Vec<Cond>, action: u32) {
        if self.unconditional.is_some() {
            return;
        }
        if conds.is_empty() {
            self.unconditional = Some(action);
            self.chains.clear();
        } else {
            self.chains.push((conds, action));
        }
    }
}

/// Everything one ABI's part of the program decides.
struct Section {
    arch: Arch,
    table: super::syscalls::Table,
    rules: BTreeMap<u32, Rules>,
    /// The largest syscall number the profile names on this ABI (for the ENOSYS stub).
    max_nr: Option<u32>,
}

/// Compiles the spec's `linux.seccomp` into a program ready for [`super::install`].
pub fn compile(s: &LinuxSeccomp) -> Result<Program> {
    let default = action_value(s.default_action(), s.default_errno_ret(), "defaultAction")?;
    if s.default_action() == Action::ScmpActNotify {
        // Every syscall, including the ones berth needs to hand the listener over, would wait
        // for an agent that does not have the listener yet (runc refuses it too).
        return Err(bad("SCMP_ACT_NOTIFY cannot be the default action"));
    }

    // The native ABI is always part of a filter (libseccomp starts every filter with it).
    let mut archs = vec![Arch::native()];
    for a in s.architectures().iter().flatten() {
        match Arch::from_spec(*a) {
            Some(x) if !archs.contains(&x) => archs.push(x),
            Some(_) => {}
            None => logger::debug(&format!("seccomp: no syscall table for {a}: its syscalls will be killed")),
        }
    }
    let mut sections: Vec<Section> =
        archs.iter().map(|&arch| Section { arch, table: arch.table(), rules: BTreeMap::new(), max_nr: None }).collect();

    let mut notify = false;
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let what = format!("syscalls[{i}]");
        let action = action_value(rule.action(), rule.errno_ret(), &what)?;
        if rule.names().is_empty() {
            return Err(bad(format!("{what}: names is empty")));
        }
        let mut conds = Vec::new();
        for a in rule.args().iter().flatten() {
            if a.index() > 5 {
                return Err(bad(format!("{what}: argument index {} (a syscall has 6 arguments, 0-5)", a.index())));
            }
            conds.push(Cond { index: a.index() as u8, op: a.op(), value: a.value(), value_two: a.value_two().unwrap_or(0) });
        }
        if rule.action() == Action::ScmpActNotify {
            notify = true;
            if rule.names().iter().any(|n| n == "sendmsg") {
                // berth's init hands the listener to `berth create` with sendmsg right after
                // installing the filter: notifying it would wait forever for an agent that
                // has no listener yet (runc refuses `write`, its hand-over syscall, likewise).
                return Err(bad(format!("{what}: SCMP_ACT_NOTIFY cannot be used for sendmsg")));
            }
        }
        // runc: conditions sharing an argument index are each a rule of their own.
        let mut seen = [0u8; 6];
        conds.iter().for_each(|c| seen[c.index as usize] += 1);
        let groups: Vec<Vec<Cond>> = if seen.iter().any(|n| *n > 1) { conds.iter().map(|c| vec![*c]).collect() } else { vec![conds] };

        for name in rule.names() {
            let mut known = false;
            for sec in sections.iter_mut() {
                let direct = sec.table.get(name);
                let muxed = sec.arch.multiplexed(name);
                if direct.is_none() && muxed.is_none() {
                    continue;
                }
                known = true;
                if let Some(nr) = direct {
                    sec.max_nr = Some(sec.max_nr.map_or(nr, |m| m.max(nr)));
                }
                if action == default {
                    continue; // redundant (runc skips it, libseccomp would refuse it)
                }
                for g in &groups {
                    if let Some(nr) = direct {
                        sec.rules.entry(nr).or_default().add(g.clone(), action);
                    }
                    if let Some((mux, sub)) = muxed {
                        // The sub-call takes the first argument's place (libseccomp).
                        let mut c: Vec<Cond> = g.iter().filter(|c| c.index != 0).copied().collect();
                        c.insert(0, Cond { index: 0, op: Op::ScmpCmpEq, value: sub as u64, value_two: 0 });
                        sec.rules.entry(mux).or_default().add(c, action);
                    }
                }
            }
            if !known {
                logger::debug(&format!("seccomp: unknown syscall {name:?} ignored"));
            }
        }
    }

    let mut flags = 0u32;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flag::TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => flag::LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flag::SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => flag::WAIT_KILLABLE_RECV,
        };
    }
    let listener = match (s.listener_path(), notify) {
        (Some(p), true) => {
            if !p.is_absolute() {
                return Err(bad(format!("listenerPath {} is not absolute", p.display())));
            }
            flags |= flag::NEW_LISTENER;
            if flags & flag::TSYNC != 0 {
                // TSYNC's error return would clash with the listener fd without it.
                flags |= flag::TSYNC_ESRCH;
            }
            Some(Listener { path: p.clone(), metadata: s.listener_metadata().clone() })
        }
        (None, true) => return Err(bad("SCMP_ACT_NOTIFY is used but listenerPath is not set")),
        (_, false) => None,
    };
    if s.listener_metadata().is_some() && s.listener_path().is_none() {
        return Err(bad("listenerMetadata is set without listenerPath"));
    }
    if flags & flag::WAIT_KILLABLE_RECV != 0 && listener.is_none() {
        // It only changes how a notifying syscall waits; without notifications it means
        // nothing, and the kernel refuses it without a listener.
        logger::debug("seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV without SCMP_ACT_NOTIFY ignored");
        flags &= !flag::WAIT_KILLABLE_RECV;
    }

    // runc's -ENOSYS stub: only where unknown syscalls would otherwise be refused.
    let permissive = matches!(s.default_action(), Action::ScmpActAllow | Action::ScmpActLog | Action::ScmpActTrace);
    let stub = !permissive && default != RET_ERRNO | ENOSYS;
    let filter = generate(&sections, default, stub)?;
    Ok(Program { filter, flags, listener })
}

/// Where a syscall number ends up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ret(u32),
    /// Argument checks of this syscall number.
    Args(u32),
}

/// The number line of `[lo, hi]` cut into intervals `(start, outcome)` of equal outcome.
fn intervals(sec: &Section, lo: u32, hi: u32, default: u32, stub: bool) -> Vec<(u32, Outcome)> {
    let enosys_above = if stub { sec.max_nr } else { None };
    let mut v: Vec<(u32, Outcome)> = Vec::new();
    let mut push = |start: u32, o: Outcome| match v.last() {
        Some((_, last)) if *last == o && matches!(o, Outcome::Ret(_)) => {}
        _ => v.push((start, o)),
    };
    let gap = |push: &mut dyn FnMut(u32, Outcome), from: u64, to: u64| {
        if from > to {
            return;
        }
        match enosys_above.map(u64::from) {
            Some(m) if m < to => {
                if from <= m {
                    push(from as u32, Outcome::Ret(default));
                }
                push(from.max(m + 1) as u32, Outcome::Ret(RET_ERRNO | ENOSYS));
            }
            _ => push(from as u32, Outcome::Ret(default)),
        }
    };
    let mut cur = lo as u64;
    for (&nr, r) in sec.rules.range(lo..=hi) {
        if nr as u64 > cur {
            gap(&mut push, cur, nr as u64 - 1);
        }
        let o = match r.unconditional {
            Some(a) => Outcome::Ret(a),
            None => Outcome::Args(nr),
        };
        push(nr, o);
        cur = nr as u64 + 1;
    }
    gap(&mut push, cur, hi as u64);
    v
}

struct Gen<'a> {
    asm: Asm,
    default: u32,
    /// Argument-check blocks to emit after the tree of the current section.
    pending: Vec<(Label, &'a Rules, bool)>,
}

fn generate(sections: &[Section], default: u32, stub: bool) -> Result<Vec<SockFilter>> {
    let mut g = Gen { asm: Asm::default(), default, pending: Vec::new() };
    // Group the sections by the arch value the kernel reports (x86_64 and x32 share one).
    let mut audits: Vec<u32> = Vec::new();
    for s in sections {
        if !audits.contains(&s.arch.audit()) {
            audits.push(s.arch.audit());
        }
    }
    let entry: Vec<Label> = audits.iter().map(|_| g.asm.label()).collect();
    g.asm.load(bpf::OFF_ARCH);
    for (audit, l) in audits.iter().zip(&entry) {
        let next = g.asm.label();
        g.asm.jump(Cmp::Eq, *audit, *l, next);
        g.asm.bind(next);
    }
    g.asm.ret(RET_KILL_PROCESS);

    for (audit, l) in audits.iter().zip(&entry) {
        g.asm.bind(*l);
        g.asm.load(bpf::OFF_NR);
        let of = |a: Arch| sections.iter().find(|s| s.arch == a);
        if *audit == Arch::X86_64.audit() {
            // One arch value, two ABIs: the x32 bit in the number tells them apart.
            let (x64, x32) = (g.asm.label(), g.asm.label());
            g.asm.jump(Cmp::Ge, X32_SYSCALL_BIT, x32, x64);
            g.asm.bind(x64);
            match of(Arch::X86_64) {
                Some(s) => g.section(s, 0, X32_SYSCALL_BIT - 1, stub),
                None => g.asm.ret(RET_KILL_PROCESS),
            }
            g.asm.bind(x32);
            match of(Arch::X32) {
                Some(s) => g.section(s, X32_SYSCALL_BIT, u32::MAX, stub),
                None => g.asm.ret(RET_KILL_PROCESS),
            }
        } else {
            let s = sections.iter().find(|s| s.arch.audit() == *audit).expect("grouped");
            g.section(s, 0, u32::MAX, stub);
        }
    }
    g.asm
        .finish()
        .map_err(|bpf::TooLong(n)| bad(format!("the profile compiles to {n} BPF instructions, more than the kernel's {}", bpf::MAX_INSNS)))
}

impl<'a> Gen<'a> {
    /// The decision tree of one ABI (A holds the syscall number), then its argument checks.
    fn section(&mut self, sec: &'a Section, lo: u32, hi: u32, stub: bool) {
        let iv = intervals(sec, lo, hi, self.default, stub);
        let root = self.asm.label();
        self.node(sec, &iv, root);
        for (l, rules, a32) in std::mem::take(&mut self.pending) {
            self.asm.bind(l);
            self.args(rules, a32);
        }
    }

    /// Emits the subtree over `iv` at `here`.
    fn node(&mut self, sec: &'a Section, iv: &[(u32, Outcome)], here: Label) {
        if iv.len() == 1 {
            match iv[0].1 {
                Outcome::Ret(v) => {
                    self.asm.bind(here);
                    self.asm.ret(v);
                }
                // The block is emitted after the tree, at `here`: jumps go straight to it.
                // (A root that is a block is bound first thing after the empty tree.)
                Outcome::Args(nr) => self.pending.push((here, &sec.rules[&nr], sec.arch.args_32bit())),
            }
            return;
        }
        let mid = iv.len() / 2;
        let (left, right) = (self.asm.label(), self.asm.label());
        self.asm.bind(here);
        self.asm.jump(Cmp::Ge, iv[mid].0, right, left);
        self.node(sec, &iv[..mid], left);
        self.node(sec, &iv[mid..], right);
    }

    /// First chain whose conditions all hold returns its action; else the default.
    fn args(&mut self, rules: &Rules, a32: bool) {
        for (conds, action) in &rules.chains {
            let next = self.asm.label();
            let mut possible = true;
            for c in conds {
                match cond(&mut self.asm, c, a32, next) {
                    Static::Holds => {}
                    Static::Fails => {
                        possible = false;
                        break;
                    }
                    Static::Emitted => {}
                }
            }
            if possible {
                self.asm.ret(*action);
            } else {
                self.asm.ja(next);
            }
            self.asm.bind(next);
        }
        self.asm.ret(self.default);
    }
}

enum Static {
    Holds,
    Fails,
    Emitted,
}

/// Emits a check of `c` that jumps to `fail` when it does not hold and falls through when it
/// does. On ABIs with 32-bit arguments only the low word is loaded: the argument is that
/// 32-bit value, so a comparison with a value above 32 bits is decided here.
fn cond(asm: &mut Asm, c: &Cond, a32: bool, fail: Label) -> Static {
    let (hi, lo) = ((c.value >> 32) as u32, c.value as u32);
    let (dhi, dlo) = ((c.value_two >> 32) as u32, c.value_two as u32);
    let lo_off = bpf::off_arg_lo(c.index);
    let hi_off = bpf::off_arg_hi(c.index);
    if a32 {
        let decided = match c.op {
            Op::ScmpCmpEq | Op::ScmpCmpGt | Op::ScmpCmpGe if hi != 0 => Some(false),
            Op::ScmpCmpNe | Op::ScmpCmpLt | Op::ScmpCmpLe if hi != 0 => Some(true),
            Op::ScmpCmpMaskedEq if dhi != 0 => Some(false),
            _ => None,
        };
        if let Some(d) = decided {
            return if d { Static::Holds } else { Static::Fails };
        }
        let pass = asm.label();
        asm.load(lo_off);
        match c.op {
            Op::ScmpCmpEq => asm.jump(Cmp::Eq, lo, pass, fail),
            Op::ScmpCmpNe => asm.jump(Cmp::Eq, lo, fail, pass),
            Op::ScmpCmpGt => asm.jump(Cmp::Gt, lo, pass, fail),
            Op::ScmpCmpGe => asm.jump(Cmp::Ge, lo, pass, fail),
            Op::ScmpCmpLt => asm.jump(Cmp::Ge, lo, fail, pass),
            Op::ScmpCmpLe => asm.jump(Cmp::Gt, lo, fail, pass),
            Op::ScmpCmpMaskedEq => {
                asm.and(lo);
                asm.jump(Cmp::Eq, dlo, pass, fail)
            }
        }
        asm.bind(pass);
        return Static::Emitted;
    }
    // 64-bit: the high words decide unless they are equal, then the low words.
    let (pass, l1) = (asm.label(), asm.label());
    asm.load(hi_off);
    match c.op {
        Op::ScmpCmpEq => {
            asm.jump(Cmp::Eq, hi, l1, fail);
            asm.bind(l1);
            asm.load(lo_off);
            asm.jump(Cmp::Eq, lo, pass, fail);
        }
        Op::ScmpCmpNe => {
            asm.jump(Cmp::Eq, hi, l1, pass);
            asm.bind(l1);
            asm.load(lo_off);
            asm.jump(Cmp::Eq, lo, fail, pass);
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe | Op::ScmpCmpLt | Op::ScmpCmpLe => {
            // GT/GE hold when hi > vhi, or hi == vhi and lo > (>=) vlo; LT/LE are their negation.
            let negate = matches!(c.op, Op::ScmpCmpLt | Op::ScmpCmpLe);
            let (yes, no) = if negate { (fail, pass) } else { (pass, fail) };
            let l2 = asm.label();
            asm.jump(Cmp::Gt, hi, yes, l1);
            asm.bind(l1);
            asm.jump(Cmp::Eq, hi, l2, no);
            asm.bind(l2);
            asm.load(lo_off);
            let lo_cmp = if matches!(c.op, Op::ScmpCmpGt | Op::ScmpCmpLe) { Cmp::Gt } else { Cmp::Ge };
            asm.jump(lo_cmp, lo, yes, no);
        }
        Op::ScmpCmpMaskedEq => {
            asm.and(hi);
            asm.jump(Cmp::Eq, dhi, l1, fail);
            asm.bind(l1);
            asm.load(lo_off);
            asm.and(lo);
            asm.jump(Cmp::Eq, dlo, pass, fail);
        }
    }
    asm.bind(pass);
    Static::Emitted
}
