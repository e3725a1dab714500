//! Checkpoint of a container runtime-core created, through the `criu` CLI.
//!
//! runc drives CRIU over its `swrk` RPC; we run `criu dump` with every
//! option spelled out, which is the same request in CLI form:
//! - `--tree` the init (CRIU dumps its whole process tree), `--root` the
//!   container's rootfs as this mount namespace sees it;
//! - each bind mount of the spec (its source lies outside the rootfs), each
//!   masked path that is a file (a bind of `/dev/null`, key `/dev/null`)
//!   and, with a user namespace, each device node (binds of the host's
//!   nodes) as an external mount `DEST:DEST`, the key a restore maps back
//!   (runc's choices);
//! - a net or pid namespace the spec joins by path is not the container's:
//!   `--external net[INODE]:extRootNetNS` (pid: `extRootPidNS`), as runc;
//! - the cgroup with `--manage-cgroups=MODE` (containerd's `cgroups_mode`,
//!   CRIU's default `soft` when empty);
//! - containerd's runc options: `open_tcp` → `--tcp-established`,
//!   `external_unix_sockets` → `--ext-unix-sk`, `terminal` → `--shell-job`,
//!   `file_locks` → `--file-locks`, `empty_namespaces` → `--empty-ns`, and
//!   `exit` false → `--leave-running`.
//!
//! runc's image layout: CRIU's images in the image directory, and
//! `descriptors.json` beside them (what the init's fds 0-2 were), which a
//! restore needs to re-wire stdio. The log (`dump.log`) is in the work
//! directory; a failure names it with its last error lines.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::runtime::Spec;

use crate::container::Container;
use crate::error::{Error, Result};

mod restore;
#[cfg(test)]
mod tests;

pub use restore::{parse_descriptors, restore, restore_args, Plan, RestoreOpts, Where};

/// Device nodes a container with a user namespace gets as binds of the
/// host's (external mounts to CRIU), besides the spec's own.
const USERNS_DEVICES: &[&str] = &["null", "zero", "full", "tty", "random", "urandom"];

/// The device nodes a container with a user namespace has as binds of the host's
/// (it cannot mknod them): the default ones and the spec's, FIFOs excepted (made,
/// not bound). CRIU must be told of each as an external mount, on dump and restore.
fn userns_device_paths(linux: Option<&oci_spec::runtime::Linux>) -> Vec<std::path::PathBuf> {
    let userns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        });
    if !userns {
        return Vec::new();
    }
    let defaults = USERNS_DEVICES.iter().map(|d| Path::new("/dev").join(d));
    let spec = linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .filter(|d| d.typ() != oci_spec::runtime::LinuxDeviceType::P)
        .map(|d| d.path().clone());
    defaults.chain(spec).collect()
}

/// What containerd asks of a checkpoint (runc's CheckpointOptions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DumpOpts {
    /// The `criu` binary (`criu` on PATH when empty).
    pub criu: PathBuf,
    pub image_dir: PathBuf,
    pub work_dir: PathBuf,
    /// The container goes on running after the dump (containerd's `exit` false).
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    /// Namespace types (`network`, `net`…) dumped as empty namespaces.
    pub empty_ns: Vec<String>,
    /// `soft`, `full`, `strict` or `ignore`; empty: CRIU's default.
    pub cgroups_mode: String,
    /// The cgroup CRIU freezes the tree with (`--freeze-cgroup`, as runc):
    /// containerd pauses the task around a checkpoint, and CRIU must know
    /// the tree is frozen there. Filled by [`dump`].
    pub freeze_cgroup: Option<PathBuf>,
}

const CGROUP_MODES: &[&str] = &["soft", "full", "strict", "ignore"];

/// CRIU's name for an OCI (or containerd) namespace type.
fn criu_ns(name: &str) -> Option<&'static str> {
    Some(match name {
        "network" | "net" => "net",
        "mount" | "mnt" => "mnt",
        "pid" => "pid",
        "ipc" => "ipc",
        "uts" => "uts",
        _ => return None,
    })
}

pub(crate) fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
}

/// What the dump needs to learn from the live container, apart from the spec.
pub trait Probe {
    /// `path` (absolute, inside the container) is a file, not a directory.
    fn is_file(&self, path: &Path) -> bool;
    /// The inode of the namespace file `path`.
    fn ns_inode(&self, path: &Path) -> Result<u64>;
}

/// The `criu dump` command line (without the binary) for the tree of `pid`.
pub fn dump_args(
    spec: &Spec,
    rootfs: &Path,
    pid: i32,
    opts: &DumpOpts,
    probe: &dyn Probe,
) -> Result<Vec<OsString>> {
    let mut a: Vec<OsString> = vec!["dump".into(), "--tree".into(), pid.to_string().into()];
    a.push("--root".into());
    a.push(rootfs.into());
    a.push("--images-dir".into());
    a.push(opts.image_dir.clone().into());
    a.push("--work-dir".into());
    a.push(opts.work_dir.clone().into());
    for s in ["--log-file", "dump.log", "-v4"] {
        a.push(s.into());
    }
    if opts.cgroups_mode.is_empty() {
        a.push("--manage-cgroups".into());
    } else if CGROUP_MODES.contains(&opts.cgroups_mode.as_str()) {
        a.push(format!("--manage-cgroups={}", opts.cgroups_mode).into());
    } else {
        return Err(Error::unsupported(
            "checkpoint option cgroups_mode",
            format!(
                "{:?} is not a CRIU cgroup mode; use one of {}",
                opts.cgroups_mode,
                CGROUP_MODES.join(", ")
            ),
        ));
    }
    if let Some(cg) = &opts.freeze_cgroup {
        a.push("--freeze-cgroup".into());
        a.push(cg.clone().into());
    }
    for (on, flag) in [
        (opts.leave_running, "--leave-running"),
        (opts.tcp_established, "--tcp-established"),
        (opts.ext_unix_sk, "--ext-unix-sk"),
        (opts.shell_job, "--shell-job"),
        (opts.file_locks, "--file-locks"),
    ] {
        if on {
            a.push(flag.into());
        }
    }
    for ns in &opts.empty_ns {
        let Some(n) = criu_ns(ns) else {
            return Err(Error::unsupported(
                "checkpoint option empty_namespaces",
                format!("{ns:?} is not a namespace type CRIU can leave empty (network)"),
            ));
        };
        a.push("--empty-ns".into());
        a.push(n.into());
    }
    // `MOUNTPOINT:KEY` on dump.
    let mut ext = |dest: &Path, key: &Path| {
        a.push("--ext-mount-map".into());
        a.push(format!("{}:{}", dest.display(), key.display()).into());
    };
    for m in spec.mounts().iter().flatten() {
        if is_bind(m) {
            ext(m.destination(), m.destination());
        }
    }
    let linux = spec.linux().as_ref();
    // A masked file is a bind of /dev/null: recorded under the key
    // `/dev/null` (runc's), which a restore maps back to the host's.
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        if probe.is_file(Path::new(p)) {
            ext(Path::new(p), Path::new("/dev/null"));
        }
    }
    let namespaces = linux.and_then(|l| l.namespaces().as_ref());
    for p in userns_device_paths(linux) {
        ext(&p, &p);
    }
    for n in namespaces.into_iter().flatten() {
        let name = match n.typ() {
            oci_spec::runtime::LinuxNamespaceType::Network => "net",
            oci_spec::runtime::LinuxNamespaceType::Pid => "pid",
            _ => continue,
        };
        let Some(path) = n.path() else { continue };
        let ino = probe.ns_inode(path)?;
        let key = if name == "net" {
            "extRootNetNS"
        } else {
            "extRootPidNS"
        };
        a.push("--external".into());
        a.push(format!("{name}[{ino}]:{key}").into());
    }
    Ok(a)
}

/// Looks at the live container through `/proc/PID/root`.
struct Live(i32);

impl Probe for Live {
    fn is_file(&self, path: &Path) -> bool {
        let p = Path::new(&format!("/proc/{}/root", self.0))
            .join(path.strip_prefix("/").unwrap_or(path));
        std::fs::metadata(p).is_ok_and(|m| !m.is_dir())
    }
    fn ns_inode(&self, path: &Path) -> Result<u64> {
        std::fs::metadata(path)
            .map(|m| m.ino())
            .map_err(|e| Error::Init(format!("namespace {}: {e}", path.display())))
    }
}

/// The last error lines of a CRIU log (CRIU writes `Error (file:line): …`).
pub fn last_errors(log: &str) -> String {
    let errs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Error") || l.contains("error"))
        .collect();
    let tail = if errs.is_empty() {
        log.lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    } else {
        errs[errs.len().saturating_sub(3)..].to_vec()
    };
    tail.iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// `descriptors.json`, runc's record of the init's stdio: the targets of
/// its fds 0, 1 and 2 (`pipe:[N]`, `/dev/null`, a pty…).
fn descriptors(pid: i32) -> String {
    let fds: Vec<String> = (0..3)
        .map(|fd| {
            let t = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "/dev/null".into());
            serde_json::Value::String(t).to_string()
        })
        .collect();
    format!("[{}]", fds.join(","))
}

/// Runs `criu` with `args`; its log is `work_dir/log`.
pub(crate) fn run_criu(
    criu: &Path,
    args: &[OsString],
    work_dir: &Path,
    log: &str,
    what: &str,
) -> Result<()> {
    let log = work_dir.join(log);
    let bin: &Path = if criu.as_os_str().is_empty() {
        Path::new("criu")
    } else {
        criu
    };
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::Criu {
            what: what.into(),
            log: log.clone(),
            msg: format!(
                "cannot run {}: {e}; install CRIU (Debian: apt-get install criu)",
                bin.display()
            ),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut msg = format!("{} failed ({})", bin.display(), out.status);
    let errs = last_errors(&text);
    if !errs.is_empty() {
        msg += &format!(": {errs}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        msg += &format!("; stderr: {}", stderr.trim());
    }
    Err(Error::Criu {
        what: what.into(),
        log,
        msg,
    })
}

/// The freezer of `pid`'s cgroup as this (the host's) cgroup namespace
/// sees it: the v2 directory, or the v1 freezer hierarchy's.
pub fn freezer_of(proc_cgroup: &str, v2_only: bool) -> Option<PathBuf> {
    for l in proc_cgroup.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let rel = path.trim_start_matches('/');
        if v2_only && ctrls.is_empty() {
            return Some(Path::new("/sys/fs/cgroup").join(rel));
        }
        if !v2_only && ctrls.split(',').any(|c| c == "freezer") {
            return Some(Path::new("/sys/fs/cgroup/freezer").join(rel));
        }
    }
    None
}

/// Dumps container `c`'s process tree into `opts.image_dir` (made if
/// missing). With `leave_running` false CRIU kills the tree after the dump:
/// the init's exit then reaches its waiter as any exit does.
pub fn dump(c: &Container, opts: &DumpOpts) -> Result<()> {
    let spec = crate::spec::load(c.bundle())?;
    let rootfs = crate::spec::rootfs(c.bundle(), &spec)?;
    let pid = c.pid();
    for d in [&opts.image_dir, &opts.work_dir] {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::Init(format!("checkpoint directory {}: {e}", d.display())))?;
    }
    let mut opts = opts.clone();
    if opts.freeze_cgroup.is_none() {
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        opts.freeze_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|t| freezer_of(&t, v2));
    }
    let opts = &opts;
    let args = dump_args(&spec, &rootfs, pid, opts, &Live(pid))?;
    let desc = descriptors(pid);
    run_criu(&opts.criu, &args, &opts.work_dir, "dump.log", "dump")?;
    let path = opts.image_dir.join("descriptors.json");
    std::fs::write(&path, desc)
        .map_err(|e| Error::Init(format!("checkpoint {}: {e}", path.display())))
}
