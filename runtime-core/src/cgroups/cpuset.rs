//! cpuset controller: `linux.resources.cpu.cpus` / `.mems`, the same file
//! names on v1 and v2.

use oci_spec::runtime::LinuxCpu;

use super::resources::set;
use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    pub(super) fn cpuset(&self, c: &LinuxCpu) -> Result<()> {
        let f = |n: &str| format!("linux.resources.cpu.{n}");
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
}
