//! Resource usage of a container, read from its cgroup (v1 or v2).
//! Plain numbers as the kernel names them: the shim turns them into
//! containerd's metrics types.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Read from a cgroup v2 (unified-only) host.
    pub v2: bool,
    pub pids_current: u64,
    /// 0 = no limit.
    pub pids_limit: u64,
    pub cpu_usage_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_kernel_ns: u64,
    pub per_cpu_ns: Vec<u64>,
    pub memory_usage: u64,
    pub memory_limit: u64,
    pub memory_max_usage: u64,
    pub memory_failcnt: u64,
    /// `memory.stat`, key for key (v1: cache, rss, total_*, …; v2: anon, file, …).
    pub memory_stat: HashMap<String, u64>,
    /// v2 `cpu.stat` (usage_usec, user_usec, system_usec, nr_throttled, …).
    pub cpu_stat: HashMap<String, u64>,
}

pub(crate) fn read_u64(dir: &Path, file: &str) -> u64 {
    let s = fs::read_to_string(dir.join(file)).unwrap_or_default();
    let s = s.trim();
    // "max" (v2) and the v1 "unlimited" sentinel both mean no limit.
    if s == "max" {
        return 0;
    }
    s.parse().unwrap_or(0)
}

/// "key value" lines (memory.stat, cpu.stat, cpuacct.stat).
pub(crate) fn read_keyed(dir: &Path, file: &str) -> HashMap<String, u64> {
    fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_max_formats() {
        let d = std::env::temp_dir().join(format!("rshim-stats-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("memory.stat"), "anon 4096\nfile 8192\nbogus\n").unwrap();
        fs::write(d.join("pids.max"), "max\n").unwrap();
        fs::write(d.join("pids.current"), "3\n").unwrap();
        let m = read_keyed(&d, "memory.stat");
        assert_eq!((m["anon"], m["file"], m.len()), (4096, 8192, 2));
        assert_eq!(read_u64(&d, "pids.max"), 0);
        assert_eq!(read_u64(&d, "pids.current"), 3);
        assert_eq!(read_u64(&d, "missing"), 0);
        fs::remove_dir_all(&d).unwrap();
    }
}
