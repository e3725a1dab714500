//! `linux.resources.unified`: cgroup v2 interface files by name.

use super::resources::{refuse, set};
use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    /// `unified`: cgroup v2 files by name, in the container's v2 cgroup.
    pub(super) fn unified_key(&self, key: &str, value: &str) -> Result<()> {
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
