//! Memory controller: v1 `memory.*limit_in_bytes` and friends, v2
//! `memory.max` / `memory.swap.max` / `memory.low`.

use std::fs;
use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use super::resources::{refuse, set, v2_limit, At};
use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    pub(super) fn memory(&self, m: &LinuxMemory) -> Result<()> {
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
    pub(super) fn check_usage(&self, m: &LinuxMemory, limit: i64, at: At) -> Result<()> {
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

/// OCI's swap is memory+swap; v2's memory.swap.max is swap alone.
pub(super) fn v2_swap(swap: i64, limit: Option<i64>) -> Result<String> {
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
