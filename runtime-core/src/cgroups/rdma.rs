//! rdma controller: `rdma.max`, the same file on v1 and v2.

use std::collections::HashMap;

use oci_spec::runtime::LinuxRdma;

use super::resources::set;
use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    pub(super) fn rdma(&self, limits: &HashMap<String, LinuxRdma>) -> Result<()> {
        for (dev, r) in limits {
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
        Ok(())
    }
}
