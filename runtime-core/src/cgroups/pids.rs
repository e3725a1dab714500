//! pids controller: `pids.max`, the same file on v1 and v2.

use oci_spec::runtime::LinuxPids;

use super::resources::set;
use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    pub(super) fn pids(&self, p: &LinuxPids) -> Result<()> {
        let at = self.need("pids", "linux.resources.pids")?;
        // 0 or negative: no limit (runtime-spec), which the kernel spells `max`.
        let v = if p.limit() <= 0 {
            "max".to_string()
        } else {
            p.limit().to_string()
        };
        set(at.dir(), "pids.max", &v, "linux.resources.pids.limit")
    }
}
