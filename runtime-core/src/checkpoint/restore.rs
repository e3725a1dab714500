//! Restore of a checkpoint (ours or in runc's layout) into a new container,
//! through `criu restore`. What runc does over CRIU's RPC, in CLI form:
//! - `--root` a bind mount of the container's rootfs (CRIU wants a mount
//!   point whose parent is not overmounted), after the spec's mount points
//!   that lie outside any tmpfs are made in the rootfs (a fresh snapshot
//!   lacks those the first init made; CRIU restores tmpfs contents itself);
//! - the container's cgroup, made from the spec as for a create: CRIU
//!   joins it before it forks (it writes itself into `cgroup.procs`) and
//!   puts every restored task below it (`--cgroup-root`);
//! - the external mounts the dump named: each bind mount `DEST:SOURCE`,
//!   `/dev/null` for masked files, and with a user namespace the device
//!   nodes; a net or pid namespace the spec joins by path is handed over
//!   as an inherited fd (`extRootNetNS`, `extRootPidNS`), ipc and uts by
//!   `--join-ns`;
//! - the stdio of `descriptors.json`: each pipe the init had on fd 0-2
//!   becomes the new container's pipe (`--inherit-fd fd[N]:pipe:[…]`, with
//!   CRIU's own fds 0-2 being the new stdio);
//! - `--restore-detached --restore-sibling`: the restored init is the
//!   caller's child (waitable on its pidfd), its pid read from `--pidfile`.
//!
//! Unlike runc, which restores on start, the tree is restored at create and
//! left stopped (`--leave-stopped`); [`Container::start`] continues it.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as StdStdio};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::{hierarchy, Cgroup};
use crate::container::{Container, Stdio};
use crate::error::{Error, Result};
use crate::spec;

/// What containerd asks of a restore (the runc shim's RestoreOpts).
pub struct RestoreOpts<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub stdio: Stdio,
    /// The `criu` binary (`criu` on PATH when empty).
    pub criu: PathBuf,
    pub image_dir: PathBuf,
    pub work_dir: PathBuf,
}

/// The `criu restore` command line and the namespace files it inherits:
/// `(fd number in criu, path)`.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub args: Vec<OsString>,
    pub inherit: Vec<(RawFd, PathBuf)>,
}

fn refuse(field: impl Into<String>, why: &str) -> Error {
    Error::unsupported(
        field,
        format!("{why}; restore with runtime io.containerd.runc.v2 instead"),
    )
}

/// Where restored processes go, what they find and which fds they get.
pub struct Where<'a> {
    /// CRIU's root: the bind mount of the rootfs.
    pub root: &'a Path,
    /// The container's cgroup, relative to each hierarchy's root.
    pub cgroup: &'a Path,
    pub pidfile: &'a Path,
    /// `descriptors.json`: what fds 0-2 of the init were at the dump.
    pub descriptors: &'a [String],
    /// The first fd number free for inherited namespace files in criu.
    pub first_fd: RawFd,
}

/// The `criu restore` command line for `spec`; refuses what a restore
/// cannot give the container, by field.
pub fn restore_args(spec: &Spec, w: &Where, image_dir: &Path, work_dir: &Path) -> Result<Plan> {
    if spec.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
        return Err(refuse(
            "process.terminal",
            "a restored process gets its pty back only over runc's console socket, \
             which containerd's clients do not pass on restore; checkpoint and restore \
             the container without a terminal",
        ));
    }
    if let Some(h) = spec.hooks() {
        for (name, set) in [
            (
                "prestart",
                h.prestart().as_ref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "createRuntime",
                h.create_runtime().as_ref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "createContainer",
                h.create_container().as_ref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "startContainer",
                h.start_container().as_ref().is_some_and(|v| !v.is_empty()),
            ),
        ] {
            if set {
                return Err(refuse(
                    format!("hooks.{name}"),
                    "CRIU restores the processes with their namespaces as dumped: there \
                     is no point where this hook could run as for a created container",
                ));
            }
        }
    }
    let mut a: Vec<OsString> = vec!["restore".into()];
    let mut arg = |k: &str, v: &dyn AsRef<std::ffi::OsStr>| {
        a.push(k.into());
        a.push(v.as_ref().to_os_string());
    };
    arg("--images-dir", &image_dir);
    arg("--work-dir", &work_dir);
    arg("--log-file", &"restore.log");
    arg("--root", &w.root);
    arg("--pidfile", &w.pidfile);
    arg("--cgroup-root", &Path::new("/").join(w.cgroup));
    for f in [
        "-v4",
        "--restore-detached",
        "--restore-sibling",
        "--leave-stopped",
        "--manage-cgroups",
        "--evasive-devices",
    ] {
        a.push(f.into());
    }
    let mut ext = |key: &Path, val: &Path| {
        a.push("--ext-mount-map".into());
        a.push(format!("{}:{}", key.display(), val.display()).into());
    };
    for m in spec.mounts().iter().flatten() {
        if super::is_bind(m) {
            let src = m.source().as_deref().unwrap_or(Path::new(""));
            ext(m.destination(), src);
        }
    }
    let linux = spec.linux().as_ref();
    if linux
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|m| !m.is_empty())
    {
        ext(Path::new("/dev/null"), Path::new("/dev/null"));
    }
    let namespaces = linux.and_then(|l| l.namespaces().as_ref());
    for p in super::userns_device_paths(linux) {
        ext(&p, &p);
    }
    let mut inherit = Vec::new();
    for n in namespaces.into_iter().flatten() {
        let Some(path) = n.path() else { continue };
        let field = format!("linux.namespaces[{}].path", n.typ());
        match n.typ() {
            LinuxNamespaceType::Network | LinuxNamespaceType::Pid => {
                let fd = w.first_fd + inherit.len() as RawFd;
                let key = if n.typ() == LinuxNamespaceType::Network {
                    "extRootNetNS"
                } else {
                    "extRootPidNS"
                };
                a.push("--inherit-fd".into());
                a.push(format!("fd[{fd}]:{key}").into());
                inherit.push((fd, path.clone()));
            }
            LinuxNamespaceType::Ipc | LinuxNamespaceType::Uts => {
                let ns = if n.typ() == LinuxNamespaceType::Ipc {
                    "ipc"
                } else {
                    "uts"
                };
                a.push("--join-ns".into());
                a.push(format!("{ns}:{}", path.display()).into());
            }
            _ => {
                return Err(refuse(
                    field,
                    "CRIU cannot restore into this kind of namespace joined by path \
                     (only network, pid, ipc and uts)",
                ))
            }
        }
    }
    for (i, d) in w.descriptors.iter().enumerate().take(3) {
        if d.starts_with("pipe:") {
            a.push("--inherit-fd".into());
            a.push(format!("fd[{i}]:{d}").into());
        }
    }
    Ok(Plan { args: a, inherit })
}

/// `descriptors.json` of an image: the targets of the init's fds 0-2.
pub fn parse_descriptors(text: &str) -> std::result::Result<Vec<String>, String> {
    serde_json::from_str::<Vec<String>>(text).map_err(|e| e.to_string())
}

/// The bind mount of the rootfs that CRIU restores into; unmounted and
/// removed on drop.
struct CriuRoot(PathBuf);

impl CriuRoot {
    fn mount(rootfs: &Path, at: PathBuf) -> Result<CriuRoot> {
        std::fs::create_dir_all(&at).map_err(|e| Error::sys("mkdir", at.display(), e))?;
        let root = CriuRoot(at);
        nix::mount::mount(
            Some(rootfs),
            &root.0,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| {
            Error::nix(
                "mount(MS_BIND)",
                format!("{} on {}", rootfs.display(), root.0.display()),
                e,
            )
        })?;
        Ok(root)
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        if let Err(e) = std::fs::remove_dir(&self.0) {
            log::warn!("restore: remove {}: {e}", self.0.display());
        }
    }
}

/// The spec's mount points outside any tmpfs, made in the rootfs as the
/// init makes them (a directory, or a file for a bind of a file), through
/// `openat2(RESOLVE_IN_ROOT)`: CRIU mounts onto them but does not make them.
fn make_mount_points(rootfs: &Path, spec: &Spec) -> Result<()> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    let root = std::fs::File::open(rootfs).map_err(|e| Error::sys("open", rootfs.display(), e))?;
    for m in mounts {
        let d = m.destination();
        if tmpfs.iter().any(|t| d != *t && d.starts_with(t)) {
            continue;
        }
        let is_dir = !super::is_bind(m)
            || m.source()
                .as_ref()
                .is_none_or(|s| std::fs::metadata(s).is_ok_and(|md| md.is_dir()));
        crate::init::fsutil::ensure(root.as_raw_fd(), d, is_dir)?;
    }
    Ok(())
}

fn stdio(fd: Option<OwnedFd>) -> StdStdio {
    fd.map_or(StdStdio::null(), StdStdio::from)
}

/// Restores the image `o.image_dir` into container `o.id` of bundle
/// `o.bundle`, left stopped until [`Container::start`]. The caller must
/// keep any reaper of unknown children off until the init is tracked
/// (CRIU forks it as the caller's child). On error nothing is left: no
/// cgroup, no mount, no process.
pub fn restore(o: RestoreOpts) -> Result<Container> {
    let spec = spec::load(o.bundle)?;
    spec::check_supported(&spec)?;
    let rootfs = spec::rootfs(o.bundle, &spec)?;
    if let Some(p) = spec::cgroups_path_raw(&spec) {
        if crate::cgroups::systemd::Systemd::parse(&p, o.id)?.is_some() {
            return Err(refuse(
                "linux.cgroupsPath",
                &format!(
                    "{p:?} is a systemd unit; restore into a systemd unit is not \
                     implemented (systemd starts a scope only with a process in it)"
                ),
            ));
        }
    }
    let desc = o.image_dir.join("descriptors.json");
    let descriptors = std::fs::read_to_string(&desc)
        .map_err(|e| e.to_string())
        .and_then(|t| parse_descriptors(&t))
        .map_err(|e| {
            Error::Init(format!(
                "restore of container {}: {}: {e} (a checkpoint image made by this \
                 runtime or runc has descriptors.json beside CRIU's images)",
                o.id,
                desc.display()
            ))
        })?;
    std::fs::create_dir_all(&o.work_dir)
        .map_err(|e| Error::sys("mkdir", o.work_dir.display(), e))?;
    let pidfile = o.work_dir.join("restore.pid");
    let _ = std::fs::remove_file(&pidfile);
    let cg_rel = hierarchy::clean(&spec::cgroup_path(&spec, o.id));
    let root_at = o.bundle.join("criu-root");
    // The namespace files are opened first: the fds CRIU inherits them on
    // are numbered above every fd the child holds before it execs.
    let ns_files: Vec<(PathBuf, std::fs::File)> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter(|n| {
            matches!(
                n.typ(),
                LinuxNamespaceType::Network | LinuxNamespaceType::Pid
            )
        })
        .filter_map(|n| n.path().clone())
        .map(|p| {
            std::fs::File::open(&p)
                .map(|f| (p.clone(), f))
                .map_err(|e| Error::sys("open", p.display(), e))
        })
        .collect::<Result<_>>()?;
    let plan_with = |first_fd| {
        restore_args(
            &spec,
            &Where {
                root: &root_at,
                cgroup: &cg_rel,
                pidfile: &pidfile,
                descriptors: &descriptors,
                first_fd,
            },
            &o.image_dir,
            &o.work_dir,
        )
    };
    // Refusals before anything is made.
    plan_with(3)?;
    make_mount_points(&rootfs, &spec)?;
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let cgroup = Cgroup::create(&spec::cgroup_path(&spec, o.id), resources)?;
    let res = CriuRoot::mount(&rootfs, root_at.clone()).and_then(|root| {
        let procs: Vec<std::fs::File> = cgroup
            .dirs()
            .iter()
            .map(|d| {
                let p = d.host_dir.join("cgroup.procs");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| Error::sys("open", p.display(), e))
            })
            .collect::<Result<_>>()?;
        let top = ns_files
            .iter()
            .map(|(_, f)| f.as_raw_fd())
            .chain(procs.iter().map(|f| f.as_raw_fd()))
            .chain(
                [
                    o.stdio.stdin.as_ref(),
                    o.stdio.stdout.as_ref(),
                    o.stdio.stderr.as_ref(),
                ]
                .into_iter()
                .flatten()
                .map(|f| f.as_raw_fd()),
            )
            .max()
            .unwrap_or(2);
        let plan = plan_with(top + 1)?;
        let r = run_criu(
            o.criu.as_path(),
            &plan,
            &ns_files,
            &procs,
            o.stdio,
            &o.work_dir,
        );
        drop(root);
        r
    });
    let pid = res.and_then(|()| {
        let text = std::fs::read_to_string(&pidfile)
            .map_err(|e| Error::sys("read", pidfile.display(), e))?;
        text.trim().parse::<i32>().map_err(|e| {
            Error::Init(format!(
                "restore: pid file {}: {e}: {text:?}",
                pidfile.display()
            ))
        })
    });
    let _ = std::fs::remove_file(&pidfile);
    match pid.and_then(crate::pidfd::Pidfd::open) {
        Ok(init) => Ok(Container::restored(o.id, o.bundle, init, &spec, cgroup)),
        Err(e) => {
            // CRIU kills what it restored when it fails; anything left dies with the cgroup.
            if let Err(d) = cgroup.destroy() {
                log::warn!("restore of container {}: {d}", o.id);
            }
            Err(e)
        }
    }
}

/// Runs `criu restore`: it joins the cgroup (writes itself, pid 0, into
/// each `cgroup.procs`) and takes the namespace files on their numbers in
/// its child before it execs, with `stdio` as its fds 0-2.
fn run_criu(
    criu: &Path,
    plan: &Plan,
    ns_files: &[(PathBuf, std::fs::File)],
    procs: &[std::fs::File],
    stdio_fds: Stdio,
    work_dir: &Path,
) -> Result<()> {
    let bin: &Path = if criu.as_os_str().is_empty() {
        Path::new("criu")
    } else {
        criu
    };
    let log = work_dir.join("restore.log");
    let procs: Vec<RawFd> = procs.iter().map(|f| f.as_raw_fd()).collect();
    let dups: Vec<(RawFd, RawFd)> = plan
        .inherit
        .iter()
        .map(|(to, path)| {
            let from = ns_files
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, f)| f.as_raw_fd())
                .expect("every inherited namespace file is open");
            (from, *to)
        })
        .collect();
    let mut cmd = Command::new(bin);
    cmd.args(&plan.args)
        .stdin(stdio(stdio_fds.stdin))
        .stdout(stdio(stdio_fds.stdout))
        .stderr(stdio(stdio_fds.stderr));
    // SAFETY: the closure runs in the forked child before execve and only
    // makes raw write(2) and dup2(2) calls on fds opened by the parent: no
    // allocation, no lock. dup2 clears FD_CLOEXEC on the target, so criu
    // keeps the namespace files; every target is above the sources.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &procs {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (from, to) in &dups {
                if libc::dup2(*from, *to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let status = cmd.status().map_err(|e| Error::Criu {
        what: "restore".into(),
        log: log.clone(),
        msg: format!(
            "cannot run {} (in the container's cgroup): {e}; install CRIU (Debian: apt-get install criu)",
            bin.display()
        ),
    })?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut msg = format!("{} failed ({status})", bin.display());
    let errs = super::last_errors(&text);
    if !errs.is_empty() {
        msg += &format!(": {errs}");
    }
    Err(Error::Criu {
        what: "restore".into(),
        log,
        msg,
    })
}
