//! Block I/O: v1 `blkio.*`, v2 `io.weight` / `io.max`.

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use super::resources::{refuse, set, At};
use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    pub(super) fn block_io(&self, b: &LinuxBlockIo) -> Result<()> {
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
}

fn io_max_line(t: &LinuxThrottleDevice, key: &str) -> String {
    format!("{}:{} {key}={}", t.major(), t.minor(), t.rate())
}
