//! Kernel features, probed by trying them (`runtime_core::probe`).

use runtime_core::probe::{self, Probe};

use super::{read, Check, Level};

/// One kernel probe: (name, probe, level when missing, what it disables, fix).
type KernelCheck = (
    &'static str,
    fn() -> Probe,
    Level,
    &'static str,
    &'static str,
);

const KERNEL: &[KernelCheck] = &[
    (
        "clone3",
        probe::clone3,
        Level::Fail,
        "every container init is made with clone3(CLONE_PIDFD)",
        "Linux >= 5.3",
    ),
    (
        "pidfd_open",
        probe::pidfd_open,
        Level::Fail,
        "execs and hooks are waited for through pidfds",
        "Linux >= 5.3",
    ),
    (
        "close_range",
        probe::close_range,
        Level::Fail,
        "fds are marked close-on-exec with close_range(CLOSE_RANGE_CLOEXEC) before execve",
        "Linux >= 5.11",
    ),
    (
        "openat2",
        probe::openat2,
        Level::Fail,
        "paths in the rootfs are resolved with openat2(RESOLVE_IN_ROOT)",
        "Linux >= 5.6",
    ),
    (
        "mount_setattr",
        probe::mount_setattr,
        Level::Warn,
        "recursive mount attributes (rro) and ID-mapped mounts are unavailable",
        "Linux >= 5.12",
    ),
    (
        "seccomp-notify",
        probe::seccomp_notify,
        Level::Warn,
        "seccomp profiles with SCMP_ACT_NOTIFY cannot work",
        "Linux >= 5.0",
    ),
    (
        "time-namespace",
        probe::time_namespace,
        Level::Warn,
        "specs with a time namespace (timeOffsets) are refused",
        "Linux >= 5.6 with CONFIG_TIME_NS",
    ),
];

pub(super) fn checks(out: &mut Vec<Check>) {
    out.push(Check::ok(
        "kernel",
        format!("Linux {}", read("/proc/sys/kernel/osrelease").trim()),
    ));
    for (name, p, level, disables, fix) in KERNEL {
        out.push(match p() {
            Ok(d) => Check::ok(name, d),
            Err(e) => Check::bad(*level, name, format!("{e}: {disables}"), fix),
        });
    }
    let max = read("/proc/sys/user/max_user_namespaces");
    if max.trim() == "0" {
        out.push(Check::bad(
            Level::Warn,
            "user-namespaces",
            "user.max_user_namespaces is 0: specs with a user namespace fail",
            "sysctl -w user.max_user_namespaces=15000",
        ));
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    out.push(match probe::idmapped_mounts() {
        Ok(d) => Check::ok("idmapped-mounts", d),
        Err(e) if !root => Check::bad(
            Level::Warn,
            "idmapped-mounts",
            format!("{e} (not root, so not conclusive)"),
            "run check as root",
        ),
        Err(e) => Check::bad(
            Level::Warn,
            "idmapped-mounts",
            format!("{e}: user-namespace pods cannot have volumes mapped to their ids"),
            "Linux >= 6.3 for tmpfs (5.12 for ext4/xfs/btrfs)",
        ),
    });
}
