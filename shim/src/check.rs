//! `containerd-shim-rust-v1 check`: a diagnosis of this host for the person
//! installing the shim. One line per check, machine-checkable:
//!
//! ```text
//! ok|warn|fail <name>: <detail> [fix: <what to do>]
//! ```
//!
//! `fail` means no container can run here (exit status 1); `warn` names a
//! feature that is unavailable and how to get it. Kernel features are probed
//! by trying them (`runtime_core::probe`); nothing here runs when containers
//! are made.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use runtime_core::probe::{self, Probe};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug)]
pub struct Check {
    pub level: Level,
    pub name: &'static str,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            level: Level::Ok,
            name,
            detail: detail.into(),
            fix: None,
        }
    }

    fn bad(level: Level, name: &'static str, detail: impl Into<String>, fix: &str) -> Check {
        Check {
            level,
            name,
            detail: detail.into(),
            fix: Some(fix.to_string()),
        }
    }

    pub fn line(&self) -> String {
        let level = match self.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        };
        let mut s = format!("{level} {}: {}", self.name, self.detail);
        if let Some(fix) = &self.fix {
            let _ = write!(s, " fix: {fix}");
        }
        s
    }
}

/// What `/sys/fs/cgroup` is: from the mount table, no syscall needed.
#[derive(Debug, PartialEq)]
pub enum CgroupMode {
    V1,
    Hybrid,
    V2,
    None,
}

/// (mount point, fstype, super options) of cgroup mounts.
fn cgroup_mounts(mountinfo: &str) -> Vec<(String, String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split_whitespace();
            let fstype = post.next()?;
            let super_opts = post.nth(1).unwrap_or("");
            let point = pre.split_whitespace().nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| {
                (
                    point.to_string(),
                    fstype.to_string(),
                    super_opts.to_string(),
                )
            })
        })
        .collect()
}

pub fn cgroup_mode(mountinfo: &str) -> CgroupMode {
    let mounts = cgroup_mounts(mountinfo);
    let v2_root = mounts
        .iter()
        .any(|(p, t, _)| p == "/sys/fs/cgroup" && t == "cgroup2");
    let v1 = mounts.iter().any(|(_, t, _)| t == "cgroup");
    let v2 = mounts.iter().any(|(_, t, _)| t == "cgroup2");
    match (v2_root, v1, v2) {
        (true, _, _) => CgroupMode::V2,
        (false, true, true) => CgroupMode::Hybrid,
        (false, true, false) => CgroupMode::V1,
        (false, false, true) => CgroupMode::V2,
        (false, false, false) => CgroupMode::None,
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn cgroup_checks(out: &mut Vec<Check>) {
    let info = read("/proc/self/mountinfo");
    let mounts = cgroup_mounts(&info);
    let mode = cgroup_mode(&info);
    let v2_dir = mounts
        .iter()
        .find(|(_, t, _)| t == "cgroup2")
        .map(|(p, _, _)| p.clone());
    match mode {
        CgroupMode::None => {
            out.push(Check::bad(
                Level::Fail,
                "cgroup-mode",
                "no cgroup hierarchy is mounted: containers cannot be given resources or be \
                 killed as a group",
                "mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)",
            ));
            return;
        }
        CgroupMode::V1 => out.push(Check::ok("cgroup-mode", "v1 (legacy)")),
        CgroupMode::Hybrid => out.push(Check::ok(
            "cgroup-mode",
            format!(
                "hybrid: v1 controllers, and v2 with no controllers at {}",
                v2_dir.clone().unwrap_or_default()
            ),
        )),
        CgroupMode::V2 => out.push(Check::ok("cgroup-mode", "v2 (unified)")),
    }
    // v1 controllers: the enabled ones of /proc/cgroups that are mounted.
    if mode != CgroupMode::V2 {
        let mounted: Vec<&str> = mounts
            .iter()
            .filter(|(_, t, _)| t == "cgroup")
            .flat_map(|(_, _, o)| o.split(','))
            .collect();
        let cgroups = read("/proc/cgroups");
        let on: Vec<&str> = cgroups
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 4 && f[3] == "1" && mounted.contains(&f[0])).then_some(f[0])
            })
            .collect();
        let essential = ["memory", "pids", "cpu", "freezer", "devices"];
        let missing: Vec<&str> = essential
            .iter()
            .filter(|c| !on.contains(c))
            .copied()
            .collect();
        if missing.is_empty() {
            out.push(Check::ok(
                "cgroup-controllers",
                format!("v1: {}", on.join(" ")),
            ));
        } else {
            out.push(Check::bad(
                Level::Warn,
                "cgroup-controllers",
                format!(
                    "v1: {}; not mounted: {} (limits, pause or device rules of those \
                     controllers are refused)",
                    on.join(" "),
                    missing.join(" ")
                ),
                "mount each missing controller under /sys/fs/cgroup/<name>",
            ));
        }
    }
    if let Some(dir) = v2_dir {
        let controllers = read(&format!("{dir}/cgroup.controllers"));
        let delegated = read(&format!("{dir}/cgroup.subtree_control"));
        let available: Vec<&str> = controllers.split_whitespace().collect();
        let given: Vec<&str> = delegated.split_whitespace().collect();
        let not_given: Vec<&str> = available
            .iter()
            .filter(|c| !given.contains(c))
            .copied()
            .collect();
        if mode == CgroupMode::V2 && !not_given.is_empty() {
            out.push(Check::bad(
                Level::Warn,
                "cgroup-delegation",
                format!(
                    "v2 controllers {} are not enabled in {dir}/cgroup.subtree_control \
                     (children get no {} limits)",
                    not_given.join(" "),
                    not_given.join("/")
                ),
                &format!(
                    "echo '{}' > {dir}/cgroup.subtree_control",
                    not_given
                        .iter()
                        .map(|c| format!("+{c}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ));
        } else {
            out.push(Check::ok(
                "cgroup-delegation",
                format!(
                    "v2 at {dir}: controllers [{}], enabled for children [{}]",
                    available.join(" "),
                    given.join(" ")
                ),
            ));
        }
    }
    if mode == CgroupMode::V2 {
        out.push(match probe::bpf_cgroup_device() {
            Ok(d) => Check::ok("bpf-cgroup-device", d),
            Err(e) => Check::bad(
                Level::Warn,
                "bpf-cgroup-device",
                format!("{e}: device rules cannot be enforced on cgroup v2"),
                "a kernel with CONFIG_CGROUP_BPF, run as root",
            ),
        });
    } else {
        out.push(match probe::bpf_cgroup_device() {
            Ok(d) => Check::ok("bpf-cgroup-device", format!("{d} (v1 uses devices.allow)")),
            Err(e) => Check::ok(
                "bpf-cgroup-device",
                format!("{e} (not needed: v1 device rules use devices.allow)"),
            ),
        });
    }
}

fn is_socket(p: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

fn systemd_checks(out: &mut Vec<Check>) {
    // sd_booted(3): systemd is PID 1 when this directory exists.
    if !Path::new("/run/systemd/system").is_dir() {
        out.push(Check::bad(
            Level::Warn,
            "systemd",
            "not running (no /run/systemd/system): the systemd cgroup driver \
             (SystemdCgroup = true) cannot be used",
            "use the cgroupfs driver (SystemdCgroup = false, kubelet cgroupDriver: cgroupfs)",
        ));
        return;
    }
    out.push(Check::ok("systemd", "running (/run/systemd/system)"));
    let bus = ["/run/systemd/private", "/run/dbus/system_bus_socket"]
        .into_iter()
        .filter(|p| is_socket(p))
        .collect::<Vec<_>>();
    out.push(if bus.is_empty() {
        Check::bad(
            Level::Warn,
            "systemd-bus",
            "neither /run/systemd/private nor /run/dbus/system_bus_socket is a socket: \
             the systemd cgroup driver cannot reach systemd",
            "start dbus (or check that systemd's private socket exists)",
        )
    } else {
        Check::ok("systemd-bus", bus.join(", "))
    });
}

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

fn kernel_checks(out: &mut Vec<Check>) {
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

/// CRIU's presence and `criu check`, for checkpoint/restore.
fn criu_check(out: &mut Vec<Check>) {
    let run = |args: &[&str]| {
        Command::new("criu")
            .args(args)
            .stdin(Stdio::null())
            .output()
    };
    let version = match run(&["--version"]) {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Err(e) => {
            out.push(Check::bad(
                Level::Warn,
                "criu",
                format!("not found ({e}): checkpoint/restore is unavailable"),
                "apt-get install criu",
            ));
            return;
        }
    };
    out.push(match run(&["check"]) {
        Ok(o) if o.status.success() => Check::bad(
            Level::Warn,
            "criu",
            format!(
                "{version}; `criu check` passes: Checkpoint works, restore (Create \
                 with a checkpoint) answers Unimplemented"
            ),
            "use runtime io.containerd.runc.v2 for containers that need restores",
        ),
        Ok(o) => {
            let all = String::from_utf8_lossy(&o.stderr).into_owned()
                + &String::from_utf8_lossy(&o.stdout);
            let first = all
                .lines()
                .find(|l| l.contains("Error"))
                .or_else(|| all.lines().last())
                .unwrap_or("no output")
                .trim()
                .to_string();
            Check::bad(
                Level::Warn,
                "criu",
                format!(
                    "{version}; `criu check` fails: {first}: checkpoint/restore is unavailable"
                ),
                "a CRIU that supports this kernel (4.1 or later on Linux >= 6.13)",
            )
        }
        Err(e) => Check::bad(
            Level::Warn,
            "criu",
            format!("{version}; `criu check` could not run: {e}"),
            "check the criu installation",
        ),
    });
}

const RUNTIME_TYPE: &str = "io.containerd.rust.v1";
const CRI_V2: &str = "io.containerd.grpc.v1.cri";
const CRI_V3: &str = "io.containerd.cri.v1.runtime";

/// What containerd's config says about our runtime, by its config version
/// (2: containerd 1.x's form; 3: 2.x's, which still reads version 2 files).
pub fn containerd_config(path: &Path, text: &str) -> Check {
    let fix = format!(
        "add [plugins.\"{CRI_V2}\".containerd.runtimes.rust] runtime_type = \"{RUNTIME_TYPE}\" \
         (version = 2, containerd 1.x) or [plugins.\"{CRI_V3}\".containerd.runtimes.rust] \
         runtime_type = \"{RUNTIME_TYPE}\" (version = 3, containerd 2.x) to {}, and restart containerd",
        path.display()
    );
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            return Check::bad(
                Level::Warn,
                "containerd-config",
                format!("{}: not valid TOML: {e}", path.display()),
                "fix the syntax (containerd will not start with it either)",
            )
        }
    };
    let version = table
        .get("version")
        .and_then(|v| v.as_integer())
        .unwrap_or(1);
    let runtimes = |plugin: &str| {
        table
            .get("plugins")
            .and_then(|p| p.get(plugin))
            .and_then(|p| p.get("containerd"))
            .and_then(|p| p.get("runtimes"))
            .and_then(|r| r.as_table())
            .map(|r| {
                r.iter()
                    .filter(|(_, v)| {
                        v.get("runtime_type").and_then(|t| t.as_str()) == Some(RUNTIME_TYPE)
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let (form, found) = match version {
        3 => ("version 3, containerd 2.x", runtimes(CRI_V3)),
        2 => (
            "version 2, containerd 1.x (2.x migrates it)",
            runtimes(CRI_V2),
        ),
        v => {
            return Check::bad(
                Level::Warn,
                "containerd-config",
                format!(
                    "{}: config version {v} is older than any containerd 1.6 reads",
                    path.display()
                ),
                &fix,
            )
        }
    };
    if found.is_empty() {
        let other = if version == 3 { CRI_V2 } else { CRI_V3 };
        let misplaced = !runtimes(other).is_empty();
        return Check::bad(
            Level::Warn,
            "containerd-config",
            format!(
                "{} ({form}) names no CRI runtime handler with runtime_type {RUNTIME_TYPE}{}: \
                 Kubernetes cannot use it (ctr --runtime {RUNTIME_TYPE} works without)",
                path.display(),
                if misplaced {
                    format!(" in its form; one is under plugins.\"{other}\", which this version ignores")
                } else {
                    String::new()
                }
            ),
            &fix,
        );
    }
    let mut problems = Vec::new();
    for (name, rt) in &found {
        if let Some(opts) = rt.get("options").and_then(|o| o.as_table()) {
            match crate::options::Options::from_table(opts) {
                Ok(o) => {
                    problems.extend(o.refusals().into_iter().map(|r| format!("{name}: {r}")));
                    if o.systemd_cgroup {
                        problems.push(format!(
                            "{name}: runtime option SystemdCgroup is not supported yet"
                        ));
                    }
                }
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
    }
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    if problems.is_empty() {
        Check::ok(
            "containerd-config",
            format!(
                "{} ({form}) names {RUNTIME_TYPE} as CRI handler {}",
                path.display(),
                names.join(", ")
            ),
        )
    } else {
        Check::bad(
            Level::Warn,
            "containerd-config",
            format!(
                "{} ({form}) names handler {}, but containers will be refused: {}",
                path.display(),
                names.join(", "),
                problems.join("; ")
            ),
            "remove those options from the handler's options table",
        )
    }
}

fn config_check(out: &mut Vec<Check>, path: &Path) {
    out.push(match std::fs::read_to_string(path) {
        Ok(text) => containerd_config(path, &text),
        Err(e) => Check::bad(
            Level::Warn,
            "containerd-config",
            format!(
                "{}: {e}: containerd runs with its defaults, where only \
                 `ctr run --runtime {RUNTIME_TYPE}` uses this shim",
                path.display()
            ),
            &format!(
                "containerd config default > {} and add a runtimes.rust table with \
                 runtime_type = \"{RUNTIME_TYPE}\"",
                path.display()
            ),
        ),
    });
}

/// containerd finds `containerd-shim-rust-v1` on its PATH.
fn binary_check(out: &mut Vec<Check>) {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join("containerd-shim-rust-v1"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    out.push(match found {
        Some(p) => Check::ok("shim-binary", format!("{} is on PATH", p.display())),
        None => Check::bad(
            Level::Warn,
            "shim-binary",
            "containerd-shim-rust-v1 is not on this PATH: containerd looks it up on its own \
             PATH by the runtime name io.containerd.rust.v1",
            "install -m 0755 containerd-shim-rust-v1 /usr/local/bin/",
        ),
    });
}

/// Every check, in the order printed.
pub fn checks(config: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    kernel_checks(&mut out);
    cgroup_checks(&mut out);
    systemd_checks(&mut out);
    criu_check(&mut out);
    config_check(&mut out, config);
    binary_check(&mut out);
    out
}

/// Prints the checks; the exit status is 1 when a container could not run.
pub fn run(config: Option<&str>) -> i32 {
    let config = config.map_or_else(
        || PathBuf::from("/etc/containerd/config.toml"),
        PathBuf::from,
    );
    let all = checks(&config);
    for c in &all {
        println!("{}", c.line());
    }
    let fails = all.iter().filter(|c| c.level == Level::Fail).count();
    let warns = all.iter().filter(|c| c.level == Level::Warn).count();
    println!(
        "{} checks: {fails} fail, {warns} warn{}",
        all.len(),
        if fails > 0 {
            ": containers cannot run on this host"
        } else {
            ""
        }
    );
    i32::from(fails > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory";

    #[test]
    fn modes_from_the_mount_table() {
        assert_eq!(cgroup_mode(HYBRID), CgroupMode::Hybrid);
        assert_eq!(
            cgroup_mode("26 25 0:24 / /sys/fs/cgroup rw shared:10 - cgroup2 cgroup2 rw"),
            CgroupMode::V2
        );
        assert_eq!(
            cgroup_mode("27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory"),
            CgroupMode::V1
        );
        assert_eq!(cgroup_mode(""), CgroupMode::None);
        assert_eq!(cgroup_mounts(HYBRID)[1].2, "rw,memory");
    }

    #[test]
    fn line_format() {
        let c = Check::bad(Level::Warn, "x", "y is off", "turn it on");
        assert_eq!(c.line(), "warn x: y is off fix: turn it on");
        assert_eq!(Check::ok("a", "b").line(), "ok a: b");
    }

    fn cfg(text: &str) -> Check {
        containerd_config(Path::new("/etc/containerd/config.toml"), text)
    }

    #[test]
    fn containerd_config_forms() {
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rust]\n\
                  runtime_type = \"io.containerd.rust.v1\"\n";
        let c = cfg(v2);
        assert_eq!(c.level, Level::Ok, "{}", c.line());
        assert!(c.detail.contains("handler rust") && c.detail.contains("version 2"));
        let v3 = "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.r]\n\
                  runtime_type = \"io.containerd.rust.v1\"\n";
        assert_eq!(cfg(v3).level, Level::Ok);
        // A 1.x table in a version 3 file is ignored by containerd 2.x.
        let wrong = v2.replace("version = 2", "version = 3");
        let c = cfg(&wrong);
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.contains("ignores"), "{}", c.detail);
        assert_eq!(cfg("version = 2\n").level, Level::Warn);
        assert_eq!(cfg("version = [").level, Level::Warn);
    }

    #[test]
    fn refused_handler_options_are_named() {
        let t = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rust]\n\
                 runtime_type = \"io.containerd.rust.v1\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rust.options]\n\
                 BinaryName = \"crun\"\nSystemdCgroup = true\n";
        let c = cfg(t);
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.contains("BinaryName") && c.detail.contains("SystemdCgroup"));
    }
}
