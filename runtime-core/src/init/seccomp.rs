//! `linux.seccomp` through libseccomp (the `libseccomp` crate over Debian's
//! libseccomp2, the library runc and crun use too): it knows every syscall name
//! and number on every architecture, argument comparisons and the multiplexed
//! syscalls (socketcall, ipc) that a hand-written BPF compiler would get wrong.
//!
//! The filter is loaded as late as possible, right before `execve` (with
//! `noNewPrivileges`), so our own set-up is never subject to it. Without NNP,
//! loading needs CAP_SYS_ADMIN, so it happens before capabilities are dropped
//! (as runc does) and the profile must allow the rest of set-up.

use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterAttr, ScmpFilterContext,
    ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as A, LinuxSeccompFilterFlag as F, LinuxSeccompOperator as Op,
};

use crate::error::{Error, Result};

fn err(field: &str, e: impl std::fmt::Display) -> Error {
    Error::Init(format!("linux.seccomp{field}: {e}"))
}

fn action(a: A, errno: Option<u32>, field: &str) -> Result<ScmpAction> {
    Ok(match a {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(libc::EPERM as u32) as i32),
        A::ScmpActTrace => ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32) as u16),
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActNotify => {
            return Err(Error::unsupported(
                format!("linux.seccomp{field}"),
                "SCMP_ACT_NOTIFY needs a listenerPath agent, which is not supported",
            ))
        }
    })
}

fn compare(op: Op, value: u64, value_two: Option<u64>) -> ScmpCompareOp {
    match op {
        Op::ScmpCmpNe => ScmpCompareOp::NotEqual,
        Op::ScmpCmpLt => ScmpCompareOp::Less,
        Op::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        Op::ScmpCmpEq => ScmpCompareOp::Equal,
        Op::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        Op::ScmpCmpGt => ScmpCompareOp::Greater,
        // OCI: value is the mask, valueTwo the datum.
        Op::ScmpCmpMaskedEq => {
            let _ = value_two;
            ScmpCompareOp::MaskedEqual(value)
        }
    }
}

/// Builds the filter (nothing is loaded yet): every error names the field.
pub fn build(s: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    if s.listener_metadata().is_some() && s.listener_path().is_none() {
        return Err(Error::unsupported(
            "linux.seccomp.listenerMetadata",
            "only meaningful with listenerPath, which is not supported",
        ));
    }
    if s.listener_path().is_some() {
        return Err(Error::unsupported(
            "linux.seccomp.listenerPath",
            "seccomp notify agents are not supported",
        ));
    }
    let default = action(s.default_action(), s.default_errno_ret(), ".defaultAction")?;
    let mut f = ScmpFilterContext::new(default).map_err(|e| err(".defaultAction", e))?;
    for arch in s.architectures().iter().flatten() {
        let name = format!("SCMP_{}", arch.to_string().trim_start_matches("SCMP_"));
        let a =
            ScmpArch::from_str(&name).map_err(|e| err(&format!(".architectures[{arch:?}]"), e))?;
        f.add_arch(a)
            .map_err(|e| err(&format!(".architectures[{arch:?}]"), e))?;
    }
    for flag in s.flags().iter().flatten() {
        match flag {
            F::SeccompFilterFlagLog => f.set_filter_attr(ScmpFilterAttr::CtlLog, 1),
            F::SeccompFilterFlagTsync => f.set_filter_attr(ScmpFilterAttr::CtlTsync, 1),
            F::SeccompFilterFlagSpecAllow => f.set_filter_attr(ScmpFilterAttr::CtlSsb, 1),
            F::SeccompFilterFlagWaitKillableRecv => {
                f.set_filter_attr(ScmpFilterAttr::CtlWaitkill, 1)
            }
        }
        .map_err(|e| err(&format!(".flags[{flag:?}]"), e))?;
    }
    // We set NNP ourselves when the spec asks; libseccomp must not force it.
    f.set_ctl_nnp(false).map_err(|e| err("", e))?;
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let field = format!(".syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret(), &field)?;
        if act == default {
            continue; // libseccomp refuses rules equal to the default action
        }
        let conds: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let datum = if a.op() == Op::ScmpCmpMaskedEq {
                    a.value_two().unwrap_or(0)
                } else {
                    a.value()
                };
                ScmpArgCompare::new(
                    a.index() as u32,
                    compare(a.op(), a.value(), a.value_two()),
                    datum,
                )
            })
            .collect();
        for name in rule.names() {
            // A syscall this libseccomp/arch does not know is skipped, as runc does.
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let r = if conds.is_empty() {
                f.add_rule(act, sc)
            } else {
                f.add_rule_conditional(act, sc, &conds)
            };
            r.map_err(|e| err(&format!("{field} {name}"), e))?;
        }
    }
    Ok(f)
}

pub fn load(f: &ScmpFilterContext) -> Result<()> {
    f.load().map_err(|e| err("", format!("load filter: {e}")))
}
