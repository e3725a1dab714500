//! net_cls / net_prio (cgroup v1 only).

use oci_spec::runtime::LinuxNetwork;

use super::resources::{refuse, set};
use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    pub(super) fn network(&self, n: &LinuxNetwork) -> Result<()> {
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
}
