//! Classic BPF as seccomp runs it: the instructions berth emits and an assembler that
//! resolves symbolic jumps.
//!
//! A conditional jump has 8-bit offsets, so a target more than 255 instructions ahead is
//! reached through a trampoline (`ja`, 32-bit offset) placed right after the jump; the
//! assembler inserts those until every jump fits.

/// `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcodes (linux/bpf_common.h).
pub const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub const ALU_AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub const JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
pub const JMP_JEQ_K: u16 = 0x15;
pub const JMP_JGT_K: u16 = 0x25;
pub const JMP_JGE_K: u16 = 0x35;
pub const JMP_JSET_K: u16 = 0x45;
pub const RET_K: u16 = 0x06;

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

/// Offsets into `struct seccomp_data` (little-endian: an argument's low word first).
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
pub fn off_arg_lo(i: u8) -> u32 {
    16 + 8 * i as u32
}
pub fn off_arg_hi(i: u8) -> u32 {
    off_arg_lo(i) + 4
}

/// A jump target, resolved by [`Asm::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Gt,
    Ge,
    Set,
}

#[derive(Clone, Copy, Debug)]
enum Insn {
    Load(u32),
    And(u32),
    Jump { cmp: Cmp, k: u32, t: Label, f: Label },
    Ja(Label),
    Ret(u32),
    Bind(Label),
}

/// A program under construction: straight-line code with symbolic jumps.
#[derive(Default)]
pub struct Asm {
    code: Vec<Insn>,
    labels: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TooLong(pub usize);

impl Asm {
    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    /// Places `l` at the next instruction.
    pub fn bind(&mut self, l: Label) {
        self.code.push(Insn::Bind(l));
    }
    pub fn load(&mut self, off: u32) {
        self.code.push(Insn::Load(off));
    }
    pub fn and(&mut self, k: u32) {
        self.code.push(Insn::And(k));
    }
    /// `if (A <cmp> k) goto t else goto f`.
    pub fn jump(&mut self, cmp: Cmp, k: u32, t: Label, f: Label) {
        self.code.push(Insn::Jump { cmp, k, t, f });
    }
    pub fn ja(&mut self, l: Label) {
        self.code.push(Insn::Ja(l));
    }
    pub fn ret(&mut self, v: u32) {
        self.code.push(Insn::Ret(v));
    }

    /// Resolves every jump, adding trampolines where an 8-bit offset does not reach.
    pub fn finish(mut self) -> Result<Vec<SockFilter>, TooLong> {
        loop {
            let (pos, at) = self.layout();
            if at.len() > MAX_INSNS {
                return Err(TooLong(at.len()));
            }
            // Conditional jumps whose target is too far get trampolines. Only the jump
            // itself reaches the code right after it (both of its branches are explicit),
            // so inserting there changes no other path. Inserting moves targets further
            // away, so repeat until nothing is too far.
            let far: Vec<(usize, bool, bool)> = at
                .iter()
                .enumerate()
                .filter_map(|(pc, &ci)| match self.code[ci] {
                    Insn::Jump { t, f, .. } => {
                        let too_far = |l: Label| pos[l.0] != usize::MAX && pos[l.0] - pc - 1 > 255;
                        (too_far(t) || too_far(f)).then_some((ci, too_far(t), too_far(f)))
                    }
                    _ => None,
                })
                .collect();
            if far.is_empty() {
                return Ok(self.emit(&pos, &at));
            }
            // One rebuild of the code with every trampoline in place (no repeated shifting).
            let mut code = Vec::with_capacity(self.code.len() + 2 * far.len());
            let mut far = far.into_iter().peekable();
            for ci in 0..self.code.len() {
                match far.peek() {
                    Some(&(fci, ft, ff)) if fci == ci => {
                        far.next();
                        let Insn::Jump { cmp, k, t, f } = self.code[ci] else { unreachable!() };
                        let mut tramp = Vec::new();
                        let nt = if ft { self.trampoline(t, &mut tramp) } else { t };
                        let nf = if ff { self.trampoline(f, &mut tramp) } else { f };
                        code.push(Insn::Jump { cmp, k, t: nt, f: nf });
                        code.extend(tramp);
                    }
                    _ => code.push(self.code[ci]),
                }
            }
            self.code = code;
        }
    }

    fn trampoline(&mut self, to: Label, out: &mut Vec<Insn>) -> Label {
        let l = self.label();
        out.push(Insn::Bind(l));
        out.push(Insn::Ja(to));
        l
    }

    /// (position of each label, code index of each real instruction).
    fn layout(&self) -> (Vec<usize>, Vec<usize>) {
        let mut pos = vec![usize::MAX; self.labels];
        let mut at = Vec::with_capacity(self.code.len());
        for (i, insn) in self.code.iter().enumerate() {
            match insn {
                Insn::Bind(l) => pos[l.0] = at.len(),
                _ => at.push(i),
            }
        }
        (pos, at)
    }

    fn emit(&self, pos: &[usize], at: &[usize]) -> Vec<SockFilter> {
        let ins = |code, jt, jf, k| SockFilter { code, jt, jf, k };
        at.iter()
            .enumerate()
            .map(|(pc, &ci)| {
                let rel = |l: Label| {
                    let target = pos[l.0];
                    assert!(target != usize::MAX, "jump to a label never bound");
                    assert!(target > pc, "backward jump");
                    target - pc - 1
                };
                match self.code[ci] {
                    Insn::Load(off) => ins(LD_W_ABS, 0, 0, off),
                    Insn::And(k) => ins(ALU_AND_K, 0, 0, k),
                    Insn::Ret(v) => ins(RET_K, 0, 0, v),
                    Insn::Ja(l) => ins(JMP_JA, 0, 0, rel(l) as u32),
                    Insn::Jump { cmp, k, t, f } => {
                        let code = match cmp {
                            Cmp::Eq => JMP_JEQ_K,
                            Cmp::Gt => JMP_JGT_K,
                            Cmp::Ge => JMP_JGE_K,
                            Cmp::Set => JMP_JSET_K,
                        };
                        ins(code, rel(t) as u8, rel(f) as u8, k)
                    }
                    Insn::Bind(_) => unreachable!(),
                }
            })
            .collect()
    }
}

/// A classic-BPF interpreter for the instructions above, to test programs without the
/// kernel: runs `prog` on a `seccomp_data` and returns the filter's verdict.
#[cfg(test)]
pub fn run(prog: &[SockFilter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    run_counted(prog, nr, arch, args).0
}

/// [`run`], also returning how many instructions ran.
#[cfg(test)]
pub fn run_counted(prog: &[SockFilter], nr: u32, arch: u32, args: [u64; 6]) -> (u32, usize) {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut a, mut pc) = (0u32, 0usize);
    for step in 1..=prog.len() {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => {
                let o = i.k as usize;
                assert!(o.is_multiple_of(4) && o + 4 <= 64, "bad load offset {o}");
                a = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
            }
            ALU_AND_K => a &= i.k,
            JMP_JA => pc += i.k as usize,
            RET_K => return (i.k, step),
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K | JMP_JSET_K => {
                let taken = match i.code {
                    JMP_JEQ_K => a == i.k,
                    JMP_JGT_K => a > i.k,
                    JMP_JGE_K => a >= i.k,
                    _ => a & i.k != 0,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            c => panic!("unknown opcode {c:#x}"),
        }
        assert!(pc < prog.len(), "ran off the end of the program");
    }
    panic!("program did not return");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_near_jumps() {
        let mut a = Asm::default();
        let (yes, no) = (a.label(), a.label());
        a.load(OFF_NR);
        a.jump(Cmp::Eq, 7, yes, no);
        a.bind(no);
        a.ret(0);
        a.bind(yes);
        a.ret(1);
        let p = a.finish().unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[1], SockFilter { code: JMP_JEQ_K, jt: 1, jf: 0, k: 7 });
        assert_eq!(run(&p, 7, 0, [0; 6]), 1);
        assert_eq!(run(&p, 8, 0, [0; 6]), 0);
    }

    #[test]
    fn far_jumps_get_trampolines() {
        let mut a = Asm::default();
        let (far, near) = (a.label(), a.label());
        a.load(OFF_NR);
        a.jump(Cmp::Ge, 100, far, near);
        a.bind(near);
        for i in 0..300 {
            let (hit, miss) = (a.label(), a.label());
            a.jump(Cmp::Eq, i, hit, miss);
            a.bind(hit);
            a.ret(i + 1000);
            a.bind(miss);
        }
        a.ret(1);
        a.bind(far);
        a.ret(2);
        let p = a.finish().unwrap();
        assert!(p.iter().any(|i| i.code == JMP_JA), "a trampoline was needed");
        assert_eq!(run(&p, 150, 0, [0; 6]), 2);
        assert_eq!(run(&p, 42, 0, [0; 6]), 1042);
        assert_eq!(run(&p, 99, 0, [0; 6]), 1099);
    }

    #[test]
    fn too_long_is_an_error() {
        let mut a = Asm::default();
        for _ in 0..=MAX_INSNS {
            a.ret(0);
        }
        assert!(matches!(a.finish(), Err(TooLong(_))));
    }
}
