//! Loading `config.json` and refusing, by name, what this runtime does not do.
//!
//! Every field is either applied somewhere in this crate or refused here with
//! an error that names it: nothing is silently ignored.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

pub mod process;

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

/// Why an SELinux or AppArmor field cannot be honoured on this host.
fn lsm_refusal(lsm: &str) -> String {
    let enabled = match lsm {
        "SELinux" => std::path::Path::new("/sys/fs/selinux/enforce").exists(),
        _ => std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.trim() == "Y"),
    };
    if enabled {
        format!("{lsm} labels are not supported by this runtime: remove the field")
    } else {
        format!(
            "{lsm} is not enabled on this host, so the label cannot be applied: remove the field"
        )
    }
}

/// Refuses, each by name, what this runtime does not do: everything else in
/// the spec is applied (see the module of each concern).
pub fn check_supported(spec: &Spec) -> Result<()> {
    for (field, set) in [
        ("solaris", spec.solaris().is_some()),
        ("windows", spec.windows().is_some()),
        ("vm", spec.vm().is_some()),
        ("zos", spec.zos().is_some()),
    ] {
        if set {
            return Err(Error::unsupported(
                field,
                "this is a Linux runtime: only the linux section applies",
            ));
        }
    }
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
    crate::init::propagation::plan(linux.rootfs_propagation().as_deref())?;
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
            LinuxNamespaceType::Time if !Path::new("/proc/self/ns/time").exists() => {
                return Err(Error::unsupported(
                    "linux.namespaces[time]",
                    "this kernel has no time namespaces (Linux 5.6+ with CONFIG_TIME_NS)",
                ))
            }
            _ => {}
        }
    }
    check_without_mount_ns(spec)?;
    let has_time_ns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none());
    if let Some(offsets) = linux.time_offsets() {
        if !has_time_ns {
            return Err(Error::unsupported(
                "linux.timeOffsets",
                "offsets need a new time namespace: add {\"type\": \"time\"} to linux.namespaces",
            ));
        }
        if let Some(clock) = offsets
            .keys()
            .find(|k| !matches!(k.as_str(), "monotonic" | "boottime"))
        {
            return Err(Error::unsupported(
                format!("linux.timeOffsets[{clock}]"),
                "only the monotonic and boottime clocks have offsets",
            ));
        }
    }
    if linux.mount_label().is_some() {
        return Err(Error::unsupported(
            "linux.mountLabel",
            lsm_refusal("SELinux"),
        ));
    }
    for (field, set, why) in [
        (
            "linux.intelRdt",
            linux.intel_rdt().is_some(),
            "Intel RDT (resctrl) is not supported by this runtime",
        ),
        (
            "linux.memoryPolicy",
            linux.memory_policy().is_some(),
            "NUMA memory policies are not supported by this runtime",
        ),
        (
            "linux.netDevices",
            linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
            "moving host network devices into the container is not supported by this runtime",
        ),
    ] {
        if set {
            return Err(Error::unsupported(field, why));
        }
    }
    crate::init::mountattr::check(spec)?;
    if let Some(path) = linux.cgroups_path() {
        // The systemd form is validated (and the host checked) by the driver.
        crate::cgroups::systemd::Systemd::parse(&path.to_string_lossy(), "")?;
    }
    Ok(())
}

/// A spec whose `linux.namespaces` has no mount entry: the container stays in
/// the runtime's mount namespace (runtime-spec: every type left out is
/// inherited) and gets its rootfs by `chroot`, as runc does without NEWNS.
/// Every field that needs a mount would then change the host's own mount
/// table, so each is refused by name: runc refuses masked and read-only paths
/// ("unable to restrict sys entries without a private MNT namespace") but
/// would mount the rest on the host.
pub fn check_without_mount_ns(spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Mount)
    {
        return Ok(());
    }
    let nonempty = |v: Option<usize>| v.is_some_and(|n| n > 0);
    for (field, set) in [
        ("mounts", nonempty(spec.mounts().as_ref().map(Vec::len))),
        (
            "linux.maskedPaths",
            nonempty(linux.masked_paths().as_ref().map(Vec::len)),
        ),
        (
            "linux.readonlyPaths",
            nonempty(linux.readonly_paths().as_ref().map(Vec::len)),
        ),
        (
            "root.readonly",
            spec.root().as_ref().and_then(|r| r.readonly()) == Some(true),
        ),
        (
            "linux.rootfsPropagation",
            linux
                .rootfs_propagation()
                .as_ref()
                .is_some_and(|p| !p.is_empty()),
        ),
        (
            "linux.devices",
            nonempty(linux.devices().as_ref().map(Vec::len)),
        ),
        (
            "process.terminal",
            spec.process().as_ref().and_then(|p| p.terminal()) == Some(true),
        ),
    ] {
        if set {
            return Err(Error::unsupported(
                field,
                "needs a mount in the container's own mount namespace, and linux.namespaces has none \
                 (the container would share the host's mount table): add {\"type\": \"mount\"} or remove the field",
            ));
        }
    }
    Ok(())
}

/// Refuses the process fields we do not implement (for the init and for execs).
pub fn check_process(process: &oci_spec::runtime::Process, prefix: &str) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::unsupported(
            format!("{prefix}.args"),
            "must name the command to run",
        ));
    }
    process::check_user(process, prefix)?;
    process::check_size(process, prefix)?;
    if process.apparmor_profile().is_some() {
        return Err(Error::unsupported(
            format!("{prefix}.apparmorProfile"),
            lsm_refusal("AppArmor"),
        ));
    }
    if process.selinux_label().is_some() {
        return Err(Error::unsupported(
            format!("{prefix}.selinuxLabel"),
            lsm_refusal("SELinux"),
        ));
    }
    for (field, set) in [
        ("commandLine", process.command_line().is_some()),
        ("user.username", process.user().username().is_some()),
    ] {
        if set {
            return Err(Error::unsupported(
                format!("{prefix}.{field}"),
                "is for Windows containers only",
            ));
        }
    }
    Ok(())
}

/// The `cgroupsPath` as given (`None` without one).
pub fn cgroups_path_raw(spec: &Spec) -> Option<String> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
}

/// The cgroup path relative to each hierarchy root: `cgroupsPath`, or `/<id>`;
/// for the systemd form `slice:prefix:name`, where systemd puts that unit.
pub fn cgroup_path(spec: &Spec, id: &str) -> PathBuf {
    if let Some(Ok(Some(sd))) =
        cgroups_path_raw(spec).map(|p| crate::cgroups::systemd::Systemd::parse(&p, id))
    {
        return sd.cgroup();
    }
    let p = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| PathBuf::from(id));
    // Relative paths are taken from the hierarchy root, as runc does without a parent cgroup.
    PathBuf::from("/").join(p)
}
