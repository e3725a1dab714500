//! Loading `config.json` and refusing, by name, what this runtime does not do.
//!
//! Every field is either applied somewhere in this crate or refused here with
//! an error that names it: nothing is silently ignored.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// Reads and parses `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|e| Error::sys("read", path.display(), e))?;
    serde_json::from_slice(&data).map_err(|e| Error::Spec {
        path: path.clone(),
        msg: e.to_string(),
    })
}

/// The rootfs directory: `root.path`, relative to the bundle unless absolute.
pub fn rootfs(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let config = bundle.join("config.json");
    let root = spec.root().as_ref().ok_or_else(|| Error::Spec {
        path: config.clone(),
        msg: "root is missing: set root.path to the container's root filesystem".into(),
    })?;
    let path = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => Ok(path),
        Ok(_) => Err(Error::Spec {
            path: config,
            msg: format!("root.path {} is not a directory", path.display()),
        }),
        Err(e) => Err(Error::Spec {
            path: config,
            msg: format!(
                "root.path {} cannot be used ({e}): create the rootfs there or fix root.path",
                path.display()
            ),
        }),
    }
}

/// Refuses the fields we do not implement yet, each by name.
pub fn check_supported(spec: &Spec) -> Result<()> {
    let process = spec.process().as_ref().ok_or_else(|| {
        Error::unsupported(
            "process",
            "a container needs a process to run: set process.args",
        )
    })?;
    check_process(process, "process")?;
    let Some(linux) = spec.linux() else {
        return Err(Error::unsupported(
            "linux",
            "a Linux container needs the linux section",
        ));
    };
    for ns in linux.namespaces().iter().flatten() {
        match ns.typ() {
            LinuxNamespaceType::User if ns.path().is_none() => {
                let maps = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
                    m.as_ref().is_some_and(|m| !m.is_empty())
                };
                if !maps(linux.uid_mappings()) || !maps(linux.gid_mappings()) {
                    return Err(Error::unsupported(
                        "linux.uidMappings/gidMappings",
                        "a new user namespace needs both: map container ID 0 to a host range",
                    ));
                }
            }
            LinuxNamespaceType::Time => {
                return Err(Error::unsupported(
                    "linux.namespaces[time]",
                    "time namespaces are not supported yet",
                ))
            }
            _ => {}
        }
    }
    for (field, set) in [
        ("linux.intelRdt", linux.intel_rdt().is_some()),
        ("linux.mountLabel", linux.mount_label().is_some()),
    ] {
        if set {
            return Err(Error::unsupported(field, "not supported yet"));
        }
    }
    if let Some(path) = linux.cgroups_path() {
        if path.to_string_lossy().contains(':') {
            return Err(Error::unsupported(
                "linux.cgroupsPath",
                format!(
                    "{} looks like the systemd driver form slice:prefix:name, which is not supported: use a path",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses the process fields we do not implement yet (for the init and for execs).
pub fn check_process(process: &oci_spec::runtime::Process, prefix: &str) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::unsupported(
            format!("{prefix}.args"),
            "must name the command to run",
        ));
    }
    for (field, set) in [
        ("apparmorProfile", process.apparmor_profile().is_some()),
        ("selinuxLabel", process.selinux_label().is_some()),
        ("scheduler", process.scheduler().is_some()),
    ] {
        if set {
            return Err(Error::unsupported(
                format!("{prefix}.{field}"),
                "not supported on this host yet",
            ));
        }
    }
    Ok(())
}

/// The cgroup path relative to each hierarchy root: `cgroupsPath`, or `/<id>`.
pub fn cgroup_path(spec: &Spec, id: &str) -> PathBuf {
    let p = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| PathBuf::from(id));
    // Relative paths are taken from the hierarchy root, as runc does without a parent cgroup.
    PathBuf::from("/").join(p)
}
