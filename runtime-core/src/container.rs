//! The parent side of a container's lifecycle, run inside the shim.
//!
//! Nothing here forks the (multi-threaded) caller except through
//! `std::process::Command`, whose child does only `dup2`/`fcntl`/`execve`
//! before becoming the single-threaded helper (see the crate docs).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as StdStdio};

use crate::cgroups::systemd::Systemd;
use crate::cgroups::Cgroup;
use crate::channel::{Channel, ExecConfig, FromInit, InitConfig, ToInit};
use crate::error::{Error, Result};
use crate::init::CHANNEL_FD;
pub use crate::pidfd::{ExitStatus, Pidfd};
use crate::{sealed, spec, HELPER_ARG};

/// The container's stdio; `None` becomes `/dev/null`.
#[derive(Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

pub struct CreateOpts<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub stdio: Stdio,
    /// See [`crate::channel::InitConfig::exec_fifo`]; `None` for a long-lived caller.
    pub exec_fifo: Option<&'a Path>,
}

/// A created (and maybe started) container. The init is our child: its
/// [`Pidfd`] is the handle to signal and reap it.
#[derive(Debug)]
pub struct Container {
    id: String,
    bundle: PathBuf,
    init: Pidfd,
    /// Held until `start`: the init blocks on it before `execve`. Behind a
    /// mutex so a caller sharing the container (`Arc`) can start it through
    /// `&self` while other threads signal it or read its stats.
    chan: std::sync::Mutex<Option<Channel>>,
    /// The init's terminal master until the caller takes it.
    console: Option<OwnedFd>,
    /// What poststart/poststop hooks need after create.
    hooks: Option<oci_spec::runtime::Hooks>,
    annotations: Option<std::collections::HashMap<String, String>>,
    oci_version: String,
    seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    cgroup: Cgroup,
    /// The container's systemd unit, with a `slice:prefix:name` cgroupsPath.
    systemd: Option<Systemd>,
    /// CRIU restored the tree, stopped; `start` continues it.
    restored: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Channel({})", self.raw())
    }
}

fn stdio(fd: Option<OwnedFd>) -> StdStdio {
    fd.map_or(StdStdio::null(), StdStdio::from)
}

impl Container {
    /// Creates the container and stops right before `execve` of its process.
    /// On error nothing is left behind: no cgroup, no process.
    pub fn create(opts: CreateOpts) -> Result<Container> {
        let spec = spec::load(opts.bundle)?;
        spec::check_supported(&spec)?;
        spec::rootfs(opts.bundle, &spec)?;
        let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
        let systemd = match spec::cgroups_path_raw(&spec) {
            Some(p) => Systemd::from_cgroups_path(&p, opts.id)?,
            None => None,
        };
        let path = spec::cgroup_path(&spec, opts.id);
        // With systemd the unit's cgroup is made by systemd, once the helper
        // exists to be its first process (see cgroups::systemd).
        let cgroup = match systemd {
            None => Cgroup::create(&path, resources)?,
            Some(_) => Cgroup::open(&path)?,
        };
        let mut started = false;
        let mut before_config = |helper: u32| -> Result<()> {
            let Some(sd) = &systemd else { return Ok(()) };
            let pid = (!sd.unit().is_slice()).then_some(helper);
            sd.start(pid, resources)?;
            started = true;
            // Every limit in the files too: exact, and in force now; and the
            // device rules (the baseline even without any), as on cgroupfs.
            cgroup.apply_at_create(resources)
        };
        let (id, bundle) = (opts.id.to_string(), opts.bundle.to_path_buf());
        let spawned = spawn_init(opts, &cgroup, &mut before_config);
        match spawned {
            Ok(l) => Ok(Container {
                id,
                bundle,
                init: l.pidfd,
                chan: std::sync::Mutex::new(Some(l.chan)),
                console: l.console,
                hooks: spec.hooks().clone(),
                annotations: spec.annotations().clone(),
                oci_version: spec.version().clone(),
                seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
                cgroup,
                systemd,
                restored: false.into(),
            }),
            Err(e) => {
                if systemd.is_none() || started {
                    let _ = cgroup.destroy();
                }
                if let (Some(sd), true) = (&systemd, started) {
                    if let Err(stop) = sd.stop() {
                        log::warn!("container {id}: {stop}");
                    }
                }
                Err(e)
            }
        }
    }

    /// Handle on a container created earlier by another process (a CLI's
    /// `create`): signals, pids, pause, update, stats and delete work; waiting
    /// for the init does not (it is not our child).
    pub fn attach(id: &str, bundle: &Path, pid: i32) -> Result<Container> {
        let spec = spec::load(bundle)?;
        let cgroup = Cgroup::open(&spec::cgroup_path(&spec, id))?;
        let systemd = match spec::cgroups_path_raw(&spec) {
            Some(p) => Systemd::parse(&p, id)?,
            None => None,
        };
        Ok(Container {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            init: Pidfd::open(pid)?,
            chan: std::sync::Mutex::new(None),
            console: None,
            hooks: spec.hooks().clone(),
            annotations: spec.annotations().clone(),
            oci_version: spec.version().clone(),
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
            cgroup,
            systemd,
            restored: false.into(),
        })
    }

    /// The container whose tree CRIU restored and left stopped
    /// ([`crate::checkpoint::restore`]); `init` is our child.
    pub(crate) fn restored(
        id: &str,
        bundle: &Path,
        init: Pidfd,
        spec: &oci_spec::runtime::Spec,
        cgroup: Cgroup,
    ) -> Container {
        Container {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            init,
            chan: std::sync::Mutex::new(None),
            console: None,
            hooks: spec.hooks().clone(),
            annotations: spec.annotations().clone(),
            oci_version: spec.version().clone(),
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
            cgroup,
            systemd: None,
            restored: true.into(),
        }
    }

    /// The init's terminal master (once), when its process has `terminal`.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn bundle(&self) -> &Path {
        &self.bundle
    }

    pub fn pid(&self) -> i32 {
        self.init.pid()
    }

    /// The init's pidfd: readable once it exited; then call [`Pidfd::try_reap`].
    pub fn init(&self) -> &Pidfd {
        &self.init
    }

    /// Lets the init `execve` the user process. When that fails, the init is
    /// killed (and left for the caller's waiter to reap) and the error returned.
    pub fn start(&mut self) -> Result<()> {
        self.start_shared()
    }

    /// [`Container::start`] through a shared reference, for callers that keep
    /// the container in an `Arc` and must not serialize every other operation
    /// (kill, stats, exec) behind the start.
    pub fn start_shared(&self) -> Result<()> {
        if self
            .restored
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            // The init first, so no child of it runs before it can reap it.
            self.init.signal(libc::SIGCONT)?;
            self.cgroup.signal_all(libc::SIGCONT)?;
            if let Err(e) = self.run_hooks("poststart", "running") {
                log::warn!("container {}: {e}", self.id);
            }
            return Ok(());
        }
        let chan = self
            .chan
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Error::Protocol(format!("container {} was already started", self.id)))?;
        if let Err(e) = release(chan) {
            // The init never runs the user process now (its channel is
            // gone): end it, so that it is reported exited, not left created.
            let _ = self.init.signal(libc::SIGKILL);
            return Err(e);
        }
        // A failing poststart hook is logged; the container runs on (runtime-spec).
        if let Err(e) = self.run_hooks("poststart", "running") {
            log::warn!("container {}: {e}", self.id);
        }
        Ok(())
    }

    /// Runs the spec's `poststart` or `poststop` hooks with the given state status.
    pub fn run_hooks(&self, kind: &str, status: &str) -> Result<()> {
        let hooks = self.hooks.as_ref().and_then(|h| match kind {
            "poststart" => h.poststart().as_ref(),
            _ => h.poststop().as_ref(),
        });
        let state = crate::hooks::State {
            oci_version: &self.oci_version,
            id: &self.id,
            status,
            pid: self.init.pid(),
            bundle: &self.bundle,
            annotations: self.annotations.as_ref(),
        };
        crate::hooks::run(kind, hooks, &state)
    }

    /// Runs an extra process in the container (`exec`): it joins every
    /// namespace of the init (through its pidfd) and the container's cgroups,
    /// gets its own identity, capabilities, rlimits, env and cwd, and is
    /// started at once. Returns its pidfd; it is our child like the init.
    pub fn exec(
        &self,
        process: &oci_spec::runtime::Process,
        stdio: Stdio,
    ) -> Result<(Pidfd, Option<OwnedFd>)> {
        spec::check_process(process, "exec process")?;
        let cfg = ExecConfig {
            id: self.id.clone(),
            process: process.clone(),
            seccomp: self.seccomp.clone(),
            cgroups: self.cgroup.dirs(),
        };
        let l = launch(
            ToInit::Exec(Box::new(cfg)),
            Some(self.init.as_raw_fd()),
            stdio,
            &mut |_| Ok(()),
        )?;
        let pidfd = l.pidfd;
        match release(l.chan) {
            Ok(()) => Ok((pidfd, l.console)),
            Err(e) => {
                let _ = pidfd.signal(libc::SIGKILL);
                let _ = pidfd.reap_blocking();
                Err(e)
            }
        }
    }

    /// Signals the init, or with `all` every process in the container's cgroup.
    /// A SIGKILL also thaws a paused container (as runc does): frozen tasks
    /// would not die until thawed, and the task must stop at once.
    pub fn kill(&self, sig: i32, all: bool) -> Result<()> {
        if all {
            self.cgroup.signal_all(sig)?;
        }
        let r = self.init.signal(sig).map(|_| ());
        if sig == libc::SIGKILL {
            self.cgroup.thaw_if_frozen();
        }
        r
    }

    /// Freezes every process of the container (`ctr task pause`).
    pub fn pause(&self) -> Result<()> {
        self.cgroup.freeze(true)
    }

    pub fn resume(&self) -> Result<()> {
        self.cgroup.freeze(false)
    }

    /// See [`Cgroup::oom_watch`].
    pub fn oom_watch(&self) -> Result<Option<crate::cgroups::OomWatch>> {
        self.cgroup.oom_watch()
    }

    /// Processes killed by the OOM killer so far.
    pub fn oom_kills(&self) -> Option<u64> {
        self.cgroup.oom_kills()
    }

    /// Applies new resource limits to the running container.
    pub fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        // systemd first: it refuses a bad value before any file changed, and
        // it must know the new limits or its next realization reverts them.
        if let Some(sd) = &self.systemd {
            sd.update(resources)?;
        }
        self.cgroup.apply(Some(resources))
    }

    /// Resource usage from the container's cgroup.
    pub fn stats(&self) -> crate::stats::Stats {
        self.cgroup.stats()
    }

    pub fn pids(&self) -> Result<Vec<i32>> {
        self.cgroup.procs()
    }

    /// Removes what `create` made. The init must have exited (and been reaped);
    /// processes left in the cgroup are killed.
    pub fn delete(self) -> Result<()> {
        // Dropping the channel releases an init still waiting for start: it exits.
        drop(self.chan.lock().unwrap_or_else(|e| e.into_inner()).take());
        let mut res = self.cgroup.destroy();
        // After the kill: a scope with live processes would wait for them
        // for TimeoutStopSec.
        if let Some(sd) = &self.systemd {
            res = res.and(sd.stop());
        }
        // A failing poststop hook is logged; the delete goes on (runtime-spec).
        if let Err(e) = self.run_hooks("poststop", "stopped") {
            log::warn!("container {}: {e}", self.id);
        }
        res
    }
}

/// Re-executes our sealed binary as the helper, hands it the config, and
/// waits until the init is set up (or failed).
fn spawn_init(
    opts: CreateOpts,
    cgroup: &Cgroup,
    before_config: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<Launched> {
    let cfg = InitConfig {
        id: opts.id.to_string(),
        bundle: opts.bundle.to_path_buf(),
        cgroups: cgroup.dirs(),
        exec_fifo: opts.exec_fifo.map(Path::to_path_buf),
    };
    launch(ToInit::Config(cfg), None, opts.stdio, before_config)
}

/// A process set up and waiting in front of `execve`.
struct Launched {
    pidfd: Pidfd,
    chan: Channel,
    /// The terminal's master, with `process.terminal`.
    console: Option<OwnedFd>,
}

/// Starts a helper, calls `before_send` with its pid (the helper waits for
/// its message meanwhile), sends it `msg` (with `fd` attached), and waits for
/// the process it clones to be set up and waiting for Start.
fn launch(
    msg: ToInit,
    fd: Option<RawFd>,
    stdio: Stdio,
    before_send: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<Launched> {
    let (ours, theirs) = Channel::pair()?;
    let exe = sealed::copy()?;
    let mut child = helper_command(&sealed::path(&exe), &theirs, stdio)
        .spawn()
        .map_err(|e| Error::sys("spawn", "container init helper", e))?;
    // spawn() returned: the helper's execve is done and holds its own reference.
    drop(exe);
    // Only the helper may hold its end, or we would never see EOF from it.
    drop(theirs);
    if let Err(e) = before_send(child.id()) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    if let Err(e) = ours.send(&msg, fd) {
        // The helper waits for a message it will never have whole and has
        // made nothing yet: end it, or it and we would wait for each other forever.
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    // Two senders share the channel: the helper reports the new process's
    // pid(fd), the process reports Ready or Error. Under load either may come first.
    let mut init: Option<Pidfd> = None;
    let mut console: Option<OwnedFd> = None;
    let mut outcome: Option<Result<()>> = None;
    while init.is_none() || outcome.is_none() {
        match ours.recv::<FromInit>() {
            Ok(Some((FromInit::Pid(pid), Some(fd)))) => init = Some(Pidfd::new(pid, fd)),
            Ok(Some((FromInit::Console, Some(fd)))) => console = Some(fd),
            Ok(Some((FromInit::Ready, _))) => outcome = Some(Ok(())),
            Ok(Some((FromInit::Error(msg), _))) => outcome = Some(Err(Error::Init(msg))),
            Ok(Some((other, _))) => {
                outcome = Some(Err(Error::Protocol(format!("unexpected {other:?}"))));
                break;
            }
            // EOF: helper and process are both gone.
            Ok(None) => break,
            Err(e) => {
                outcome = Some(Err(e));
                break;
            }
        }
    }
    // The helper exits right after reporting; reap it (it is our child).
    let _ = child.wait();
    match (init, outcome) {
        (Some(init), Some(Ok(()))) => Ok(Launched {
            pidfd: init,
            chan: ours,
            console,
        }),
        (init, outcome) => {
            // Set-up failed: make sure the process is gone and reaped.
            if let Some(init) = init {
                init.signal(libc::SIGKILL)?;
                let _ = init.reap_blocking();
            }
            Err(match outcome {
                Some(Err(e)) => e,
                _ => {
                    Error::Protocol("container process ended during set-up without a report".into())
                }
            })
        }
    }
}

/// Releases a process waiting in front of `execve` and reports how that went.
fn release(chan: Channel) -> Result<()> {
    chan.send(&ToInit::Start, None)?;
    // The channel is close-on-exec in the process: EOF means execve succeeded.
    match chan.recv::<FromInit>()? {
        None => Ok(()),
        Some((FromInit::Error(msg), _)) => Err(Error::Init(msg)),
        Some((other, _)) => Err(Error::Protocol(format!("unexpected {other:?} after start"))),
    }
}

/// Cleans up after a container whose shim died: kills what is left in its
/// cgroup and removes the cgroup. Works from the bundle alone.
pub fn cleanup(bundle: &Path, id: &str) -> Result<()> {
    let spec = spec::load(bundle)?;
    let res = Cgroup::open(&spec::cgroup_path(&spec, id))?.destroy();
    match spec::cgroups_path_raw(&spec).map(|p| Systemd::parse(&p, id)) {
        Some(Ok(Some(sd))) => res.and(sd.stop()),
        _ => res,
    }
}

fn helper_command(exe: &str, chan: &Channel, stdio: Stdio) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg0("rshim-init")
        .arg(HELPER_ARG)
        .env_clear()
        .stdin(self::stdio(stdio.stdin))
        .stdout(self::stdio(stdio.stdout))
        .stderr(self::stdio(stdio.stderr));
    let raw = chan.raw();
    // SAFETY: the closure runs in the forked child of a possibly multi-threaded process, between
    // fork and exec, so it calls only async-signal-safe functions (fcntl, dup2, errno) and
    // allocates nothing; `raw` is the helper's end of the channel, open until `chan` is dropped
    // after spawn() returned.
    unsafe {
        cmd.pre_exec(move || {
            if raw == CHANNEL_FD {
                let flags = libc::fcntl(raw, libc::F_GETFD);
                libc::fcntl(raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(raw, CHANNEL_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    cmd
}
