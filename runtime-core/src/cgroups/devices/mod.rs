//! The device controller: which device nodes the container may open (`r`,
//! `w`) or create (`m`).
//!
//! One rule list, built from the spec the way runc builds it, drives both
//! kernels' mechanisms:
//! - cgroup v1: lines written to `devices.deny` / `devices.allow` ([`v1`]);
//! - cgroup v2: a `BPF_PROG_TYPE_CGROUP_DEVICE` program compiled from the list
//!   ([`program`]) and attached to the container's cgroup ([`bpf`]). It is
//!   attached wherever the container has a v2 cgroup, hybrid hosts included:
//!   the kernel runs the program of a task's v2 cgroup in addition to the v1
//!   controller's check.
//!
//! The baseline applies even when the spec lists no rules: without it a
//! container could `mknod` the host's disk and read it. As in runc, the list
//! is "deny everything", then the spec's rules in order, then the devices
//! every container needs ([`ALWAYS_ALLOWED`]); the last matching rule wins.

pub mod bpf;
pub mod program;
mod v1;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// What a rule's type matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `a`: block and character devices.
    All,
    Block,
    Char,
}

/// Access bits, as the kernel's `BPF_DEVCG_ACC_*` values.
pub const MKNOD: u8 = 1;
pub const READ: u8 = 2;
pub const WRITE: u8 = 4;
pub const RWM: u8 = MKNOD | READ | WRITE;

/// One device rule; `None` major/minor is the `*` wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Rule {
    const fn allow(kind: Kind, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// True when the rule matches every device of every type.
    pub fn is_everything(&self) -> bool {
        self.kind == Kind::All && self.major.is_none() && self.minor.is_none()
    }
}

const DENY_ALL: Rule = Rule {
    allow: false,
    kind: Kind::All,
    major: None,
    minor: None,
    access: RWM,
};

/// The devices every container may use whatever its rules (runc's allow
/// list): `mknod` of any node (opening it is what the rules decide), the
/// default nodes (null, zero, full, random, urandom, tty), /dev/ptmx and the
/// pty slaves (136:*), and /dev/net/tun: runc dropped it in 1.2.0 and put it
/// back in 1.2.4 because workloads rely on it (runc#4555). Not 5:1, as in
/// runc: a container's /dev/console is a bind of its pty (136:*), and allowing
/// 5:1 would let one with CAP_MKNOD write to the host's console.
pub const ALWAYS_ALLOWED: &[Rule] = &[
    Rule::allow(Kind::Char, None, None, MKNOD),
    Rule::allow(Kind::Block, None, None, MKNOD),
    Rule::allow(Kind::Char, Some(1), Some(3), RWM),
    Rule::allow(Kind::Char, Some(1), Some(8), RWM),
    Rule::allow(Kind::Char, Some(1), Some(7), RWM),
    Rule::allow(Kind::Char, Some(5), Some(0), RWM),
    Rule::allow(Kind::Char, Some(1), Some(5), RWM),
    Rule::allow(Kind::Char, Some(1), Some(9), RWM),
    Rule::allow(Kind::Char, Some(136), None, RWM),
    Rule::allow(Kind::Char, Some(5), Some(2), RWM),
    Rule::allow(Kind::Char, Some(10), Some(200), RWM),
];

fn field(i: usize) -> String {
    format!("linux.resources.devices[{i}]")
}

/// `linux.resources.devices[i]` as a [`Rule`], or a refusal naming it.
fn parse(i: usize, r: &LinuxDeviceCgroup) -> Result<Rule> {
    let kind = match r.typ() {
        None | Some(LinuxDeviceType::A) => Kind::All,
        Some(LinuxDeviceType::B) => Kind::Block,
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Kind::Char,
        Some(LinuxDeviceType::P) => {
            return Err(Error::unsupported(
                format!("{}.type", field(i)),
                "\"p\" (FIFO) is not a device the device controller checks: use a, b or c",
            ))
        }
    };
    let number = |v: Option<i64>, name: &str| -> Result<Option<u32>> {
        match v {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                Error::unsupported(
                    format!("{}.{name}", field(i)),
                    format!("{n} is not a device number"),
                )
            }),
        }
    };
    let mut access = 0;
    for c in r.access().as_deref().unwrap_or("").chars() {
        access |= match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => {
                return Err(Error::unsupported(
                    format!("{}.access", field(i)),
                    format!("{c:?} is not one of r, w, m"),
                ))
            }
        };
    }
    Ok(Rule {
        allow: r.allow(),
        kind,
        major: number(r.major(), "major")?,
        minor: number(r.minor(), "minor")?,
        // An empty access is all of them (as runc reads it).
        access: if access == 0 { RWM } else { access },
    })
}

/// The rule list the kernel gets: deny all, the spec's rules in order, then
/// [`ALWAYS_ALLOWED`]. The last matching rule wins.
pub fn effective(spec_rules: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut out = vec![DENY_ALL];
    for (i, r) in spec_rules.iter().enumerate() {
        out.push(parse(i, r)?);
    }
    out.extend_from_slice(ALWAYS_ALLOWED);
    Ok(out)
}

/// The decision the rules make for one access, in user space: what the
/// program and the v1 controller must agree with. `access` may combine bits
/// (an `open(O_RDWR)` asks for read and write at once): each bit is decided
/// by the last rule that matches the device and names that bit.
pub fn decide(rules: &[Rule], kind: Kind, major: u32, minor: u32, access: u8) -> bool {
    [MKNOD, READ, WRITE]
        .into_iter()
        .filter(|b| access & b != 0)
        .all(|bit| {
            rules
                .iter()
                .rev()
                .find(|r| {
                    r.access & bit != 0
                        && (r.kind == Kind::All || r.kind == kind)
                        && r.major.is_none_or(|m| m == major)
                        && r.minor.is_none_or(|m| m == minor)
                })
                .is_some_and(|r| r.allow)
        })
}

impl super::Cgroup {
    /// Applies `linux.resources.devices` (with the baseline around it) to the
    /// v1 devices cgroup and as a program on the v2 cgroup, wherever each
    /// exists. A host with neither cannot isolate devices: refused.
    pub(super) fn devices(&self, spec_rules: &[LinuxDeviceCgroup]) -> Result<()> {
        let rules = effective(spec_rules)?;
        let v1 = self.dir_of("devices");
        if let Some(d) = v1 {
            v1::write_rules(d, &rules)?;
        }
        match self.unified() {
            Some(d) if self.bpf => bpf::install(d, &rules),
            Some(_) => Ok(()),
            None if v1.is_some() => Ok(()),
            None => Err(Error::unsupported(
                "linux.resources.devices",
                "this host has neither a v1 devices hierarchy nor cgroup v2 to isolate devices with",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn spec_rules(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn baseline_without_spec_rules() {
        let r = effective(&[]).unwrap();
        assert_eq!(r[0], DENY_ALL);
        assert!(decide(&r, Kind::Char, 1, 3, READ | WRITE));
        assert!(decide(&r, Kind::Char, 136, 7, READ | WRITE));
        assert!(decide(&r, Kind::Block, 8, 0, MKNOD));
        assert!(!decide(&r, Kind::Block, 8, 0, READ));
        assert!(!decide(&r, Kind::Block, 8, 0, MKNOD | READ));
        assert!(!decide(&r, Kind::Char, 4, 1, WRITE));
    }

    #[test]
    fn refusals_name_the_rule() {
        for (v, want) in [
            (json!([{"allow": true, "type": "p"}]), "devices[0].type"),
            (
                json!([{"allow": true}, {"allow": true, "access": "rx"}]),
                "devices[1].access",
            ),
            (
                json!([{"allow": true, "type": "c", "major": 4294967296i64}]),
                "devices[0].major",
            ),
        ] {
            let e = effective(&spec_rules(v)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
