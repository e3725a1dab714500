//! `linux.resources` as systemd unit properties (cgroup v2), and the
//! properties every container unit gets.
//!
//! The split: on every (re)realization of a unit — its start, a
//! `SetUnitProperties`, a `daemon-reload` — systemd rewrites the interface files
//! it manages (`memory.{min,low,high,max,swap.max}`, `cpu.weight`, `cpu.max`,
//! `cpuset.{cpus,mems}`, `io.weight`, `io.max` of the devices it knows,
//! `pids.max`) from the unit's properties, with its defaults (`max`, `100`)
//! for the ones not set. So each of those limits MUST be a property or systemd
//! would later erase it. Everything else (hugetlb, rdma, `memory.oom.group`,
//! other `unified` keys, cpu burst/idle) systemd never touches: those are
//! files only. The cgroupfs code then writes every limit into the delegated
//! cgroup as well, as runc does: a property change is applied by systemd
//! asynchronously, after its reply, and the files make the limit exact and in
//! force when Create/Update return.
//!
//! Device rules are deliberately not properties: with neither `DevicePolicy=`
//! nor `DeviceAllow=` systemd attaches no device program of its own to the
//! unit (and detaches only programs it attached), so the runtime's own
//! BPF_PROG_TYPE_CGROUP_DEVICE program is the only one, attached once.

use oci_spec::runtime::LinuxResources;

use super::unit::Unit;
use crate::error::{Error, Result};

/// systemd's `infinity` for a u64 limit.
pub const INFINITY: u64 = u64::MAX;

/// A D-Bus value, in the types systemd's properties take; independent of the
/// D-Bus crate so the encoding is unit-tested without a bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Str(String),
    U64(u64),
    /// `au`: `PIDs`.
    U32s(Vec<u32>),
    /// `ay`: CPU and NUMA node bitmasks.
    Bytes(Vec<u8>),
    /// `as`: `Wants`.
    Strs(Vec<String>),
    /// `a(st)`: per-device I/O limits, device path and value.
    PathU64s(Vec<(String, u64)>),
}

pub type Property = (&'static str, Value);

/// What every container unit gets: a description, its slice, delegation,
/// no default dependencies (a container must not wait for or order against
/// other units), accounting so the controllers are enabled, and garbage
/// collection even when it failed (no `reset-failed` needed for the name to be
/// free again). `pid` (a scope's first process) is `None` for a slice, which
/// holds no process itself.
pub fn base(unit: &Unit, id: &str, pid: Option<u32>) -> Vec<Property> {
    let mut p: Vec<Property> = vec![
        (
            "Description",
            Value::Str(format!("containerd-shim-rust-v1 container {id}")),
        ),
        ("DefaultDependencies", Value::Bool(false)),
        ("CollectMode", Value::Str("inactive-or-failed".into())),
        ("MemoryAccounting", Value::Bool(true)),
        ("CPUAccounting", Value::Bool(true)),
        ("TasksAccounting", Value::Bool(true)),
        ("IOAccounting", Value::Bool(true)),
    ];
    if unit.is_slice() {
        // A slice's place is its name; Wants= keeps the parent started.
        p.push(("Wants", Value::Strs(vec![unit.slice.clone()])));
    } else {
        p.push(("Slice", Value::Str(unit.slice.clone())));
        p.push(("Delegate", Value::Bool(true)));
        if let Some(pid) = pid {
            p.push(("PIDs", Value::U32s(vec![pid])));
        }
    }
    p
}

fn bad(field: &str, why: impl Into<String>) -> Error {
    Error::unsupported(field, why)
}

/// OCI `cpu.shares` (2..262144) to cgroup v2 `cpu.weight` (1..10000), as runc.
fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262144) - 2) * 9999) / 262142
}

/// `CPUQuotaPerSecUSec` for a quota per period; systemd keeps percent with
/// two decimals in the transient unit file, and a daemon-reload would round a
/// finer value: round up to 10 ms per second as runc does (the exact quota is
/// written to `cpu.max` as well).
fn quota_per_sec(quota: i64, period: u64) -> u64 {
    if quota <= 0 {
        return INFINITY;
    }
    let period = if period == 0 { 100_000 } else { period };
    let per_sec = (quota as u64).saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000) * 10_000
}

/// A cpuset list (`0-3,8`) as systemd's bitmask: bit N of byte N/8.
pub fn cpuset_mask(list: &str, field: &str) -> Result<Vec<u8>> {
    let mut mask = Vec::new();
    let why = |part: &str| {
        bad(
            field,
            format!("{list:?}: {part:?} is not a CPU/node number or range like 0-3"),
        )
    };
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: usize = lo.parse().map_err(|_| why(part))?;
        let hi: usize = hi.parse().map_err(|_| why(part))?;
        // 8192 is the kernel's largest NR_CPUS; a bigger number is a typo.
        if lo > hi || hi >= 8192 {
            return Err(why(part));
        }
        for n in lo..=hi {
            if mask.len() <= n / 8 {
                mask.resize(n / 8 + 1, 0);
            }
            mask[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(mask)
}

/// A v2 limit value (`max` or bytes) of a `unified` key.
fn unified_u64(key: &str, value: &str) -> Result<u64> {
    let v = value.trim();
    if v == "max" {
        return Ok(INFINITY);
    }
    v.parse().map_err(|_| {
        bad(
            &format!("linux.resources.unified[{key}]"),
            format!("{value:?} is neither a number nor \"max\""),
        )
    })
}

fn dev(major: i64, minor: i64) -> String {
    format!("/dev/block/{major}:{minor}")
}

/// The properties for `res` on a cgroup v2 host (at create and at update).
pub fn resources(res: &LinuxResources) -> Result<Vec<Property>> {
    let mut p: Vec<Property> = Vec::new();
    if let Some(m) = res.memory() {
        match m.limit() {
            Some(l) if l > 0 => p.push(("MemoryMax", Value::U64(l as u64))),
            Some(l) if l < 0 => p.push(("MemoryMax", Value::U64(INFINITY))),
            _ => {}
        }
        match m.reservation() {
            Some(r) if r > 0 => p.push(("MemoryLow", Value::U64(r as u64))),
            Some(r) if r < 0 => p.push(("MemoryLow", Value::U64(INFINITY))),
            _ => {}
        }
        // OCI's swap is memory+swap, systemd's MemorySwapMax is swap alone.
        // A value the conversion cannot make is left to the file code, whose
        // error names the field.
        match (m.swap(), m.limit()) {
            (Some(s), _) if s < 0 => p.push(("MemorySwapMax", Value::U64(INFINITY))),
            (Some(s), Some(l)) if s > 0 && l > 0 && s >= l => {
                p.push(("MemorySwapMax", Value::U64((s - l) as u64)))
            }
            (Some(s), Some(l)) if s > 0 && l < 0 => p.push(("MemorySwapMax", Value::U64(INFINITY))),
            _ => {}
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares().filter(|s| *s > 0) {
            p.push(("CPUWeight", Value::U64(shares_to_weight(s))));
        }
        let period = c.period().unwrap_or(0);
        if period != 0 {
            p.push(("CPUQuotaPeriodUSec", Value::U64(period)));
        }
        if c.quota().is_some_and(|q| q != 0) || period != 0 {
            p.push((
                "CPUQuotaPerSecUSec",
                Value::U64(quota_per_sec(c.quota().unwrap_or(-1), period)),
            ));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.trim().is_empty()) {
            p.push((
                "AllowedCPUs",
                Value::Bytes(cpuset_mask(cpus, "linux.resources.cpu.cpus")?),
            ));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.trim().is_empty()) {
            p.push((
                "AllowedMemoryNodes",
                Value::Bytes(cpuset_mask(mems, "linux.resources.cpu.mems")?),
            ));
        }
    }
    if let Some(pids) = res.pids() {
        match pids.limit() {
            l if l > 0 => p.push(("TasksMax", Value::U64(l as u64))),
            l if l < 0 => p.push(("TasksMax", Value::U64(INFINITY))),
            _ => {}
        }
    }
    if let Some(b) = res.block_io() {
        // The same value the file code writes to io.weight ("default W").
        if let Some(w) = b.weight().filter(|w| *w > 0) {
            p.push(("IOWeight", Value::U64(u64::from(w))));
        }
        let weights: Vec<(String, u64)> = b
            .weight_device()
            .iter()
            .flatten()
            .filter_map(|d| {
                d.weight()
                    .map(|w| (dev(d.major(), d.minor()), u64::from(w)))
            })
            .collect();
        if !weights.is_empty() {
            p.push(("IODeviceWeight", Value::PathU64s(weights)));
        }
        for (name, list) in [
            ("IOReadBandwidthMax", b.throttle_read_bps_device()),
            ("IOWriteBandwidthMax", b.throttle_write_bps_device()),
            ("IOReadIOPSMax", b.throttle_read_iops_device()),
            ("IOWriteIOPSMax", b.throttle_write_iops_device()),
        ] {
            let v: Vec<(String, u64)> = list
                .iter()
                .flatten()
                .map(|t| (dev(t.major(), t.minor()), t.rate()))
                .collect();
            if !v.is_empty() {
                p.push((name, Value::PathU64s(v)));
            }
        }
    }
    let mut unified: Vec<_> = res.unified().iter().flatten().collect();
    // Map order is random; the properties (and so systemd's last-wins) must not be.
    unified.sort();
    for (key, value) in unified {
        unified_property(&mut p, key, value)?;
    }
    Ok(p)
}

/// `unified` keys that name a file systemd manages become its property
/// (a later property wins in systemd, as the unified key wins in runc).
fn unified_property(p: &mut Vec<Property>, key: &str, value: &str) -> Result<()> {
    let field = format!("linux.resources.unified[{key}]");
    let name = match key {
        "memory.min" => "MemoryMin",
        "memory.low" => "MemoryLow",
        "memory.high" => "MemoryHigh",
        "memory.max" => "MemoryMax",
        "memory.swap.max" => "MemorySwapMax",
        "pids.max" => "TasksMax",
        "cpu.weight" => {
            let w: u64 = value
                .trim()
                .parse()
                .map_err(|_| bad(&field, format!("{value:?} is not a number")))?;
            p.push(("CPUWeight", Value::U64(w)));
            return Ok(());
        }
        "io.weight" => {
            // "W" or "default W"; per-device lines stay in the file.
            let v = value.trim();
            let w = v.strip_prefix("default").map(str::trim).unwrap_or(v);
            if let Ok(w) = w.parse::<u64>() {
                p.push(("IOWeight", Value::U64(w)));
            }
            return Ok(());
        }
        "cpu.max" => {
            let mut it = value.split_whitespace();
            let quota = it.next().unwrap_or("");
            let period: u64 = match it.next() {
                Some(s) => s
                    .parse()
                    .map_err(|_| bad(&field, format!("{value:?}: bad period")))?,
                None => 100_000,
            };
            let quota: i64 = if quota == "max" {
                -1
            } else {
                quota.parse().map_err(|_| {
                    bad(
                        &field,
                        format!("{value:?}: quota is neither a number nor max"),
                    )
                })?
            };
            p.push(("CPUQuotaPeriodUSec", Value::U64(period)));
            p.push((
                "CPUQuotaPerSecUSec",
                Value::U64(quota_per_sec(quota, period)),
            ));
            return Ok(());
        }
        "cpuset.cpus" | "cpuset.mems" => {
            let name = if key == "cpuset.cpus" {
                "AllowedCPUs"
            } else {
                "AllowedMemoryNodes"
            };
            p.push((name, Value::Bytes(cpuset_mask(value, &field)?)));
            return Ok(());
        }
        _ => return Ok(()),
    };
    p.push((name, Value::U64(unified_u64(key, value)?)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn get<'a>(p: &'a [Property], name: &str) -> Option<&'a Value> {
        p.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    #[test]
    fn scope_base_properties() {
        let u = super::super::unit::parse("system.slice:rshim:c1").unwrap();
        let p = base(&u, "c1", Some(42));
        assert_eq!(get(&p, "Slice"), Some(&Value::Str("system.slice".into())));
        assert_eq!(get(&p, "Delegate"), Some(&Value::Bool(true)));
        assert_eq!(get(&p, "PIDs"), Some(&Value::U32s(vec![42])));
        assert_eq!(get(&p, "DefaultDependencies"), Some(&Value::Bool(false)));
        // Never device properties: the runtime's own device program is the only one.
        assert!(p.iter().all(|(n, _)| !n.starts_with("Device")));
    }

    #[test]
    fn slice_base_properties() {
        let u = super::super::unit::parse("kubepods.slice::kubepods-pod1.slice").unwrap();
        let p = base(&u, "c1", None);
        assert_eq!(
            get(&p, "Wants"),
            Some(&Value::Strs(vec!["kubepods.slice".into()]))
        );
        assert!(get(&p, "Slice").is_none() && get(&p, "PIDs").is_none());
    }

    #[test]
    fn memory_cpu_pids() {
        let p = resources(&res(
            r#"{"memory":{"limit":67108864,"swap":134217728,"reservation":1048576},
                "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-2,9","mems":"0"},
                "pids":{"limit":20}}"#,
        ))
        .unwrap();
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(64 << 20)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(64 << 20)));
        assert_eq!(get(&p, "MemoryLow"), Some(&Value::U64(1 << 20)));
        assert_eq!(get(&p, "CPUWeight"), Some(&Value::U64(39)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(
            get(&p, "AllowedCPUs"),
            Some(&Value::Bytes(vec![0b111, 0b10]))
        );
        assert_eq!(get(&p, "AllowedMemoryNodes"), Some(&Value::Bytes(vec![1])));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(20)));
    }

    #[test]
    fn unlimited_values_are_infinity() {
        let p = resources(&res(
            r#"{"memory":{"limit":-1,"swap":-1},"cpu":{"quota":-1,"period":100000},"pids":{"limit":-1}}"#,
        ))
        .unwrap();
        for n in [
            "MemoryMax",
            "MemorySwapMax",
            "CPUQuotaPerSecUSec",
            "TasksMax",
        ] {
            assert_eq!(get(&p, n), Some(&Value::U64(INFINITY)), "{n}");
        }
    }

    #[test]
    fn quota_rounds_up_to_10ms_per_second() {
        // 33 ms per 100 ms = 330 ms/s; 1 ms per 30 ms = 33.3 ms/s -> 40 ms/s.
        assert_eq!(quota_per_sec(33_000, 100_000), 330_000);
        assert_eq!(quota_per_sec(1_000, 30_000), 40_000);
        assert_eq!(quota_per_sec(50_000, 0), 500_000);
    }

    #[test]
    fn io_limits_name_block_devices() {
        let p = resources(&res(
            r#"{"blockIO":{"weight":300,"weightDevice":[{"major":8,"minor":0,"weight":50}],
                "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],
                "throttleWriteIOPSDevice":[{"major":253,"minor":1,"rate":100}]}}"#,
        ))
        .unwrap();
        assert_eq!(get(&p, "IOWeight"), Some(&Value::U64(300)));
        assert_eq!(
            get(&p, "IODeviceWeight"),
            Some(&Value::PathU64s(vec![("/dev/block/8:0".into(), 50)]))
        );
        assert_eq!(
            get(&p, "IOReadBandwidthMax"),
            Some(&Value::PathU64s(vec![("/dev/block/8:0".into(), 1 << 20)]))
        );
        assert_eq!(
            get(&p, "IOWriteIOPSMax"),
            Some(&Value::PathU64s(vec![("/dev/block/253:1".into(), 100)]))
        );
    }

    #[test]
    fn unified_keys_systemd_manages_become_properties() {
        let p = resources(&res(
            r#"{"memory":{"limit":1000},"unified":{"memory.high":"4096","memory.max":"max",
                "cpu.max":"25000 50000","cpu.weight":"7","pids.max":"9","io.weight":"default 80",
                "hugetlb.2MB.max":"0","memory.oom.group":"1"}}"#,
        ))
        .unwrap();
        assert_eq!(get(&p, "MemoryHigh"), Some(&Value::U64(4096)));
        // The unified key comes after (and wins over) memory.limit.
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(INFINITY)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(50_000)));
        assert_eq!(get(&p, "CPUWeight"), Some(&Value::U64(7)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(9)));
        assert_eq!(get(&p, "IOWeight"), Some(&Value::U64(80)));
        // Files systemd never writes stay files only.
        let names: Vec<&str> = p.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), 8, "{names:?}");
    }

    #[test]
    fn files_only_fields_make_no_property() {
        let p = resources(&res(
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":0}],"cpu":{"burst":1000,"idle":1},
                "memory":{"swappiness":10},"network":{"classID":1}}"#,
        ))
        .unwrap();
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = resources(&res(r#"{"cpu":{"cpus":"0-x"}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.resources.cpu.cpus"), "{e}");
        let e = resources(&res(r#"{"unified":{"memory.high":"lots"}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.resources.unified[memory.high]"), "{e}");
        assert!(cpuset_mask("3-1", "f").is_err());
        assert!(cpuset_mask("99999", "f").is_err());
    }
}
