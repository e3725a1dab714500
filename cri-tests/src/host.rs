//! What a pod leaves on the host, seen from the host: shim processes, mounts, cgroups,
//! network namespaces, task bundle dirs. For the tests' "nothing is left" checks.

use std::path::{Path, PathBuf};

use crate::{cgroup_dir, env};

/// A shim process of our private containerd.
#[derive(Debug, Clone)]
pub struct Shim {
    pub pid: i32,
    /// Its `-id`: the first container it was started for (the sandbox, for a pod).
    pub id: String,
    pub binary: String,
}

fn containerd_address() -> String {
    env().endpoint.clone()
}

/// Every shim (ours or the Go runc shim) whose `-address` is our containerd.
pub fn shims() -> Vec<Shim> {
    let address = containerd_address();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let binary = args.first().cloned().unwrap_or_default();
        if !binary.contains("containerd-shim-") {
            continue;
        }
        let arg = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
        if arg("-address").as_deref() != Some(address.as_str()) {
            continue;
        }
        out.push(Shim {
            pid,
            id: arg("-id").unwrap_or_default(),
            binary,
        });
    }
    out
}

/// The shims serving any of `ids` (a pod's sandbox and containers).
pub fn shims_of(ids: &[&str]) -> Vec<Shim> {
    shims()
        .into_iter()
        .filter(|s| ids.contains(&s.id.as_str()))
        .collect()
}

/// Resident set size of a process in KiB (VmRSS).
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Mount points (mountinfo field 5) whose path or source mentions `needle`.
pub fn mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// containerd's task bundle dir of a container (or sandbox) id.
pub fn bundle_dir(id: &str) -> PathBuf {
    env()
        .state
        .join("io.containerd.runtime.v2.task/k8s.io")
        .join(id)
}

/// Cgroup dirs below `parent` (a pod's cgroup parent: a path, or a slice, expanded) in
/// every hierarchy.
pub fn cgroups_below(parent: &str) -> Vec<PathBuf> {
    let rel = cgroup_dir(parent);
    let mut out = Vec::new();
    let mut roots: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        let dir = root.join(&rel);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        out.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    out
}

/// Pids in the cgroups below `parent` (any hierarchy).
pub fn procs_below(parent: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = cgroups_below(parent)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Removes a pod's (empty) cgroup parent dirs, which the kubelet would own; a slice is
/// stopped through systemd, as the kubelet's systemd driver does.
pub fn remove_cgroup_parent(parent: &str) {
    if parent.ends_with(".slice") {
        let out = std::process::Command::new("systemctl")
            .args(["stop", parent])
            .output()
            .unwrap_or_else(|e| panic!("systemctl stop {parent}: {e}"));
        assert!(
            out.status.success(),
            "systemctl stop {parent}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    for root in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = root.path().join(parent.trim_start_matches('/'));
        if dir.is_dir() && !dir.is_symlink() {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(parent.trim_start_matches('/')));
}

/// The inode of one of a process's namespaces (`/proc/PID/ns/KIND`).
pub fn ns_of(pid: u32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Proportional set size of a process in KiB (shared pages split among their users).
pub fn pss_kib(pid: i32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
