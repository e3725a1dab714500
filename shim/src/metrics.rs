//! runtime-core's cgroup numbers as containerd's metrics types: the v1
//! `io.containerd.cgroups.v1.Metrics` on v1 and hybrid hosts, the v2
//! `io.containerd.cgroups.v2.Metrics` on unified-only hosts.

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use runtime_core::stats::Stats;

pub fn to_any(st: &Stats) -> Result<Any, containerd_shim_protos::protobuf::Error> {
    let (type_url, value) = if st.v2 {
        (
            "io.containerd.cgroups.v2.Metrics",
            v2_metrics(st).write_to_bytes()?,
        )
    } else {
        (
            "io.containerd.cgroups.v1.Metrics",
            v1_metrics(st).write_to_bytes()?,
        )
    };
    Ok(Any {
        type_url: type_url.to_string(),
        value,
        ..Default::default()
    })
}

fn v1_metrics(st: &Stats) -> v1::Metrics {
    let m = |k: &str| st.memory_stat.get(k).copied().unwrap_or(0);
    v1::Metrics {
        pids: MessageField::some(v1::PidsStat {
            current: st.pids_current,
            limit: st.pids_limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v1::CPUStat {
            usage: MessageField::some(v1::CPUUsage {
                total: st.cpu_usage_ns,
                kernel: st.cpu_kernel_ns,
                user: st.cpu_user_ns,
                per_cpu: st.per_cpu_ns.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(v1::MemoryStat {
            cache: m("cache"),
            rss: m("rss"),
            rss_huge: m("rss_huge"),
            mapped_file: m("mapped_file"),
            dirty: m("dirty"),
            writeback: m("writeback"),
            pg_pg_in: m("pgpgin"),
            pg_pg_out: m("pgpgout"),
            pg_fault: m("pgfault"),
            pg_maj_fault: m("pgmajfault"),
            inactive_anon: m("inactive_anon"),
            active_anon: m("active_anon"),
            inactive_file: m("inactive_file"),
            active_file: m("active_file"),
            unevictable: m("unevictable"),
            hierarchical_memory_limit: m("hierarchical_memory_limit"),
            hierarchical_swap_limit: m("hierarchical_memsw_limit"),
            total_cache: m("total_cache"),
            total_rss: m("total_rss"),
            total_rss_huge: m("total_rss_huge"),
            total_mapped_file: m("total_mapped_file"),
            total_dirty: m("total_dirty"),
            total_writeback: m("total_writeback"),
            total_pg_pg_in: m("total_pgpgin"),
            total_pg_pg_out: m("total_pgpgout"),
            total_pg_fault: m("total_pgfault"),
            total_pg_maj_fault: m("total_pgmajfault"),
            total_inactive_anon: m("total_inactive_anon"),
            total_active_anon: m("total_active_anon"),
            total_inactive_file: m("total_inactive_file"),
            total_active_file: m("total_active_file"),
            total_unevictable: m("total_unevictable"),
            usage: MessageField::some(v1::MemoryEntry {
                limit: st.memory_limit,
                usage: st.memory_usage,
                max: st.memory_max_usage,
                failcnt: st.memory_failcnt,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// As containerd's cgroup v2 reader fills it: every `max` is u64::MAX
/// (u32::MAX for rdma), memory.events and rdma only where present.
fn v2_metrics(st: &Stats) -> v2::Metrics {
    let m = |k: &str| st.memory_stat.get(k).copied().unwrap_or(0);
    let c = |k: &str| st.cpu_stat.get(k).copied().unwrap_or(0);
    let e = |k: &str| st.memory_events.get(k).copied().unwrap_or(0);
    let rdma = |l: &[runtime_core::stats::RdmaStat]| -> Vec<v2::RdmaEntry> {
        l.iter()
            .map(|r| v2::RdmaEntry {
                device: r.device.clone(),
                hca_handles: r.hca_handles,
                hca_objects: r.hca_objects,
                ..Default::default()
            })
            .collect()
    };
    v2::Metrics {
        pids: MessageField::some(v2::PidsStat {
            current: st.pids_current,
            limit: st.pids_limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v2::CPUStat {
            usage_usec: c("usage_usec"),
            user_usec: c("user_usec"),
            system_usec: c("system_usec"),
            nr_periods: c("nr_periods"),
            nr_throttled: c("nr_throttled"),
            throttled_usec: c("throttled_usec"),
            nr_bursts: c("nr_bursts"),
            burst_usec: c("burst_usec"),
            ..Default::default()
        }),
        memory: MessageField::some(v2::MemoryStat {
            anon: m("anon"),
            file: m("file"),
            kernel_stack: m("kernel_stack"),
            slab: m("slab"),
            sock: m("sock"),
            shmem: m("shmem"),
            file_mapped: m("file_mapped"),
            file_dirty: m("file_dirty"),
            file_writeback: m("file_writeback"),
            anon_thp: m("anon_thp"),
            inactive_anon: m("inactive_anon"),
            active_anon: m("active_anon"),
            inactive_file: m("inactive_file"),
            active_file: m("active_file"),
            unevictable: m("unevictable"),
            slab_reclaimable: m("slab_reclaimable"),
            slab_unreclaimable: m("slab_unreclaimable"),
            pgfault: m("pgfault"),
            pgmajfault: m("pgmajfault"),
            workingset_refault: m("workingset_refault_anon") + m("workingset_refault_file"),
            workingset_activate: m("workingset_activate_anon") + m("workingset_activate_file"),
            workingset_nodereclaim: m("workingset_nodereclaim"),
            pgrefill: m("pgrefill"),
            pgscan: m("pgscan"),
            pgsteal: m("pgsteal"),
            pgactivate: m("pgactivate"),
            pgdeactivate: m("pgdeactivate"),
            pglazyfree: m("pglazyfree"),
            pglazyfreed: m("pglazyfreed"),
            thp_fault_alloc: m("thp_fault_alloc"),
            thp_collapse_alloc: m("thp_collapse_alloc"),
            usage: st.memory_usage,
            usage_limit: st.memory_limit,
            swap_usage: st.swap_usage,
            swap_limit: st.swap_limit,
            max_usage: st.memory_max_usage,
            swap_max_usage: st.swap_max_usage,
            ..Default::default()
        }),
        memory_events: if st.memory_events.is_empty() {
            MessageField::none()
        } else {
            MessageField::some(v2::MemoryEvents {
                low: e("low"),
                high: e("high"),
                max: e("max"),
                oom: e("oom"),
                oom_kill: e("oom_kill"),
                oom_group_kill: e("oom_group_kill"),
                ..Default::default()
            })
        },
        io: MessageField::some(v2::IOStat {
            usage: st
                .io
                .iter()
                .map(|d| {
                    let v = |k: &str| d.values.get(k).copied().unwrap_or(0);
                    v2::IOEntry {
                        major: d.major,
                        minor: d.minor,
                        rbytes: v("rbytes"),
                        wbytes: v("wbytes"),
                        rios: v("rios"),
                        wios: v("wios"),
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        }),
        rdma: if st.rdma_current.is_empty() && st.rdma_limit.is_empty() {
            MessageField::none()
        } else {
            MessageField::some(v2::RdmaStat {
                current: rdma(&st.rdma_current),
                limit: rdma(&st.rdma_limit),
                ..Default::default()
            })
        },
        hugetlb: st
            .hugetlb
            .iter()
            .map(|h| v2::HugeTlbStat {
                current: h.current,
                max: h.max,
                pagesize: h.page_size.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_hosts_type_and_round_trips() {
        let mut st = Stats {
            pids_current: 2,
            memory_usage: 4096,
            cpu_usage_ns: 7,
            ..Default::default()
        };
        st.memory_stat.insert("rss".into(), 1234);
        let any = to_any(&st).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        let back = v1::Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(
            (
                back.pids.current,
                back.memory.rss,
                back.memory.usage.usage,
                back.cpu.usage.total
            ),
            (2, 1234, 4096, 7)
        );
        st.v2 = true;
        let any = to_any(&st).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
        let back = v2::Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!((back.pids.current, back.memory.usage), (2, 4096));
    }

    /// Unlimited v2 figures come through as u64::MAX, and the v2-only parts
    /// (memory.events, io, hugetlb, rdma, swap) are carried.
    #[test]
    fn v2_limits_and_events() {
        use runtime_core::stats::{HugetlbStat, IoStat, RdmaStat};
        let mut st = Stats {
            v2: true,
            pids_limit: u64::MAX,
            memory_limit: 64 << 20,
            swap_limit: u64::MAX,
            swap_usage: 4096,
            io: vec![IoStat {
                major: 8,
                minor: 0,
                values: [("rbytes".to_string(), 10), ("wios".to_string(), 3)].into(),
            }],
            hugetlb: vec![HugetlbStat {
                page_size: "2MB".into(),
                current: 0,
                max: u64::MAX,
            }],
            rdma_limit: vec![RdmaStat {
                device: "mlx5_0".into(),
                hca_handles: u32::MAX,
                hca_objects: 7,
            }],
            ..Default::default()
        };
        st.memory_events.insert("oom_kill".into(), 1);
        st.memory_events.insert("max".into(), 9);
        let back = v2::Metrics::parse_from_bytes(&to_any(&st).unwrap().value).unwrap();
        assert_eq!(back.pids.limit, u64::MAX);
        assert_eq!(
            (
                back.memory.usage_limit,
                back.memory.swap_limit,
                back.memory.swap_usage
            ),
            (64 << 20, u64::MAX, 4096)
        );
        assert_eq!(
            (back.memory_events.oom_kill, back.memory_events.max),
            (1, 9)
        );
        assert_eq!(
            (
                back.io.usage[0].major,
                back.io.usage[0].rbytes,
                back.io.usage[0].wios
            ),
            (8, 10, 3)
        );
        assert_eq!(
            (back.hugetlb[0].pagesize.as_str(), back.hugetlb[0].max),
            ("2MB", u64::MAX)
        );
        assert_eq!(back.rdma.limit[0].hca_handles, u32::MAX);
    }
}
