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
/// /proc/sys is made read-only). Each file is opened from a verified procfs
/// `/proc/sys` without following symlinks or crossing a mount: a bind mount
/// over a sysctl file (from the bundle's mounts) cannot redirect the write to
/// another file (the class of runc's CVE-2025-52881).
pub fn apply(sysctl: &HashMap<String, String>) -> Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let dir = crate::sys::openat2(
        libc::AT_FDCWD,
        c"/proc/sys",
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        libc::RESOLVE_NO_SYMLINKS,
    )
    .map_err(|e| Error::sys("openat2", "/proc/sys (linux.sysctl)", e))?;
    if !super::rootfs::is_procfs_fd(dir.as_raw_fd()) {
        return Err(Error::unsupported(
            "linux.sysctl",
            "/proc/sys is not on procfs",
        ));
    }
    for (key, value) in sysctl {
        let rel = key.replace('.', "/");
        let field = format!("linux.sysctl[{key}]");
        if rel.split('/').any(|c| c.is_empty() || c == "..") {
            return Err(Error::unsupported(field, "not a sysctl name"));
        }
        let c = std::ffi::CString::new(rel.as_str())
            .map_err(|_| Error::unsupported(&field, "NUL in name"))?;
        let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV;
        let fd =
            crate::sys::openat2(dir.as_raw_fd(), &c, libc::O_WRONLY, 0, resolve).map_err(|e| {
                let why = if e.raw_os_error() == Some(libc::EXDEV) {
                    " (a mount covers it: refusing to write through it)"
                } else {
                    ""
                };
                Error::Init(format!("{field} = {value}: open /proc/sys/{rel}: {e}{why}"))
            })?;
        std::fs::File::from(fd)
            .write_all(value.as_bytes())
            .map_err(|e| Error::Init(format!("{field} = {value}: write /proc/sys/{rel}: {e}")))?;
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
