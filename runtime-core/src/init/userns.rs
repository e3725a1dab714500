//! User namespaces: the helper (still root in the host's namespace) writes the
//! init's ID maps from outside; the init waits for them, then becomes root of
//! its namespace, so the rest of set-up (mounts, files) runs as mapped root.

use std::os::fd::OwnedFd;

use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::error::{Error, Result};
use crate::sys;

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes `/proc/<pid>/{uid,gid}_map` from the spec.
pub fn write_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref().expect("checked");
    for (file, field, maps) in [
        ("uid_map", "linux.uidMappings", linux.uid_mappings()),
        ("gid_map", "linux.gidMappings", linux.gid_mappings()),
    ] {
        let text = map_text(maps.as_deref().unwrap_or_default());
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, &text)
            .map_err(|e| Error::Init(format!("{field}: write {path} ({}): {e}", text.trim())))?;
    }
    Ok(())
}

/// Blocks until the helper is done (ID maps, createRuntime hooks) and returns
/// our pid as the host sees it (hooks need it); then, in a new user namespace,
/// takes uid/gid 0 of it (files we create must have mapped owners).
pub fn wait_for_maps(sync: &OwnedFd, new_user: bool) -> Result<i32> {
    let mut b = [0u8; 4];
    let host_pid = match nix::unistd::read(sync, &mut b) {
        Ok(4) => i32::from_ne_bytes(b),
        // The helper failed (ID maps, a createRuntime hook) and reports why
        // itself: a report of ours would race with its own and could hide it.
        // The shim sees our exit through the pidfd it holds.
        // SAFETY: _exit takes an integer and does not return.
        Ok(_) => unsafe { libc::_exit(1) },
        Err(e) => return Err(Error::nix("read", "init sync", e)),
    };
    if new_user {
        sys::setresgid(0).map_err(|e| {
            Error::sys(
                "setresgid",
                "0 in the user namespace (is container GID 0 mapped?)",
                e,
            )
        })?;
        sys::setresuid(0).map_err(|e| {
            Error::sys(
                "setresuid",
                "0 in the user namespace (is container UID 0 mapped?)",
                e,
            )
        })?;
    }
    Ok(host_pid)
}
