//! `linux.sysctl`: only keys the kernel namespaces, and only when the container's
//! namespace of that kind is not the host's (a new one, or one joined by path, as a
//! pod's sandbox joins the network namespace CNI made). Anything else would change
//! the host.

use std::collections::HashMap;

use oci_spec::runtime::LinuxNamespaceType as Ns;

use super::namespaces::Plan;
use crate::error::{Error, Result};

/// Which namespace isolates `key`, or None when the key is host-global.
fn owner(key: &str) -> Option<Ns> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(Ns::Ipc)
    } else if key.starts_with("net.") {
        Some(Ns::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(Ns::Uts)
    } else {
        None
    }
}

/// Checks every key before writing any (no half-applied set).
pub fn check(sysctl: &HashMap<String, String>, plan: &Plan) -> Result<()> {
    for key in sysctl.keys() {
        let field = format!("linux.sysctl[{key}]");
        let Some(ns) = owner(key) else {
            return Err(Error::unsupported(
                field,
                "not a namespaced sysctl: setting it would change the host",
            ));
        };
        if !plan.is_private(ns) {
            return Err(Error::unsupported(
                field,
                format!("needs a {ns} namespace other than the host's in linux.namespaces (a new one, or a path to another)"),
            ));
        }
    }
    Ok(())
}

/// Writes them through the container's /proc/sys (after pivot_root, before
/// /proc/sys is made read-only).
pub fn apply(sysctl: &HashMap<String, String>) -> Result<()> {
    for (key, value) in sysctl {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| {
            Error::Init(format!("linux.sysctl[{key}] = {value}: write {path}: {e}"))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert_eq!(owner("net.ipv4.ip_forward"), Some(Ns::Network));
        assert_eq!(owner("kernel.shmmax"), Some(Ns::Ipc));
        assert_eq!(owner("fs.mqueue.msg_max"), Some(Ns::Ipc));
        assert_eq!(owner("kernel.domainname"), Some(Ns::Uts));
        assert_eq!(owner("vm.swappiness"), None);
        assert_eq!(owner("kernel.pid_max"), None);
    }
}
