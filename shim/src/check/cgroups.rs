//! cgroup checks: the mode of `/sys/fs/cgroup` (from the mount table, read
//! through `runtime_core::mountinfo`) and what each controller allows.

use super::{read, Check, Level};
use runtime_core::probe;

/// What `/sys/fs/cgroup` is: from the mount table, no syscall needed.
#[derive(Debug, PartialEq)]
pub enum CgroupMode {
    V1,
    Hybrid,
    V2,
    None,
}

/// (mount point, fstype, super options) of cgroup mounts, from the one
/// mountinfo parser (octal escapes undone).
fn cgroup_mounts(mountinfo: &str) -> Vec<(String, String, String)> {
    runtime_core::mountinfo::parse(mountinfo)
        .into_iter()
        .filter(|m| matches!(m.fstype.as_str(), "cgroup" | "cgroup2"))
        .map(|m| {
            (
                m.mount_point.to_string_lossy().into_owned(),
                m.fstype,
                m.super_options,
            )
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

pub(super) fn checks(out: &mut Vec<Check>) {
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
}
