//! `linux.resources`: each field written to its cgroup file, v1 or v2, or
//! refused by name when this host has no place for it.
//!
//! A controller is taken from its v1 hierarchy when one is mounted (hybrid
//! hosts bind most controllers there), else from the container's v2 cgroup if
//! the controller is enabled for it (listed in its `cgroup.controllers`).

use std::fs;
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork, LinuxResources,
    LinuxThrottleDevice,
};

use super::Cgroup;
use crate::error::{Error, Result};

/// Where a controller's files are.
#[derive(Clone, Copy)]
enum At<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

impl At<'_> {
    fn dir(&self) -> &Path {
        match self {
            At::V1(d) | At::V2(d) => d,
        }
    }
}

/// Writes `value` to `file`, naming the spec field in the error.
fn set(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    let p = dir.join(file);
    fs::write(&p, value)
        .map_err(|e| Error::sys("write", format!("{field}: {} ({value})", p.display()), e))
}

fn refuse(field: &str, why: impl Into<String>) -> Error {
    Error::unsupported(field, why)
}

/// `-1` (or any negative) is "no limit": v2 spells it `max`.
fn v2_limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

impl Cgroup {
    fn at(&self, controller: &str) -> Option<At<'_>> {
        if let Some(d) = self.dir_of(controller) {
            return Some(At::V1(d));
        }
        let d = self.unified()?;
        let enabled = fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default();
        enabled
            .split_whitespace()
            .any(|c| c == controller)
            .then_some(At::V2(d))
    }

    fn need(&self, controller: &str, field: &str) -> Result<At<'_>> {
        self.at(controller).ok_or_else(|| {
            refuse(
                field,
                format!(
                    "this host has no {controller} controller for the container: neither a v1 {controller} \
                     hierarchy nor {controller} enabled in its cgroup v2 (cgroup.controllers)"
                ),
            )
        })
    }

    /// Applies the resource limits of the spec (at create and at update).
    pub fn apply(&self, res: Option<&LinuxResources>) -> Result<()> {
        let Some(res) = res else { return Ok(()) };
        if let Some(m) = res.memory() {
            self.memory(m)?;
        }
        if let Some(c) = res.cpu() {
            self.cpu(c)?;
        }
        if let Some(p) = res.pids() {
            let at = self.need("pids", "linux.resources.pids")?;
            let v = if p.limit() <= 0 {
                "max".to_string()
            } else {
                p.limit().to_string()
            };
            set(at.dir(), "pids.max", &v, "linux.resources.pids.limit")?;
        }
        if let Some(b) = res.block_io() {
            self.block_io(b)?;
        }
        for h in res.hugepage_limits().iter().flatten() {
            self.hugepages(h)?;
        }
        if let Some(n) = res.network() {
            self.network(n)?;
        }
        for (dev, r) in res.rdma().iter().flatten() {
            let field = format!("linux.resources.rdma[{dev}]");
            let at = self.need("rdma", &field)?;
            let mut v = dev.clone();
            if let Some(h) = r.hca_handles() {
                v += &format!(" hca_handle={h}");
            }
            if let Some(o) = r.hca_objects() {
                v += &format!(" hca_object={o}");
            }
            set(at.dir(), "rdma.max", &v, &field)?;
        }
        if let Some(devices) = res.devices().as_ref().filter(|d| !d.is_empty()) {
            match self.at("devices") {
                Some(At::V1(d)) => crate::init::devices::apply_v1_rules(d, devices)?,
                _ if self.v2_only() => {
                    return Err(refuse(
                        "linux.resources.devices",
                        "the cgroup v2 device controller needs an eBPF program, which this runtime does not build yet",
                    ))
                }
                _ => {
                    return Err(refuse(
                        "linux.resources.devices",
                        "no v1 devices hierarchy is mounted on this host",
                    ))
                }
            }
        }
        for (key, value) in res.unified().iter().flatten() {
            self.unified_key(key, value)?;
        }
        Ok(())
    }

    fn memory(&self, m: &LinuxMemory) -> Result<()> {
        let f = |n: &str| format!("linux.resources.memory.{n}");
        let at = self.need("memory", "linux.resources.memory")?;
        match at {
            At::V1(d) => {
                // memsw (memory + swap) can never be below the memory limit:
                // when it grows, it must be written first.
                let cur_sw: i64 = fs::read_to_string(d.join("memory.memsw.limit_in_bytes"))
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(i64::MAX);
                let swap_first = m.swap().is_some_and(|s| s < 0 || s > cur_sw);
                let write_swap = || -> Result<()> {
                    if let Some(s) = m.swap() {
                        let accounting = d.join("memory.memsw.limit_in_bytes").exists();
                        // swap == limit means "no swap" (what CRI always asks): without
                        // swap accounting the memory limit alone already gives that.
                        if !accounting && m.limit() == Some(s) {
                            return Ok(());
                        }
                        if !accounting {
                            return Err(refuse(
                                &f("swap"),
                                "swap accounting is off on this host (boot with swapaccount=1)",
                            ));
                        }
                        set(d, "memory.memsw.limit_in_bytes", &s.to_string(), &f("swap"))?;
                    }
                    Ok(())
                };
                if swap_first {
                    write_swap()?;
                }
                if let Some(l) = m.limit() {
                    self.check_usage(m, l, At::V1(d))?;
                    set(d, "memory.limit_in_bytes", &l.to_string(), &f("limit"))?;
                }
                if !swap_first {
                    write_swap()?;
                }
                if let Some(r) = m.reservation() {
                    set(
                        d,
                        "memory.soft_limit_in_bytes",
                        &r.to_string(),
                        &f("reservation"),
                    )?;
                }
                if m.kernel().is_some() {
                    ignored_kmem(&f("kernel"));
                }
                if let Some(v) = m.kernel_tcp() {
                    kmem(d, "memory.kmem.tcp.limit_in_bytes", v, &f("kernelTCP"))?;
                }
                if let Some(s) = m.swappiness() {
                    if s > 100 {
                        return Err(refuse(&f("swappiness"), format!("{s} is not in 0..=100")));
                    }
                    set(d, "memory.swappiness", &s.to_string(), &f("swappiness"))?;
                }
                if let Some(off) = m.disable_oom_killer() {
                    set(
                        d,
                        "memory.oom_control",
                        if off { "1" } else { "0" },
                        &f("disableOOMKiller"),
                    )?;
                }
                if let Some(h) = m.use_hierarchy() {
                    set(
                        d,
                        "memory.use_hierarchy",
                        if h { "1" } else { "0" },
                        &f("useHierarchy"),
                    )?;
                }
            }
            At::V2(d) => {
                if let Some(l) = m.limit() {
                    self.check_usage(m, l, At::V2(d))?;
                    set(d, "memory.max", &v2_limit(l), &f("limit"))?;
                }
                if let Some(s) = m.swap() {
                    set(d, "memory.swap.max", &v2_swap(s, m.limit())?, &f("swap"))?;
                }
                if let Some(r) = m.reservation() {
                    set(d, "memory.low", &v2_limit(r), &f("reservation"))?;
                }
                for (name, set) in [
                    ("kernel", m.kernel().is_some()),
                    ("kernelTCP", m.kernel_tcp().is_some()),
                ] {
                    if set {
                        ignored_kmem(&f(name));
                    }
                }
                let v1_only = [
                    ("swappiness", m.swappiness().is_some()),
                    ("disableOOMKiller", m.disable_oom_killer() == Some(true)),
                    ("useHierarchy", m.use_hierarchy() == Some(false)),
                ];
                if let Some((n, _)) = v1_only.iter().find(|(_, s)| *s) {
                    return Err(refuse(
                        &f(n),
                        "cgroup v2 has no such setting (it exists only in cgroup v1)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// `checkBeforeUpdate`: a new limit below the current usage is refused
    /// instead of letting the kernel reclaim or OOM-kill.
    fn check_usage(&self, m: &LinuxMemory, limit: i64, at: At) -> Result<()> {
        if m.check_before_update() != Some(true) || limit < 0 {
            return Ok(());
        }
        let (d, file) = match at {
            At::V1(d) => (d, "memory.usage_in_bytes"),
            At::V2(d) => (d, "memory.current"),
        };
        let usage = crate::stats::read_u64(d, file);
        if usage > limit as u64 {
            return Err(refuse(
                "linux.resources.memory.limit",
                format!("{limit} is below the current usage {usage} (checkBeforeUpdate)"),
            ));
        }
        Ok(())
    }

    fn cpu(&self, c: &LinuxCpu) -> Result<()> {
        let f = |n: &str| format!("linux.resources.cpu.{n}");
        let wants_cpu = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_period().is_some()
            || c.realtime_runtime().is_some();
        if wants_cpu {
            match self.need("cpu", "linux.resources.cpu")? {
                At::V1(d) => {
                    if let Some(s) = c.shares() {
                        set(d, "cpu.shares", &s.to_string(), &f("shares"))?;
                    }
                    if let Some(p) = c.period() {
                        set(d, "cpu.cfs_period_us", &p.to_string(), &f("period"))?;
                    }
                    if let Some(q) = c.quota() {
                        set(d, "cpu.cfs_quota_us", &q.to_string(), &f("quota"))?;
                    }
                    if let Some(b) = c.burst() {
                        set(d, "cpu.cfs_burst_us", &b.to_string(), &f("burst"))?;
                    }
                    if let Some(i) = c.idle() {
                        set(d, "cpu.idle", &i.to_string(), &f("idle"))?;
                    }
                    // The period first: the runtime is checked against it.
                    for (n, file, v) in [
                        (
                            "realtimePeriod",
                            "cpu.rt_period_us",
                            c.realtime_period().map(|v| v as i64),
                        ),
                        ("realtimeRuntime", "cpu.rt_runtime_us", c.realtime_runtime()),
                    ] {
                        if let Some(v) = v {
                            if !d.join(file).exists() {
                                return Err(refuse(&f(n), "this kernel has no real-time group scheduling (CONFIG_RT_GROUP_SCHED)"));
                            }
                            set(d, file, &v.to_string(), &f(n))?;
                        }
                    }
                }
                At::V2(d) => {
                    if let Some(shares) = c.shares() {
                        set(
                            d,
                            "cpu.weight",
                            &shares_to_weight(shares).to_string(),
                            &f("shares"),
                        )?;
                    }
                    if c.quota().is_some() || c.period().is_some() {
                        let q = c
                            .quota()
                            .filter(|q| *q > 0)
                            .map_or("max".to_string(), |q| q.to_string());
                        let v = format!("{q} {}", c.period().unwrap_or(100_000));
                        set(d, "cpu.max", &v, &f("quota"))?;
                    }
                    if let Some(b) = c.burst() {
                        set(d, "cpu.max.burst", &b.to_string(), &f("burst"))?;
                    }
                    if let Some(i) = c.idle() {
                        set(d, "cpu.idle", &i.to_string(), &f("idle"))?;
                    }
                    if c.realtime_period().is_some() || c.realtime_runtime().is_some() {
                        return Err(refuse(
                            &f("realtimeRuntime/realtimePeriod"),
                            "cgroup v2 has no real-time bandwidth control",
                        ));
                    }
                }
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            let at = self.need("cpuset", "linux.resources.cpu.cpus/mems")?;
            if let Some(cpus) = c.cpus() {
                set(at.dir(), "cpuset.cpus", cpus, &f("cpus"))?;
            }
            if let Some(mems) = c.mems() {
                set(at.dir(), "cpuset.mems", mems, &f("mems"))?;
            }
        }
        Ok(())
    }

    fn block_io(&self, b: &LinuxBlockIo) -> Result<()> {
        let f = |n: &str| format!("linux.resources.blockIO.{n}");
        let at = self.need(
            if self.dir_of("blkio").is_some() {
                "blkio"
            } else {
                "io"
            },
            "linux.resources.blockIO",
        )?;
        let d = at.dir();
        let v2 = matches!(at, At::V2(_));
        // The proportional weight lives in the I/O scheduler's file (BFQ), or the
        // controller's own on kernels that still have CFQ.
        let weight_file = |dev: bool| -> Option<&'static str> {
            let names: &[&'static str] = match (v2, dev) {
                (false, false) => &["blkio.weight", "blkio.bfq.weight"],
                (false, true) => &["blkio.weight_device", "blkio.bfq.weight_device"],
                (true, _) => &["io.weight", "io.bfq.weight"],
            };
            names.iter().copied().find(|n| d.join(n).exists())
        };
        let no_weight = || {
            refuse(&f("weight"), "no proportional I/O weight on this host: the block devices use neither the BFQ nor the CFQ scheduler")
        };
        if let Some(w) = b.weight() {
            let file = weight_file(false).ok_or_else(no_weight)?;
            let v = if v2 {
                format!("default {w}")
            } else {
                w.to_string()
            };
            set(d, file, &v, &f("weight"))?;
        }
        if b.leaf_weight().is_some()
            || b.weight_device()
                .iter()
                .flatten()
                .any(|w| w.leaf_weight().is_some())
        {
            if v2 || !d.join("blkio.leaf_weight").exists() {
                return Err(refuse(&f("leafWeight"), "leaf weights existed only with the CFQ scheduler, which this kernel does not have"));
            }
            if let Some(w) = b.leaf_weight() {
                set(d, "blkio.leaf_weight", &w.to_string(), &f("leafWeight"))?;
            }
        }
        for wd in b.weight_device().iter().flatten() {
            let field = f(&format!("weightDevice[{}:{}]", wd.major(), wd.minor()));
            if let Some(w) = wd.weight() {
                let file = weight_file(true).ok_or_else(no_weight)?;
                set(
                    d,
                    file,
                    &format!("{}:{} {w}", wd.major(), wd.minor()),
                    &field,
                )?;
            }
            if let Some(w) = wd.leaf_weight() {
                set(
                    d,
                    "blkio.leaf_weight_device",
                    &format!("{}:{} {w}", wd.major(), wd.minor()),
                    &field,
                )?;
            }
        }
        let throttles: [(&str, &str, &str, &Option<Vec<LinuxThrottleDevice>>); 4] = [
            (
                "throttleReadBpsDevice",
                "blkio.throttle.read_bps_device",
                "rbps",
                b.throttle_read_bps_device(),
            ),
            (
                "throttleWriteBpsDevice",
                "blkio.throttle.write_bps_device",
                "wbps",
                b.throttle_write_bps_device(),
            ),
            (
                "throttleReadIOPSDevice",
                "blkio.throttle.read_iops_device",
                "riops",
                b.throttle_read_iops_device(),
            ),
            (
                "throttleWriteIOPSDevice",
                "blkio.throttle.write_iops_device",
                "wiops",
                b.throttle_write_iops_device(),
            ),
        ];
        for (name, v1_file, key, devs) in throttles {
            for t in devs.iter().flatten() {
                let field = f(&format!("{name}[{}:{}]", t.major(), t.minor()));
                if v2 {
                    set(d, "io.max", &io_max_line(t, key), &field)?;
                } else {
                    set(
                        d,
                        v1_file,
                        &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                        &field,
                    )?;
                }
            }
        }
        Ok(())
    }

    fn hugepages(&self, h: &LinuxHugepageLimit) -> Result<()> {
        let field = format!("linux.resources.hugepageLimits[{}]", h.page_size());
        if !valid_page_size(h.page_size()) {
            return Err(refuse(&field, "pageSize must be a size like 2MB or 1GB"));
        }
        let at = self.need("hugetlb", &field)?;
        let file = hugetlb_file(h.page_size(), matches!(at, At::V2(_)));
        if !at.dir().join(&file).exists() {
            return Err(refuse(
                &field,
                format!(
                    "this host has no {} huge pages ({file} is missing)",
                    h.page_size()
                ),
            ));
        }
        set(at.dir(), &file, &h.limit().to_string(), &field)
    }

    fn network(&self, n: &LinuxNetwork) -> Result<()> {
        if self.v2_only() {
            return Err(refuse(
                "linux.resources.network",
                "cgroup v2 has no network classes (net_cls/net_prio exist only in cgroup v1)",
            ));
        }
        if let Some(id) = n.class_id() {
            let at = self.need("net_cls", "linux.resources.network.classID")?;
            set(
                at.dir(),
                "net_cls.classid",
                &id.to_string(),
                "linux.resources.network.classID",
            )?;
        }
        for p in n.priorities().iter().flatten() {
            let field = format!("linux.resources.network.priorities[{}]", p.name());
            let at = self.need("net_prio", &field)?;
            set(
                at.dir(),
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
                &field,
            )?;
        }
        Ok(())
    }

    /// `unified`: cgroup v2 files by name, in the container's v2 cgroup.
    fn unified_key(&self, key: &str, value: &str) -> Result<()> {
        let field = format!("linux.resources.unified[{key}]");
        let Some(d) = self.unified() else {
            return Err(refuse(&field, "this host has no cgroup v2 hierarchy"));
        };
        // A file of the container's own cgroup, never a path elsewhere.
        if key.contains('/') || key.starts_with('.') || !key.contains('.') {
            return Err(refuse(
                &field,
                "must be the name of a cgroup v2 interface file such as memory.high",
            ));
        }
        if !d.join(key).exists() {
            let controller = key.split('.').next().unwrap_or(key);
            return Err(refuse(
                &field,
                format!("{key} does not exist in the container's cgroup v2: the {controller} controller is not enabled there (or bound to cgroup v1 on this hybrid host)"),
            ));
        }
        set(d, key, value, &field)
    }
}

/// `memory.kernel` (and on v2 `kernelTCP`): deprecated by the runtime spec;
/// Linux 5.16 stopped enforcing a kernel memory limit and v2 never had one.
/// Accepted and ignored with a warning, as runc does, so specs written for
/// older runtimes still run.
fn ignored_kmem(field: &str) {
    log::warn!(
        "{field} is deprecated and ignored: this kernel has no separate kernel memory limit"
    );
}

/// `kernelTCP` on v1 (`memory.kmem.tcp.limit_in_bytes` is still enforced):
/// read back, so a kernel that ignores the write is refused, not ignored.
fn kmem(d: &Path, file: &str, v: i64, field: &str) -> Result<()> {
    let gone = || {
        refuse(
            field,
            "this kernel no longer enforces separate kernel memory limits (deprecated since Linux 5.4): remove the field",
        )
    };
    if !d.join(file).exists() {
        return Err(gone());
    }
    set(d, file, &v.to_string(), field)?;
    let now: i64 = fs::read_to_string(d.join(file))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1);
    // -1 reads back as the page-aligned maximum; a limit must read back as itself
    // (rounded down to a page).
    let page = 4096;
    if v >= 0 && now != v / page * page {
        return Err(gone());
    }
    Ok(())
}

/// runc's and crun's conversion of cpu shares [2..262144] to weight [1..10000].
fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262144) - 2) * 9999) / 262142
}

/// OCI's swap is memory+swap; v2's memory.swap.max is swap alone.
fn v2_swap(swap: i64, limit: Option<i64>) -> Result<String> {
    let field = "linux.resources.memory.swap";
    if swap < 0 {
        return Ok("max".into());
    }
    match limit {
        Some(l) if l > 0 && swap >= l => Ok((swap - l).to_string()),
        Some(l) if l > 0 => Err(refuse(
            field,
            format!("{swap} (memory+swap) is below memory.limit {l}"),
        )),
        _ => Err(refuse(
            field,
            "a swap limit needs a memory.limit (swap counts memory+swap)",
        )),
    }
}

fn io_max_line(t: &LinuxThrottleDevice, key: &str) -> String {
    format!("{}:{} {key}={}", t.major(), t.minor(), t.rate())
}

fn valid_page_size(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "KB" | "MB" | "GB")
}

fn hugetlb_file(page_size: &str, v2: bool) -> String {
    if v2 {
        format!("hugetlb.{page_size}.max")
    } else {
        format!("hugetlb.{page_size}.limit_in_bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::super::Hierarchy;
    use super::*;
    use serde_json::json;

    /// A pretend v2-only host: a temp dir as the unified mount, with the
    /// container's cgroup directory and the files a kernel would show there.
    fn v2_cgroup(name: &str, controllers: &str, files: &[&str]) -> (Cgroup, std::path::PathBuf) {
        let root =
            std::env::temp_dir().join(format!("rshim-cg-unit-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dir = root.join("c");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
        for f in files {
            fs::write(dir.join(f), "").unwrap();
        }
        let h = Hierarchy {
            mount: root.clone(),
            name: String::new(),
            v2: true,
        };
        (
            Cgroup {
                rel: "c".into(),
                dirs: vec![(h, dir.clone())],
            },
            dir,
        )
    }

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn read(dir: &Path, f: &str) -> String {
        fs::read_to_string(dir.join(f)).unwrap()
    }

    #[test]
    fn v2_file_formats() {
        let (cg, d) = v2_cgroup(
            "formats",
            "cpu cpuset memory pids io hugetlb rdma",
            &["io.weight", "hugetlb.2MB.max"],
        );
        cg.apply(Some(&res(json!({
            "memory": {"limit": 1048576, "swap": 3145728, "reservation": 524288},
            "cpu": {"shares": 1024, "quota": 20000, "period": 50000, "burst": 1000, "idle": 1, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 0},
            "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 100}}
        }))))
        .unwrap();
        for (f, want) in [
            ("memory.max", "1048576"),
            ("memory.swap.max", "2097152"),
            ("memory.low", "524288"),
            ("cpu.weight", "39"),
            ("cpu.max", "20000 50000"),
            ("cpu.max.burst", "1000"),
            ("cpu.idle", "1"),
            ("cpuset.cpus", "0-1"),
            ("cpuset.mems", "0"),
            ("pids.max", "max"),
            ("io.weight", "8:0 200"), // the device line was written last
            ("io.max", "8:0 rbps=1000"),
            ("hugetlb.2MB.max", "4194304"),
            ("rdma.max", "mlx5_0 hca_handle=3 hca_object=100"),
        ] {
            assert_eq!(read(&d, f), want, "{f}");
        }
        let _ = fs::remove_dir_all(d.parent().unwrap());
    }

    #[test]
    fn v2_refusals_name_the_field() {
        let (cg, d) = v2_cgroup("refuse", "memory cpu", &["memory.high"]);
        for (r, field, why) in [
            (
                json!({"devices": [{"allow": false, "access": "rwm"}]}),
                "linux.resources.devices",
                "eBPF",
            ),
            (
                json!({"memory": {"swappiness": 10}}),
                "memory.swappiness",
                "cgroup v1",
            ),
            (
                json!({"memory": {"disableOOMKiller": true}}),
                "memory.disableOOMKiller",
                "cgroup v1",
            ),
            (
                json!({"memory": {"swap": 100}}),
                "memory.swap",
                "needs a memory.limit",
            ),
            (
                json!({"cpu": {"realtimeRuntime": 100}}),
                "cpu.realtime",
                "real-time",
            ),
            (
                json!({"network": {"classID": 1}}),
                "linux.resources.network",
                "v1",
            ),
            (
                json!({"pids": {"limit": 5}}),
                "linux.resources.pids",
                "no pids controller",
            ),
            (
                json!({"hugepageLimits": [{"pageSize": "2XB", "limit": 1}]}),
                "hugepageLimits[2XB]",
                "pageSize",
            ),
            (
                json!({"unified": {"../../cgroup.procs": "1"}}),
                "unified[../../cgroup.procs]",
                "interface file",
            ),
            (
                json!({"unified": {"io.max": "8:0 rbps=1"}}),
                "unified[io.max]",
                "io controller is not enabled",
            ),
        ] {
            let e = cg.apply(Some(&res(r.clone()))).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(why), "{r}: {e}");
        }
        cg.apply(Some(&res(json!({"unified": {"memory.high": "12345"}}))))
            .unwrap();
        assert_eq!(read(&d, "memory.high"), "12345");
        // Deprecated kernel memory limits are accepted (and ignored), not refused.
        cg.apply(Some(&res(
            json!({"memory": {"kernel": 1000, "kernelTCP": 2000}}),
        )))
        .unwrap();
        let _ = fs::remove_dir_all(d.parent().unwrap());
    }

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(v2_swap(-1, None).unwrap(), "max");
        assert!(v2_swap(10, Some(20)).is_err());
        assert!(valid_page_size("1GB") && valid_page_size("64KB") && !valid_page_size("MB"));
        assert_eq!(hugetlb_file("1GB", false), "hugetlb.1GB.limit_in_bytes");
    }
}
