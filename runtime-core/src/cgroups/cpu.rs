//! CPU controller: v1 `cpu.shares` / CFS and RT bandwidth, v2 `cpu.weight`
//! / `cpu.max`. The cpuset part of `linux.resources.cpu` is in [`super::cpuset`].

use oci_spec::runtime::LinuxCpu;

use super::resources::{refuse, set, At};
use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    pub(super) fn cpu(&self, c: &LinuxCpu) -> Result<()> {
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
        Ok(())
    }
}

/// runc's and crun's conversion of cpu shares [2..262144] to weight [1..10000].
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262144) - 2) * 9999) / 262142
}
