//! The mount plan: what the spec asks of the container's filesystem view, decided
//! before anything is mounted. [`plan`] is pure (no syscalls, no filesystem), so
//! its decisions — order, flags and data from `mounts[].options`, bind or new
//! mount, the remount a bind's flags need, `/sys/fs/cgroup`'s form, read-only and
//! masked paths, `root.readonly`, `/dev`'s nodes, refusals — are unit-tested
//! without root. `rootfs.rs` and `devices.rs` walk the plan; what only the
//! running system can tell (whether a bind source or a masked path is a directory,
//! the flags locked on a mount, whether `/proc` is procfs) they look up as they go.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Mount, Spec};

use super::namespaces::Plan as NsPlan;
use super::propagation;
use crate::channel::CgroupDir;
use crate::error::{Error, Result};
use crate::mountopts::{parse_options, RecAttr};

/// Everything `rootfs::prepare` does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// `linux.rootfsPropagation`: before set-up and after `pivot_root`.
    pub propagation: propagation::Plan,
    /// `mounts[]`, in the spec's order.
    pub mounts: Vec<MountStep>,
    /// `/dev`: default and spec devices, in creation order.
    pub devices: Vec<DevStep>,
    /// `linux.sysctl` is set (it needs a procfs at `/proc`, checked after the pivot).
    pub sysctl: bool,
    /// After the pivot: read-only paths, then masked paths (runc's order).
    pub paths: Vec<PathStep>,
    /// `root.readonly`: the bind remount of `/` read-only, last before propagation.
    pub root_readonly: bool,
}

/// One `mounts[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountStep {
    /// The entry's index in `mounts[]` (an ID-mapped tree the helper made is keyed by it).
    pub index: usize,
    /// `mounts[DEST]`, for error messages.
    pub what: String,
    pub dest: PathBuf,
    pub kind: MountKind,
    /// Propagation flags to set on the new mount afterwards (0: none).
    pub propagation: libc::c_ulong,
    /// The recursive `r*` attributes, set with `mount_setattr(AT_RECURSIVE)` last.
    pub rec: Option<RecAttr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A bind of `source` (made absolute against the bundle); the target is made a
    /// directory or a file after the source's kind.
    Bind {
        source: PathBuf,
        /// `rbind`: `MS_REC`.
        recursive: bool,
        /// The flags a bind ignores, applied by a bind remount.
        remount: Option<Remount>,
    },
    /// A new mount of a filesystem on a directory.
    New {
        source: String,
        fstype: String,
        flags: libc::c_ulong,
        data: Option<String>,
    },
    /// `cgroup` or `cgroup2` at `dest`: see [`CgroupMount`].
    Cgroup(CgroupMount),
}

/// A bind remount: `MS_BIND | MS_REMOUNT | set`, plus the flags locked on the
/// mount except those the options clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remount {
    pub set: libc::c_ulong,
    pub keep_locked_except: libc::c_ulong,
}

/// `/sys/fs/cgroup` in the container, so it sees its cgroups and nothing of the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupMount {
    /// cgroup v2 with a cgroup namespace: a real cgroup2 mount.
    Cgroup2 { flags: libc::c_ulong },
    /// cgroup v2 without one: the container's cgroup bound, then remounted with `flags`.
    BindV2 {
        host_dir: PathBuf,
        flags: libc::c_ulong,
    },
    /// v1 or hybrid: a tmpfs with each of the container's cgroup directories bound
    /// in (nosuid, nodev, noexec, and read-only when asked), then the tmpfs
    /// remounted read-only when asked.
    Tmpfs {
        dirs: Vec<(String, PathBuf)>,
        readonly: bool,
    },
}

/// A `/dev` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevStep {
    /// mknod at `path` in the rootfs.
    Node { path: PathBuf, node: Node },
    /// A bind of the host's node at the same path (in a user namespace mknod is refused).
    BindHost(PathBuf),
}

/// A device node to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub kind: libc::mode_t,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// After the pivot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// `linux.readonlyPaths[]`: bound onto itself (recursively), remounted read-only.
    Readonly(PathBuf),
    /// `linux.maskedPaths[]`: see [`mask_action`].
    Mask(PathBuf),
}

/// How a masked path is covered, by its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskAction {
    /// A directory: an empty read-only tmpfs over it.
    ReadonlyTmpfs,
    /// Anything else: `/dev/null` (verified to be 1:3) bound over it.
    BindDevNull,
}

pub fn mask_action(is_dir: bool) -> MaskAction {
    if is_dir {
        MaskAction::ReadonlyTmpfs
    } else {
        MaskAction::BindDevNull
    }
}

/// The devices every container gets (runtime-spec "Default Devices").
/// In runc's order (mount order shows in mountinfo with a user namespace).
pub const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("random", 1, 8),
    ("full", 1, 7),
    ("tty", 5, 0),
    ("zero", 1, 5),
    ("urandom", 1, 9),
];

/// The plan for `spec`, with the bundle (for relative bind sources), the
/// container's cgroup directories and its namespaces.
pub fn plan(spec: &Spec, bundle: &Path, cgroups: &[CgroupDir], ns: &NsPlan) -> Result<MountPlan> {
    plan_with(
        spec,
        bundle,
        cgroups,
        ns.has(LinuxNamespaceType::Cgroup),
        ns.has(LinuxNamespaceType::User),
    )
}

/// [`plan`] with the two namespace facts it needs.
pub fn plan_with(
    spec: &Spec,
    bundle: &Path,
    cgroups: &[CgroupDir],
    cgroupns: bool,
    userns: bool,
) -> Result<MountPlan> {
    let linux = spec.linux().as_ref();
    let propagation = propagation::plan(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    let mounts = spec
        .mounts()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| mount_step(i, m, bundle, cgroups, cgroupns))
        .collect::<Result<Vec<_>>>()?;
    let devices = devices(spec, userns)?;
    let sysctl = linux
        .and_then(|l| l.sysctl().as_ref())
        .is_some_and(|s| !s.is_empty());
    let ro = linux.and_then(|l| l.readonly_paths().as_ref());
    let masked = linux.and_then(|l| l.masked_paths().as_ref());
    // Read-only first, then masked (runc's order): a path in both ends up masked.
    let paths = ro
        .into_iter()
        .flatten()
        .map(|p| PathStep::Readonly(PathBuf::from(p)))
        .chain(
            masked
                .into_iter()
                .flatten()
                .map(|p| PathStep::Mask(PathBuf::from(p))),
        )
        .collect();
    Ok(MountPlan {
        propagation,
        mounts,
        devices,
        sysctl,
        paths,
        root_readonly: spec.root().as_ref().and_then(|r| r.readonly()) == Some(true),
    })
}

fn mount_step(
    index: usize,
    m: &Mount,
    bundle: &Path,
    cgroups: &[CgroupDir],
    cgroupns: bool,
) -> Result<MountStep> {
    let dest = m.destination();
    let what = format!("mounts[{}]", dest.display());
    if !dest.is_absolute() {
        return Err(Error::unsupported(
            &what,
            "destination must be an absolute path",
        ));
    }
    if dest == Path::new("/") {
        return Err(Error::unsupported(
            &what,
            "cannot mount over / (use root.path)",
        ));
    }
    let typ = m.typ().as_deref().unwrap_or("none");
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let rec = (opts.rec != RecAttr::default()).then_some(opts.rec);
    let step = |kind, propagation| MountStep {
        index,
        what: what.clone(),
        dest: dest.clone(),
        kind,
        propagation,
        rec,
    };
    if typ == "cgroup" || typ == "cgroup2" {
        let flags = opts.flags & !(libc::MS_BIND | libc::MS_REC);
        let v2_only = cgroups.len() == 1 && cgroups[0].name.is_empty();
        let cg = if v2_only && cgroupns {
            CgroupMount::Cgroup2 { flags }
        } else if v2_only {
            CgroupMount::BindV2 {
                host_dir: cgroups[0].host_dir.clone(),
                flags,
            }
        } else {
            CgroupMount::Tmpfs {
                dirs: cgroups
                    .iter()
                    .map(|cg| {
                        let name = cg.name.strip_prefix("name=").unwrap_or(&cg.name);
                        (name.to_string(), cg.host_dir.clone())
                    })
                    .collect(),
                readonly: flags & libc::MS_RDONLY != 0,
            }
        };
        // The cgroup mount sets no propagation of its own (as before the plan).
        return Ok(step(MountKind::Cgroup(cg), 0));
    }
    if opts.bind || typ == "bind" {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| Error::unsupported(&what, "bind mount without source"))?;
        let source = if src.is_absolute() {
            src.clone()
        } else {
            bundle.join(src)
        };
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC);
        let remount = (extra != 0).then_some(Remount {
            set: extra,
            keep_locked_except: opts.clear,
        });
        let kind = MountKind::Bind {
            source,
            recursive: opts.flags & libc::MS_REC != 0,
            remount,
        };
        return Ok(step(kind, opts.propagation));
    }
    let source = m
        .source()
        .as_ref()
        .map_or(typ.to_string(), |s| s.display().to_string());
    let kind = MountKind::New {
        source,
        fstype: typ.to_string(),
        flags: opts.flags,
        data: (!opts.data.is_empty()).then(|| opts.data.join(",")),
    };
    Ok(step(kind, opts.propagation))
}

fn spec_devices(spec: &Spec) -> impl Iterator<Item = &oci_spec::runtime::LinuxDevice> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
}

/// A FIFO device: made with mknod even in a user namespace (no host node to bind).
fn fifo_node(d: &oci_spec::runtime::LinuxDevice) -> Option<Node> {
    (d.typ() == LinuxDeviceType::P).then(|| Node {
        kind: libc::S_IFIFO,
        major: 0,
        minor: 0,
        mode: d.file_mode().unwrap_or(0o666),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// `/dev`'s nodes: the defaults, then the spec's devices; binds of the host's
/// nodes in a user namespace (FIFOs excepted).
fn devices(spec: &Spec, userns: bool) -> Result<Vec<DevStep>> {
    let mut steps = Vec::new();
    let default = |name: &str| Path::new("/dev").join(name);
    if userns {
        for (name, _, _) in DEFAULT_DEVICES {
            steps.push(DevStep::BindHost(default(name)));
        }
        for d in spec_devices(spec) {
            steps.push(match fifo_node(d) {
                Some(node) => DevStep::Node {
                    path: d.path().clone(),
                    node,
                },
                None => DevStep::BindHost(d.path().clone()),
            });
        }
        return Ok(steps);
    }
    for (name, major, minor) in DEFAULT_DEVICES {
        let node = Node {
            kind: libc::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        steps.push(DevStep::Node {
            path: default(name),
            node,
        });
    }
    for d in spec_devices(spec) {
        let path = d.path().clone();
        if let Some(node) = fifo_node(d) {
            steps.push(DevStep::Node { path, node });
            continue;
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO, // made by fifo_node above
            LinuxDeviceType::A => {
                return Err(Error::unsupported(
                    format!("linux.devices[{}].type", d.path().display()),
                    "\"a\" is only valid in cgroup rules",
                ))
            }
        };
        let node = Node {
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        steps.push(DevStep::Node { path, node });
    }
    Ok(steps)
}

#[cfg(test)]
#[path = "mountplan_tests.rs"]
mod tests;
