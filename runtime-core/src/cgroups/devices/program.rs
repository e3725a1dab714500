//! Device rules compiled to a `BPF_PROG_TYPE_CGROUP_DEVICE` program.
//!
//! The kernel calls the program with `struct bpf_cgroup_dev_ctx { u32
//! access_type; u32 major; u32 minor; }` in r1, where `access_type` is
//! `(access << 16) | type` (type 1 block, 2 char; access bits mknod 1, read 2,
//! write 4, possibly several at once); it returns 1 to allow, 0 to deny.
//!
//! The program decides each requested access bit on its own, exactly like
//! [`super::decide`]: for each bit it walks the rules that name the bit from
//! the last to the first and takes the first that matches. A request is
//! allowed only when every bit it asks for is. Once a rule matches every
//! device, the earlier rules cannot be reached and are not emitted (the
//! verifier refuses unreachable instructions).

use super::{Kind, Rule, MKNOD, READ, WRITE};

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub fn to_bytes(self) -> [u8; 8] {
        let o = self.off.to_le_bytes();
        let i = self.imm.to_le_bytes();
        [self.code, self.regs, o[0], o[1], i[0], i[1], i[2], i[3]]
    }
}

// Opcodes (linux/bpf.h, linux/bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU64_MOV_K: u8 = 0xb7;
const JMP_JA: u8 = 0x05;
const JMP_JNE_K: u8 = 0x55;
const JMP_JSET_K: u8 = 0x45;
const JMP_EXIT: u8 = 0x95;

const R0: u8 = 0;
const R1: u8 = 1;
/// Device type (1 block, 2 char).
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// A tiny assembler: forward jumps to labels, patched at the end.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    /// (instruction index, label) of each jump to patch.
    fixups: Vec<(usize, usize)>,
    /// Label -> instruction index it stands before.
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn emit(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            regs: (src << 4) | dst,
            off,
            imm,
        });
    }

    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn bind(&mut self, label: usize) {
        self.labels[label] = Some(self.insns.len());
    }

    /// A conditional (or, with `JMP_JA`, unconditional) jump to `label`.
    fn jump(&mut self, code: u8, dst: u8, imm: i32, label: usize) {
        self.fixups.push((self.insns.len(), label));
        self.emit(code, dst, 0, 0, imm);
    }

    fn ret(&mut self, v: i32) {
        self.emit(ALU64_MOV_K, R0, 0, 0, v);
        self.emit(JMP_EXIT, 0, 0, 0, 0);
    }

    fn finish(mut self) -> Vec<Insn> {
        for (at, label) in &self.fixups {
            let target = self.labels[*label].expect("every label is bound");
            self.insns[*at].off = (target as i64 - *at as i64 - 1) as i16;
        }
        self.insns
    }
}

/// Compiles `rules` (last match wins) into the program's instructions.
pub fn compile(rules: &[Rule]) -> Vec<Insn> {
    let mut a = Asm::default();
    // Unpack the context once.
    a.emit(LDX_MEM_W, R_TYPE, R1, 0, 0);
    a.emit(ALU32_AND_K, R_TYPE, 0, 0, 0xffff);
    a.emit(LDX_MEM_W, R_ACCESS, R1, 0, 0);
    a.emit(ALU32_RSH_K, R_ACCESS, 0, 0, 16);
    a.emit(LDX_MEM_W, R_MAJOR, R1, 4, 0);
    a.emit(LDX_MEM_W, R_MINOR, R1, 8, 0);
    for bit in [MKNOD, READ, WRITE] {
        let bit_allowed = a.label();
        let asked = a.label();
        // Not asked for: nothing to decide for this bit.
        a.jump(JMP_JSET_K, R_ACCESS, bit as i32, asked);
        a.jump(JMP_JA, 0, 0, bit_allowed);
        a.bind(asked);
        let mut decided = false;
        for r in rules.iter().rev().filter(|r| r.access & bit != 0) {
            let next = a.label();
            let checks = [
                match r.kind {
                    Kind::All => None,
                    Kind::Block => Some((R_TYPE, DEV_BLOCK)),
                    Kind::Char => Some((R_TYPE, DEV_CHAR)),
                },
                r.major.map(|m| (R_MAJOR, m as i32)),
                r.minor.map(|m| (R_MINOR, m as i32)),
            ];
            let conditional = checks.iter().any(Option::is_some);
            for (reg, v) in checks.into_iter().flatten() {
                a.jump(JMP_JNE_K, reg, v, next);
            }
            if r.allow {
                a.jump(JMP_JA, 0, 0, bit_allowed);
            } else {
                a.ret(0);
            }
            if !conditional {
                // Matches everything: the earlier rules are unreachable.
                decided = true;
                break;
            }
            a.bind(next);
        }
        if !decided {
            // No rule names this device for this bit: deny.
            a.ret(0);
        }
        a.bind(bit_allowed);
    }
    a.ret(1);
    a.finish()
}

/// The program as the bytes `bpf(BPF_PROG_LOAD)` takes.
pub fn bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::{decide, effective, tests::spec_rules, Kind, RWM};
    use super::*;
    use serde_json::json;

    /// Runs the program in rbpf's interpreter on one access.
    fn run(prog: &[u8], kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        let t: u32 = match kind {
            Kind::Block => 1,
            Kind::Char => 2,
            Kind::All => unreachable!(),
        };
        let mut ctx = Vec::new();
        ctx.extend_from_slice(&((access as u32) << 16 | t).to_le_bytes());
        ctx.extend_from_slice(&major.to_le_bytes());
        ctx.extend_from_slice(&minor.to_le_bytes());
        let vm = rbpf::EbpfVmRaw::new(Some(prog)).unwrap();
        match vm.execute_program(&mut ctx).unwrap() {
            0 => false,
            1 => true,
            v => panic!("program returned {v}"),
        }
    }

    /// Every access combination on a spread of devices: the program and the
    /// user-space decision agree; returns the program for further checks.
    fn agrees(rules: &[Rule]) -> Vec<u8> {
        let insns = compile(rules);
        check_reachable(&insns);
        let prog = bytes(&insns);
        let devices = [
            (1, 3),
            (1, 5),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
            (136, 0),
            (136, 4),
            (8, 0),
            (8, 1),
            (10, 200),
            (4, 1),
            (254, 0),
            (7, 7),
        ];
        for kind in [Kind::Char, Kind::Block] {
            for (maj, min) in devices {
                for access in 1..=RWM {
                    assert_eq!(
                        run(&prog, kind, maj, min, access),
                        decide(rules, kind, maj, min, access),
                        "{kind:?} {maj}:{min} access {access:#b} with {rules:?}"
                    );
                }
            }
        }
        prog
    }

    /// The verifier refuses instructions no path reaches, and jumps out of
    /// the program: walk every path.
    fn check_reachable(insns: &[Insn]) {
        let mut seen = vec![false; insns.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            assert!(pc < insns.len(), "jump out of the program");
            if std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            let i = insns[pc];
            let target = (pc as i64 + 1 + i.off as i64) as usize;
            match i.code {
                JMP_EXIT => {}
                JMP_JA => todo.push(target),
                JMP_JNE_K | JMP_JSET_K => todo.extend([pc + 1, target]),
                _ => todo.push(pc + 1),
            }
        }
        assert!(seen.iter().all(|s| *s), "unreachable instructions");
    }

    fn allowed(prog: &[u8], kind: Kind, maj: u32, min: u32, access: &str) -> bool {
        let mut a = 0;
        for c in access.chars() {
            a |= match c {
                'r' => READ,
                'w' => WRITE,
                _ => MKNOD,
            };
        }
        run(prog, kind, maj, min, a)
    }

    /// What ctr's default spec and the CRI send: deny all, then an allow list.
    #[test]
    fn containerd_default_and_cri_rules() {
        let ctr = spec_rules(json!([{"allow": false, "access": "rwm"}]));
        let cri = spec_rules(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            {"allow": true, "type": "b", "major": 8, "minor": 1, "access": "r"}
        ]));
        for rules in [ctr, cri.clone()] {
            let p = agrees(&effective(&rules).unwrap());
            for (maj, min) in [
                (1, 3),
                (1, 5),
                (1, 7),
                (1, 8),
                (1, 9),
                (5, 0),
                (5, 2),
                (136, 3),
            ] {
                assert!(allowed(&p, Kind::Char, maj, min, "rw"), "{maj}:{min}");
            }
            // The host's console, as runc: not in the baseline.
            assert!(!allowed(&p, Kind::Char, 5, 1, "w"));
            assert!(allowed(&p, Kind::Block, 8, 0, "m"));
            assert!(!allowed(&p, Kind::Block, 8, 0, "r"));
            assert!(!allowed(&p, Kind::Block, 8, 0, "mr"));
            assert!(!allowed(&p, Kind::Char, 4, 0, "w"));
            // A char rule does not allow the block device of the same number.
            assert!(!allowed(&p, Kind::Block, 1, 3, "r"));
        }
        let p = agrees(&effective(&cri).unwrap());
        assert!(allowed(&p, Kind::Char, 10, 229, "rw"));
        assert!(allowed(&p, Kind::Block, 8, 1, "r"));
        assert!(!allowed(&p, Kind::Block, 8, 1, "w"));
        assert!(!allowed(&p, Kind::Block, 8, 1, "rw"));
    }

    /// `--privileged`: allow `a *:* rwm` after the deny all.
    #[test]
    fn privileged_allows_everything() {
        let rules = effective(&spec_rules(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "access": "rwm"}
        ])))
        .unwrap();
        let p = agrees(&rules);
        assert!(allowed(&p, Kind::Block, 8, 0, "rwm"));
        assert!(allowed(&p, Kind::Char, 4, 1, "rw"));
    }

    #[test]
    fn wildcards_type_a_and_rule_order() {
        // A wildcard major or minor.
        let p = agrees(
            &effective(&spec_rules(json!([
                {"allow": true, "type": "b", "major": 8, "access": "r"},
                {"allow": true, "type": "c", "minor": 7, "access": "w"},
                {"allow": true, "type": "b", "major": -1, "minor": 16, "access": "rw"}
            ])))
            .unwrap(),
        );
        assert!(allowed(&p, Kind::Block, 8, 0, "r") && allowed(&p, Kind::Block, 8, 5, "r"));
        assert!(!allowed(&p, Kind::Block, 8, 5, "w"));
        assert!(allowed(&p, Kind::Char, 200, 7, "w") && !allowed(&p, Kind::Char, 200, 7, "r"));
        assert!(allowed(&p, Kind::Block, 253, 16, "rw") && !allowed(&p, Kind::Block, 253, 17, "r"));
        // Type a with a number: both block and char devices of that number.
        let p = agrees(
            &effective(&spec_rules(json!([
                {"allow": true, "type": "a", "major": 7, "minor": 0, "access": "rw"}
            ])))
            .unwrap(),
        );
        assert!(allowed(&p, Kind::Block, 7, 0, "rw") && allowed(&p, Kind::Char, 7, 0, "rw"));
        assert!(!allowed(&p, Kind::Block, 7, 1, "r"));
        // Order: the last matching rule wins, bit by bit.
        let later_deny = spec_rules(json!([
            {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "w"}
        ]));
        let p = agrees(&effective(&later_deny).unwrap());
        assert!(allowed(&p, Kind::Block, 8, 0, "r"));
        assert!(!allowed(&p, Kind::Block, 8, 0, "w"));
        // O_RDWR asks for both at once: denied, the write bit is.
        assert!(!allowed(&p, Kind::Block, 8, 0, "rw"));
        let later_allow = spec_rules(json!([
            {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "b", "major": 8, "access": "rw"}
        ]));
        let p = agrees(&effective(&later_allow).unwrap());
        assert!(allowed(&p, Kind::Block, 8, 0, "rw"));
        // A later deny all (and a later allow all) overrides everything before it,
        // except the always-allowed list that comes after the spec's rules.
        let p = agrees(
            &effective(&spec_rules(json!([
                {"allow": true, "access": "rwm"},
                {"allow": false, "type": "a", "access": "rwm"}
            ])))
            .unwrap(),
        );
        assert!(!allowed(&p, Kind::Block, 8, 0, "r"));
        assert!(allowed(&p, Kind::Char, 1, 3, "rw"));
        // Without the allow list too (a raw list), to cover an unconditional deny last.
        agrees(&[super::super::DENY_ALL]);
        agrees(&[]);
    }

    #[test]
    fn program_shape() {
        let insns = compile(&effective(&[]).unwrap());
        // Context unpacking first, a return of 1 last.
        assert_eq!(insns[0].code, LDX_MEM_W);
        assert_eq!(insns[insns.len() - 1].code, JMP_EXIT);
        assert_eq!(insns[insns.len() - 2].imm, 1);
        // Well under the kernel's limit for an unprivileged program (4096).
        assert!(insns.len() < 200, "{} instructions", insns.len());
        assert_eq!(bytes(&insns).len(), insns.len() * 8);
    }
}
