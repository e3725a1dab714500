//! Refusals of `process` values the kernel would misread or refuse late,
//! checked before any syscall (for the init at create, for execs at exec).

use oci_spec::runtime::{PosixRlimitType, Process};

use crate::error::{Error, Result};

/// `(uid_t)-1`: to `setresuid`/`setresgid` it means "leave this id as it is",
/// so a process asking for it would keep running as root.
pub const INVALID_ID: u32 = u32::MAX;

/// The kernel's limit on one argument or environment string, NUL included
/// (`MAX_ARG_STRLEN`: 32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// The floor of the kernel's limit on all of them (`ARG_MAX`: 32 pages).
const ARG_MAX: u64 = 32 * 4096;

/// The ceiling: three quarters of the default 8 MiB stack (`_STK_LIM / 4 * 3`).
const ARG_CEILING: u64 = 8 * 1024 * 1024 / 4 * 3;

/// Refuses a uid, gid or additional gid of 4294967295 (runc refuses it too).
pub fn check_user(p: &Process, prefix: &str) -> Result<()> {
    let user = p.user();
    let why = "4294967295 is (uid_t)-1, which set*id(2) takes as \"leave unchanged\": \
               the process would keep the runtime's identity (root); use an id below 4294967295";
    if user.uid() == INVALID_ID {
        return Err(Error::unsupported(format!("{prefix}.user.uid"), why));
    }
    if user.gid() == INVALID_ID {
        return Err(Error::unsupported(format!("{prefix}.user.gid"), why));
    }
    let gids = user.additional_gids().as_deref().unwrap_or(&[]);
    if let Some(i) = gids.iter().position(|g| *g == INVALID_ID) {
        return Err(Error::unsupported(
            format!("{prefix}.user.additionalGids[{i}]"),
            why,
        ));
    }
    Ok(())
}

/// The kernel's limit on what `execve` copies (args, env and their pointers)
/// under a soft stack limit of `stack` bytes (`bprm_stack_limits`).
pub fn exec_limit(stack: u64) -> u64 {
    (stack / 4).clamp(ARG_MAX, ARG_CEILING)
}

/// The soft `RLIMIT_STACK` the process will `execve` under: the spec's, or
/// the one it inherits from us.
fn stack_limit(p: &Process) -> u64 {
    let from_spec = p
        .rlimits()
        .iter()
        .flatten()
        .find_map(|r| (r.typ() == PosixRlimitType::RlimitStack).then_some(r.soft()));
    from_spec.unwrap_or_else(|| {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes only into the rlimit we pass.
        if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut rl) } == 0 {
            rl.rlim_cur
        } else {
            8 * 1024 * 1024
        }
    })
}

/// Refuses args and env that `execve` would refuse with `E2BIG` at start:
/// one string over `MAX_ARG_STRLEN`, or all of them over the stack-derived
/// limit. What is counted (strings with their NULs, one pointer each) is
/// less than the kernel counts, so nothing that would run is refused; what
/// gets past at the very edge fails at `execve` with the kernel's error.
pub fn check_size(p: &Process, prefix: &str) -> Result<()> {
    let args = p.args().as_deref().unwrap_or(&[]);
    let env = p.env().as_deref().unwrap_or(&[]);
    for (field, list) in [("args", args), ("env", env)] {
        if let Some((i, s)) = list
            .iter()
            .enumerate()
            .find(|(_, s)| s.len() + 1 > MAX_ARG_STRLEN)
        {
            return Err(Error::unsupported(
                format!("{prefix}.{field}[{i}]"),
                format!(
                    "is {} bytes, over the kernel's limit of {} bytes for one string (MAX_ARG_STRLEN)",
                    s.len() + 1,
                    MAX_ARG_STRLEN
                ),
            ));
        }
    }
    let strings: u64 = args.iter().chain(env).map(|s| s.len() as u64 + 1).sum();
    let total = strings + (args.len().max(1) + env.len()) as u64 * 8;
    let stack = stack_limit(p);
    let limit = exec_limit(stack);
    if total > limit {
        return Err(Error::unsupported(
            format!("{prefix}.args/env"),
            format!(
                "are {total} bytes with their pointers, over the kernel's execve limit of {limit} bytes \
                 (a quarter of the stack rlimit of {stack} bytes, at most {ARG_CEILING}): \
                 pass the data in a file instead"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{PosixRlimitBuilder, UserBuilder};

    fn with_user(uid: u32, gid: u32, extra: Vec<u32>) -> Process {
        let mut p = Process::default();
        p.set_user(
            UserBuilder::default()
                .uid(uid)
                .gid(gid)
                .additional_gids(extra)
                .build()
                .unwrap(),
        );
        p
    }

    #[test]
    fn minus_one_ids_are_refused_by_field() {
        let e = check_user(&with_user(INVALID_ID, 0, vec![]), "process").unwrap_err();
        assert!(e.to_string().contains("process.user.uid"), "{e}");
        let e = check_user(&with_user(0, INVALID_ID, vec![]), "exec process").unwrap_err();
        assert!(e.to_string().contains("exec process.user.gid"), "{e}");
        let e = check_user(&with_user(0, 0, vec![1, INVALID_ID]), "process").unwrap_err();
        assert!(
            e.to_string().contains("process.user.additionalGids[1]"),
            "{e}"
        );
        assert!(e.to_string().contains("leave unchanged"), "{e}");
    }

    #[test]
    fn every_other_id_passes() {
        for id in [0, 1, 1000, 65534, 2_147_483_648, INVALID_ID - 1] {
            check_user(&with_user(id, id, vec![id]), "process").unwrap();
        }
    }

    fn with_args(args: Vec<String>, stack: Option<u64>) -> Process {
        let mut p = Process::default();
        p.set_args(Some(args));
        p.set_env(Some(vec!["PATH=/bin".into()]));
        if let Some(s) = stack {
            p.set_rlimits(Some(vec![PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitStack)
                .soft(s)
                .hard(s)
                .build()
                .unwrap()]));
        }
        p
    }

    #[test]
    fn limits_follow_the_kernels_formula() {
        assert_eq!(exec_limit(8 << 20), 2 << 20);
        assert_eq!(exec_limit(u64::MAX), 6 << 20);
        assert_eq!(exec_limit(0), 128 << 10);
        assert_eq!(exec_limit(100 << 20), 6 << 20);
    }

    #[test]
    fn large_args_pass_under_the_limit_and_are_refused_over_it() {
        let mib = |n: usize| vec!["a".repeat(1023); n * 1024];
        check_size(&with_args(mib(1), Some(8 << 20)), "process").unwrap();
        // 1.5 MiB: what runc runs under the default 8 MiB stack.
        let mut p = with_args(vec!["a".repeat(1023); 1536], Some(8 << 20));
        check_size(&p, "process").unwrap();
        let e = check_size(&with_args(mib(4), Some(8 << 20)), "process").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("process.args/env") && s.contains("2097152"),
            "{s}"
        );
        check_size(&with_args(mib(4), Some(64 << 20)), "process").unwrap();
        p.set_env(Some(vec!["X=".to_string() + &"b".repeat(MAX_ARG_STRLEN)]));
        let e = check_size(&p, "exec process").unwrap_err();
        assert!(e.to_string().contains("exec process.env[0]"), "{e}");
        let p = with_args(vec!["c".repeat(MAX_ARG_STRLEN - 1)], None);
        check_size(&p, "process").unwrap();
        let p = with_args(vec!["c".repeat(MAX_ARG_STRLEN)], None);
        assert!(check_size(&p, "process").is_err());
    }
}
