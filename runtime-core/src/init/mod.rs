//! The child side: runs in the re-executed, single-threaded helper and in the
//! container init it clones. See the crate docs for why this is a separate
//! process image and not a fork of the shim.
//!
//! Steps, in order, each for a reason:
//! 1. `PR_SET_DUMPABLE=0` before anything else: a non-dumpable process cannot
//!    be ptraced or have its `/proc/<pid>/{mem,fd,exe}` opened by processes of
//!    the container it is about to enter.
//! 2. Join the container's cgroups, so every process it creates is accounted
//!    from birth and nothing escapes a limit during set-up.
//! 3. Join the namespaces given by path (fds opened first, all before any
//!    `setns`, because joining a mount namespace changes what paths mean).
//! 4. `clone3(CLONE_PARENT | CLONE_PIDFD | new namespaces)`: the init becomes a
//!    child of the shim, which gets its pidfd; the helper exits.
//! 5. In the init: rootfs ([`rootfs`]), devices ([`devices`]), hostname,
//!    process attributes and identity ([`process`]), then wait for `Start`.

mod console;
pub mod devices;
pub(crate) mod fsutil;
pub mod keyring;
pub(crate) mod mountattr;
pub(crate) mod mountplan;
mod namespaces;
mod process;
pub(crate) mod propagation;
mod rootfs;
mod seccomp;
mod shared_mntns;
mod sysctl;
mod timens;
pub mod user;
mod userns;

pub use console::set_size as set_terminal_size;

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::channel::{error_report, Channel, ExecConfig, FromInit, InitConfig, ToInit};
use crate::error::{Error, Result};
use crate::sys::{self, Forked};
use crate::{spec, HELPER_ARG};

/// Fd on which the helper finds its control channel.
pub const CHANNEL_FD: i32 = 3;

/// Turns this process into the container-init helper if it was started as one.
///
/// Call it first thing in `main`, before any thread exists. Returns only when
/// the process is not a helper.
pub fn main_if_helper() {
    if std::env::args_os().nth(1).as_deref() != Some(std::ffi::OsStr::new(HELPER_ARG)) {
        return;
    }
    // Step 1: nothing may attach to us from inside the container.
    // SAFETY: PR_SET_DUMPABLE takes only integers.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // SAFETY: argv[1] is HELPER_ARG only when container.rs's helper_command spawned us, and its
    // pre_exec put our end of the channel at CHANNEL_FD (not close-on-exec); nothing else in this
    // process owns that fd.
    let chan = unsafe { Channel::from_raw(CHANNEL_FD) };
    let code = match helper(&chan) {
        Ok(()) => 0,
        Err(e) => {
            let _ = chan.send(&error_report(e.to_string()), None);
            1
        }
    };
    // _exit: no atexit handlers or stdio flushing of a copied address space.
    // SAFETY: _exit takes an integer and does not return; skipping destructors and atexit handlers
    // is intended.
    unsafe { libc::_exit(code) }
}

fn helper(chan: &Channel) -> Result<()> {
    let cfg = match chan.recv::<ToInit>()? {
        Some((ToInit::Config(cfg), _)) => cfg,
        Some((ToInit::Exec(cfg), Some(init))) => return exec_helper(chan, &cfg, init),
        other => return Err(Error::Protocol(format!("expected config, got {other:?}"))),
    };
    let spec = spec::load(&cfg.bundle)?;
    let rootfs = spec::rootfs(&cfg.bundle, &spec)?;
    // The exec FIFO, opened here while we are root of the host's namespaces:
    // an init in a user namespace could not look it up under the caller's
    // 0700 state root. The clone inherits the fd; the init reopens it for
    // writing through /proc/self/fd after pivot_root (as runc does).
    let mut fifo = match cfg.exec_fifo.as_ref() {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open(p)
                .map_err(|e| Error::sys("open", p.display(), e))?,
        ),
        None => None,
    };

    // Step 2: the v1 hierarchies are joined here (the init inherits them);
    // the v2 cgroup is entered by the init at its birth (CLONE_INTO_CGROUP).
    let into = open_v2_cgroup(&cfg.cgroups);
    join_cgroups(cfg.cgroups.iter().filter(|c| into.is_none() || !is_v2(c)))?;
    // ID-mapped mounts need the host's CAP_SYS_ADMIN and the host's view of
    // their sources: made now, inherited by the init as detached trees.
    let mut idmap = mountattr::prepare(&spec, &cfg.bundle)?;

    // Step 3.
    let plan = namespaces::Plan::from_spec(&spec)?;
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        sysctl::check(s, &plan)?;
    }
    plan.join()?;

    // With a new user namespace the init waits until we wrote its ID maps.
    let (sync_r, sync_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::nix("pipe2", "user namespace sync", e))?;

    // Step 4. Safe to run Rust in the child: this process has a single thread.
    let (mut at_clone, mut later) = plan.clone_and_unshare();
    if into.is_some() {
        // A cgroup namespace made at clone time would be rooted at the
        // helper's cgroup (the kernel takes the caller's), not the one the
        // init is born in: the init makes it itself, from inside its cgroup.
        let ns = libc::CLONE_NEWCGROUP as u64;
        later |= at_clone & ns;
        at_clone &= !ns;
    }
    let flags = at_clone | libc::CLONE_PARENT as u64;
    // SAFETY: the helper is single-threaded (see the crate docs), so the
    // child may run Rust code; the cgroup fd is open for the whole call.
    let forked = match unsafe { sys::clone3_fork_into(flags, into.as_ref().map(|f| f.as_raw_fd())) }
    {
        // Kernels or cgroups that refuse it (before 5.7: E2BIG; a cgroup that
        // cannot take processes directly: EBUSY/EOPNOTSUPP): join as before.
        Err(e) if into.is_some() && clone_into_refused(&e) => {
            log::debug!("CLONE_INTO_CGROUP refused ({e}): joining through cgroup.procs");
            join_cgroups(cfg.cgroups.iter().filter(|c| is_v2(c)))?;
            // SAFETY: as above.
            unsafe { sys::clone3_fork(flags) }
        }
        other => other,
    };
    match forked {
        Err(e) => Err(Error::sys("clone3", "container init", e)),
        Ok(Forked::Parent { pid, pidfd }) => {
            drop(sync_r);
            // Report the init first: if anything below fails, the shim still
            // holds its pidfd to kill and reap it.
            chan.send(&FromInit::Pid(pid), Some(pidfd.as_raw_fd()))?;
            if plan.new_user() {
                userns::write_maps(pid, &spec)?;
            }
            let state = hook_state(&spec, &cfg, "creating", pid);
            let hooks = spec.hooks().as_ref();
            crate::hooks::run(
                "prestart",
                hooks.and_then(|h| h.prestart().as_ref()),
                &state,
            )?;
            crate::hooks::run(
                "createRuntime",
                hooks.and_then(|h| h.create_runtime().as_ref()),
                &state,
            )?;
            nix::unistd::write(&sync_w, &pid.to_ne_bytes())
                .map_err(|e| Error::nix("write", "init sync", e))?;
            Ok(())
        }
        Ok(Forked::Child) => {
            drop(sync_w);
            let err = match userns::wait_for_maps(&sync_r, plan.new_user())
                .and_then(|pid| unshare(later).map(|()| pid))
                .and_then(|pid| timens::write_offsets(&spec).map(|()| pid))
            {
                Ok(host_pid) => {
                    let mut inherited = Inherited {
                        fifo: fifo.take(),
                        idmap: std::mem::take(&mut idmap),
                    };
                    container_init(chan, &cfg, &spec, &rootfs, &plan, host_pid, &mut inherited)
                }
                Err(e) => e,
            };
            let _ = chan.send(&error_report(err.to_string()), None);
            // SAFETY: _exit ends this forked child at once; nothing of the copied
            // address space (atexit handlers, stdio buffers) may run twice.
            unsafe { libc::_exit(127) }
        }
    }
}

/// The namespaces [`namespaces::Plan::clone_and_unshare`] left for after the clone.
fn unshare(flags: u64) -> Result<()> {
    // SAFETY: unshare takes only integer flags.
    if flags != 0 && unsafe { libc::unshare(flags as i32) } < 0 {
        return Err(crate::error::last(
            "unshare",
            "the container's namespaces (as mapped root)",
        ));
    }
    Ok(())
}

/// The v2 (unified) cgroup of the container, as it appears in the config.
fn is_v2(c: &crate::channel::CgroupDir) -> bool {
    c.name.is_empty() || c.name == "unified"
}

/// An fd on the container's v2 cgroup for `CLONE_INTO_CGROUP`; `None` (join
/// through cgroup.procs) when there is none or it cannot be opened.
fn open_v2_cgroup(cgroups: &[crate::channel::CgroupDir]) -> Option<std::fs::File> {
    let c = cgroups.iter().find(|c| is_v2(c))?;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&c.host_dir)
        .ok()
}

fn clone_into_refused(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::E2BIG | libc::EBUSY | libc::EOPNOTSUPP | libc::EINVAL)
    )
}

fn join_cgroups<'a>(
    cgroups: impl IntoIterator<Item = &'a crate::channel::CgroupDir>,
) -> Result<()> {
    let pid = std::process::id().to_string();
    for cg in cgroups {
        let procs = cg.host_dir.join("cgroup.procs");
        std::fs::write(&procs, &pid).map_err(|e| Error::sys("write", procs.display(), e))?;
    }
    Ok(())
}

/// An extra process in a running container: the same steps as for the init,
/// but every namespace is joined from the init's pidfd (one atomic `setns`)
/// and there is no rootfs to prepare.
fn exec_helper(chan: &Channel, cfg: &ExecConfig, init: std::os::fd::OwnedFd) -> Result<()> {
    join_cgroups(&cfg.cgroups)?;
    let all = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP
        | timens::flag_if_supported();
    // The container's user namespace too, when it has its own: setns refuses
    // (EINVAL) to "join" the user namespace we are already in.
    let with_user = all | libc::CLONE_NEWUSER;
    let shared_root = shared_mntns::init_root_if_shared(init.as_raw_fd())?;
    // SAFETY: `init` owns the pidfd for the whole call; the flags are integers.
    if unsafe { libc::setns(init.as_raw_fd(), with_user) } < 0
        // SAFETY: the same pidfd, still owned by `init`, and integer flags.
        && unsafe { libc::setns(init.as_raw_fd(), all) } < 0
    {
        return Err(crate::error::last(
            "setns",
            "container init's namespaces (pidfd)",
        ));
    }
    drop(init);
    if let Some(root) = shared_root {
        shared_mntns::join_root(root)?;
    }
    // SAFETY: the helper is single-threaded (a fresh exec of our binary that
    // starts no thread), as clone3_fork requires.
    match unsafe { sys::clone3_fork(libc::CLONE_PARENT as u64) } {
        Err(e) => Err(Error::sys("clone3", "exec process", e)),
        Ok(Forked::Parent { pid, pidfd }) => {
            chan.send(&FromInit::Pid(pid), Some(pidfd.as_raw_fd()))
        }
        Ok(Forked::Child) => {
            let err = match keyring::join_new(&cfg.id)
                .and_then(|()| exec_prepare(chan, &cfg.process, cfg.seccomp.as_ref()))
                .and_then(|exec| {
                    chan.send(&FromInit::Ready, None)?;
                    Ok(exec)
                }) {
                Ok(exec) => match chan.recv::<ToInit>() {
                    Ok(Some((ToInit::Start, _))) => exec.exec(),
                    // SAFETY: _exit takes an integer and does not return.
                    // SAFETY: _exit ends this forked child without running the
                    // copied address space's exit handlers.
                    Ok(_) => unsafe { libc::_exit(1) },
                    Err(e) => e,
                },
                Err(e) => e,
            };
            let _ = chan.send(&error_report(err.to_string()), None);
            // SAFETY: _exit ends this forked child at once; nothing of the copied
            // address space (atexit handlers, stdio buffers) may run twice.
            unsafe { libc::_exit(127) }
        }
    }
}

fn exec_prepare(
    chan: &Channel,
    p: &oci_spec::runtime::Process,
    seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
) -> Result<process::Exec> {
    if p.terminal() == Some(true) {
        // A terminal needs its own session to become the controlling one.
        // SAFETY: setsid takes no arguments.
        if unsafe { libc::setsid() } < 0 {
            return Err(crate::error::last("setsid", "exec process"));
        }
        console::setup(chan, p, false)?;
    }
    process::setup(p, seccomp)
}

/// Step 5; returns only on failure.
/// Blocks until a `start` opens the FIFO for reading, then tells it we go.
fn wait_fifo(f: &std::fs::File) -> Result<Option<(ToInit, Option<std::os::fd::OwnedFd>)>> {
    let path = format!("/proc/self/fd/{}", f.as_raw_fd());
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::sys("open", "exec fifo", e))?;
    std::io::Write::write_all(&mut w, b"0").map_err(|e| Error::sys("write", "exec fifo", e))?;
    Ok(Some((ToInit::Start, None)))
}

fn hook_state<'a>(
    spec: &'a Spec,
    cfg: &'a InitConfig,
    status: &'a str,
    pid: i32,
) -> crate::hooks::State<'a> {
    crate::hooks::State {
        oci_version: spec.version(),
        id: &cfg.id,
        status,
        pid,
        bundle: &cfg.bundle,
        annotations: spec.annotations().as_ref(),
    }
}

/// What the helper opened from the host's side for the init, which inherits
/// it through the clone: the exec FIFO and the ID-mapped mount trees.
struct Inherited {
    fifo: Option<std::fs::File>,
    idmap: mountattr::IdmapTrees,
}

fn container_init(
    chan: &Channel,
    cfg: &InitConfig,
    spec: &Spec,
    rootfs: &Path,
    plan: &namespaces::Plan,
    host_pid: i32,
    inherited: &mut Inherited,
) -> Error {
    let hooks = spec.hooks().as_ref();
    let create_hooks = || {
        let state = hook_state(spec, cfg, "creating", host_pid);
        crate::hooks::run(
            "createContainer",
            hooks.and_then(|h| h.create_container().as_ref()),
            &state,
        )
    };
    match prepare(
        chan,
        cfg,
        spec,
        rootfs,
        plan,
        &mut inherited.idmap,
        &create_hooks,
    ) {
        Ok(exec) => {
            // Wait for Start; EOF means the shim gave up on us (delete before start).
            let started = match &inherited.fifo {
                Some(f) => wait_fifo(f),
                None => chan.recv::<ToInit>(),
            };
            match started {
                Ok(Some((ToInit::Start, _))) => {
                    let state = hook_state(spec, cfg, "created", host_pid);
                    match crate::hooks::run(
                        "startContainer",
                        hooks.and_then(|h| h.start_container().as_ref()),
                        &state,
                    ) {
                        Ok(()) => exec.exec(),
                        Err(e) => e,
                    }
                }
                // SAFETY: _exit takes an integer and does not return.
                Ok(_) => unsafe { libc::_exit(1) },
                Err(e) => e,
            }
        }
        Err(e) => e,
    }
}

fn prepare(
    chan: &Channel,
    cfg: &InitConfig,
    spec: &Spec,
    rootfs: &Path,
    plan: &namespaces::Plan,
    idmap: &mut mountattr::IdmapTrees,
    create_hooks: &dyn Fn() -> Result<()>,
) -> Result<process::Exec> {
    // A new session: the container's processes must not share the shim's.
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err(crate::error::last("setsid", "container init"));
    }
    // Before createContainer hooks: they (and everything after) already run
    // with the container's keyring.
    keyring::join_new(&cfg.id)?;
    if plan.has(LinuxNamespaceType::Mount) {
        rootfs::prepare(
            spec,
            &cfg.bundle,
            rootfs,
            &cfg.cgroups,
            plan,
            idmap,
            create_hooks,
        )?;
    } else {
        shared_mntns::enter(rootfs, create_hooks)?;
    }
    if let Some(hostname) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if !plan.has(LinuxNamespaceType::Uts) {
            return Err(Error::unsupported(
                "hostname",
                "setting a hostname needs a uts namespace in linux.namespaces",
            ));
        }
        nix::unistd::sethostname(hostname).map_err(|e| Error::nix("sethostname", hostname, e))?;
    }
    if let Some(domain) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        // SAFETY: the kernel reads exactly `domain.len()` bytes from `domain.as_ptr()`, a live str
        // of that length (the length is passed, no NUL needed).
        let r = unsafe { libc::setdomainname(domain.as_ptr().cast(), domain.len()) };
        if r < 0 {
            return Err(crate::error::last("setdomainname", domain));
        }
    }
    let process = spec
        .process()
        .as_ref()
        .expect("checked by spec::check_supported");
    if process.terminal() == Some(true) {
        console::setup(chan, process, true)?;
    }
    if let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        process::personality(p)?;
    }
    let exec = process::setup(
        process,
        spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()),
    )?;
    // process::setup marked every fd but stdio close-on-exec (incl. the channel).
    chan.send(&FromInit::Ready, None)?;
    Ok(exec)
}
