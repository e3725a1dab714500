//! Resource usage of a container, read from its cgroup (v1 or v2).
//! Plain numbers as the kernel names them: the shim turns them into
//! containerd's metrics types.
//!
//! Limits follow containerd's cgroup readers: on v1 `pids.max` of `max` reads
//! 0; on v2 every `max` reads u64::MAX (rdma: u32::MAX).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Read from a cgroup v2 (unified-only) host.
    pub v2: bool,
    pub pids_current: u64,
    /// v1: 0 = no limit; v2: u64::MAX = no limit.
    pub pids_limit: u64,
    pub cpu_usage_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_kernel_ns: u64,
    pub per_cpu_ns: Vec<u64>,
    pub memory_usage: u64,
    pub memory_limit: u64,
    pub memory_max_usage: u64,
    pub memory_failcnt: u64,
    /// v2 `memory.swap.current`, `.max`, `.peak`.
    pub swap_usage: u64,
    pub swap_limit: u64,
    pub swap_max_usage: u64,
    /// `memory.stat`, key for key (v1: cache, rss, total_*, …; v2: anon, file, …).
    pub memory_stat: HashMap<String, u64>,
    /// v2 `memory.events` (low, high, max, oom, oom_kill).
    pub memory_events: HashMap<String, u64>,
    /// v2 `cpu.stat` (usage_usec, user_usec, system_usec, nr_throttled, …).
    pub cpu_stat: HashMap<String, u64>,
    /// v2 `io.stat`: one entry per device.
    pub io: Vec<IoStat>,
    /// v2 `hugetlb.<size>.*`: one entry per page size.
    pub hugetlb: Vec<HugetlbStat>,
    /// v2 `rdma.current` and `rdma.max`.
    pub rdma_current: Vec<RdmaStat>,
    pub rdma_limit: Vec<RdmaStat>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct IoStat {
    pub major: u64,
    pub minor: u64,
    /// rbytes, wbytes, rios, wios, dbytes, dios.
    pub values: HashMap<String, u64>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct HugetlbStat {
    pub page_size: String,
    pub current: u64,
    pub max: u64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct RdmaStat {
    pub device: String,
    pub hca_handles: u32,
    pub hca_objects: u32,
}

pub(crate) fn read_u64(dir: &Path, file: &str) -> u64 {
    let s = fs::read_to_string(dir.join(file)).unwrap_or_default();
    let s = s.trim();
    // v1's "max" (pids.max) reads 0 in containerd's v1 metrics.
    if s == "max" {
        return 0;
    }
    s.parse().unwrap_or(0)
}

/// A v2 value where `max` is no limit: u64::MAX, as containerd reads it.
pub(crate) fn read_v2_u64(dir: &Path, file: &str) -> u64 {
    let s = fs::read_to_string(dir.join(file)).unwrap_or_default();
    match s.trim() {
        "max" => u64::MAX,
        v => v.parse().unwrap_or(0),
    }
}

/// "key value" lines (memory.stat, cpu.stat, cpuacct.stat, memory.events).
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

/// `io.stat`: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
fn parse_io_stat(text: &str) -> Vec<IoStat> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (maj, min) = f.next()?.split_once(':')?;
            Some(IoStat {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                values: f
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        Some((k.to_string(), v.parse().ok()?))
                    })
                    .collect(),
            })
        })
        .collect()
}

/// `rdma.current` / `rdma.max`: "mlx5_0 hca_handle=2 hca_object=max".
fn parse_rdma(text: &str) -> Vec<RdmaStat> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let mut r = RdmaStat {
                device: f.next()?.to_string(),
                ..Default::default()
            };
            for kv in f {
                let (k, v) = kv.split_once('=')?;
                let v = if v == "max" {
                    u32::MAX
                } else {
                    v.parse().ok()?
                };
                match k {
                    "hca_handle" => r.hca_handles = v,
                    "hca_object" => r.hca_objects = v,
                    _ => {}
                }
            }
            Some(r)
        })
        .collect()
}

/// Everything a v2 cgroup directory reports (missing files read as nothing).
pub fn read_v2(d: &Path) -> Stats {
    let mut st = Stats {
        v2: true,
        pids_current: read_u64(d, "pids.current"),
        pids_limit: read_v2_u64(d, "pids.max"),
        cpu_stat: read_keyed(d, "cpu.stat"),
        memory_usage: read_u64(d, "memory.current"),
        memory_limit: read_v2_u64(d, "memory.max"),
        memory_max_usage: read_u64(d, "memory.peak"),
        swap_usage: read_u64(d, "memory.swap.current"),
        swap_limit: read_v2_u64(d, "memory.swap.max"),
        swap_max_usage: read_u64(d, "memory.swap.peak"),
        memory_stat: read_keyed(d, "memory.stat"),
        memory_events: read_keyed(d, "memory.events"),
        io: parse_io_stat(&fs::read_to_string(d.join("io.stat")).unwrap_or_default()),
        rdma_current: parse_rdma(&fs::read_to_string(d.join("rdma.current")).unwrap_or_default()),
        rdma_limit: parse_rdma(&fs::read_to_string(d.join("rdma.max")).unwrap_or_default()),
        ..Default::default()
    };
    st.cpu_usage_ns = st.cpu_stat.get("usage_usec").copied().unwrap_or(0) * 1000;
    st.cpu_user_ns = st.cpu_stat.get("user_usec").copied().unwrap_or(0) * 1000;
    st.cpu_kernel_ns = st.cpu_stat.get("system_usec").copied().unwrap_or(0) * 1000;
    let mut sizes: Vec<String> = fs::read_dir(d)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            n.strip_prefix("hugetlb.")?
                .strip_suffix(".current")
                .map(str::to_string)
        })
        .collect();
    sizes.sort();
    st.hugetlb = sizes
        .into_iter()
        .map(|size| HugetlbStat {
            current: read_u64(d, &format!("hugetlb.{size}.current")),
            max: read_v2_u64(d, &format!("hugetlb.{size}.max")),
            page_size: size,
        })
        .collect();
    st
}

/// The v1 controllers' figures; `dir_of` names the directory of a controller.
pub fn read_v1<'a>(dir_of: impl Fn(&str) -> Option<&'a Path>) -> Stats {
    let mut st = Stats::default();
    if let Some(d) = dir_of("pids") {
        st.pids_current = read_u64(d, "pids.current");
        st.pids_limit = read_u64(d, "pids.max");
    }
    if let Some(d) = dir_of("cpuacct") {
        st.cpu_usage_ns = read_u64(d, "cpuacct.usage");
        // cpuacct.stat counts USER_HZ ticks (100 per second on Linux).
        let ticks = read_keyed(d, "cpuacct.stat");
        st.cpu_user_ns = ticks.get("user").copied().unwrap_or(0) * 10_000_000;
        st.cpu_kernel_ns = ticks.get("system").copied().unwrap_or(0) * 10_000_000;
        st.per_cpu_ns = fs::read_to_string(d.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
    }
    if let Some(d) = dir_of("memory") {
        st.memory_usage = read_u64(d, "memory.usage_in_bytes");
        st.memory_limit = read_u64(d, "memory.limit_in_bytes");
        st.memory_max_usage = read_u64(d, "memory.max_usage_in_bytes");
        st.memory_failcnt = read_u64(d, "memory.failcnt");
        st.memory_stat = read_keyed(d, "memory.stat");
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rshim-stats-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        for (f, v) in files {
            fs::write(d.join(f), v).unwrap();
        }
        d
    }

    #[test]
    fn keyed_and_max_formats() {
        let d = tree(
            "keyed",
            &[
                ("memory.stat", "anon 4096\nfile 8192\nbogus\n"),
                ("pids.max", "max\n"),
                ("pids.current", "3\n"),
            ],
        );
        let m = read_keyed(&d, "memory.stat");
        assert_eq!((m["anon"], m["file"], m.len()), (4096, 8192, 2));
        assert_eq!(read_u64(&d, "pids.max"), 0);
        assert_eq!(read_v2_u64(&d, "pids.max"), u64::MAX);
        assert_eq!(read_u64(&d, "pids.current"), 3);
        assert_eq!(read_u64(&d, "missing"), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    /// A v2 directory as the kernel shows it, limits unset (`max`) and set.
    #[test]
    fn v2_files() {
        let d = tree(
            "v2",
            &[
                ("pids.current", "2\n"),
                ("pids.max", "max\n"),
                ("memory.current", "1048576\n"),
                ("memory.max", "67108864\n"),
                ("memory.peak", "2097152\n"),
                ("memory.swap.current", "0\n"),
                ("memory.swap.max", "max\n"),
                ("memory.events", "low 0\nhigh 1\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n"),
                ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\n"),
                ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n254:16 rbytes=1 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
                ("hugetlb.2MB.current", "0\n"),
                ("hugetlb.2MB.max", "max\n"),
                ("hugetlb.1GB.current", "1073741824\n"),
                ("hugetlb.1GB.max", "1073741824\n"),
                ("rdma.current", "mlx5_0 hca_handle=1 hca_object=20\n"),
                ("rdma.max", "mlx5_0 hca_handle=max hca_object=100\n"),
            ],
        );
        let st = read_v2(&d);
        assert!(st.v2);
        assert_eq!((st.pids_current, st.pids_limit), (2, u64::MAX));
        assert_eq!(
            (st.memory_usage, st.memory_limit, st.memory_max_usage),
            (1048576, 67108864, 2097152)
        );
        assert_eq!((st.swap_usage, st.swap_limit), (0, u64::MAX));
        assert_eq!(
            (st.memory_events["max"], st.memory_events["oom_kill"]),
            (7, 1)
        );
        assert_eq!(
            (st.cpu_usage_ns, st.cpu_user_ns, st.cpu_kernel_ns),
            (1_500_000, 1_000_000, 500_000)
        );
        assert_eq!(st.io.len(), 2);
        assert_eq!(
            (st.io[0].major, st.io[0].minor, st.io[0].values["wbytes"]),
            (8, 0, 8192)
        );
        assert_eq!(
            st.hugetlb,
            [
                HugetlbStat {
                    page_size: "1GB".into(),
                    current: 1 << 30,
                    max: 1 << 30
                },
                HugetlbStat {
                    page_size: "2MB".into(),
                    current: 0,
                    max: u64::MAX
                },
            ]
        );
        assert_eq!(st.rdma_current[0].hca_objects, 20);
        assert_eq!(
            (st.rdma_limit[0].hca_handles, st.rdma_limit[0].hca_objects),
            (u32::MAX, 100)
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
