//! The steps behind Create, Start and Delete of the init and of execs, and
//! Pause/Resume: host-side work on blocking threads, events in containerd's order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use containerd_shim_protos::api::{CreateTaskRequest, DeleteResponse, StartResponse};
use containerd_shim_protos::events::task::{
    TaskDelete, TaskExecStarted, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::MessageField;
use ttrpc::{Code, Error as TtrpcError};

use crate::container::{self, Container, Process, Status};
use crate::events::Event;
use crate::{io, reaper, workdir};

use super::{core_err, err, Res, Service};

/// Undoes the host-side steps of a failed create.
pub(super) fn undo_create(bundle: &Path, mounted: bool) {
    if mounted {
        if let Err(e) = runtime_core::rootfs_mount::unmount(&bundle.join("rootfs")) {
            log::error!("{e}");
        }
    }
    if let Err(e) = workdir::remove(bundle) {
        log::error!("remove work dir in {}: {e}", bundle.display());
    }
}

/// What [`create_blocking`] made.
pub(super) struct Created {
    pub(super) core: runtime_core::Container,
    pub(super) rootfs_mounted: bool,
    pub(super) kill_all_on_exit: bool,
}

/// A container without a pid namespace of its own (none in the spec, or one
/// joined by path, like a pod's): its processes do not die with its init by
/// themselves, so the shim kills them (as containerd's runc shim does).
fn shares_pid_namespace(spec: &oci_spec::runtime::Spec) -> bool {
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    !namespaces.is_some_and(|all| {
        all.iter()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none())
    })
}

/// Host-side creation, run on a blocking thread: work dir, rootfs, container
/// (created, or restored from a checkpoint).
pub(super) fn create_blocking(
    req: &CreateTaskRequest,
    opts: &crate::options::Options,
    stdio: runtime_core::Stdio,
    restore: Option<&crate::checkpoint::RestoreFrom>,
) -> runtime_core::Result<Created> {
    let bundle = PathBuf::from(&req.bundle);
    let spec = runtime_core::spec::load(&bundle)?;
    // The cgroupsPath's form picks the driver (containerd's CRI writes
    // `slice:prefix:name` when the option is set); with the option, as with the
    // runc shim, any other form is a configuration mismatch.
    if opts.systemd_cgroup {
        let path = runtime_core::spec::cgroups_path_raw(&spec);
        if path.as_deref().is_none_or(|p| p.split(':').count() != 3) {
            return Err(runtime_core::Error::unsupported(
                "runtime option SystemdCgroup",
                format!(
                    "SystemdCgroup = true needs linux.cgroupsPath in the systemd form \
                     slice:prefix:name, got {path:?}: give the container a systemd slice \
                     (kubelet cgroupDriver: systemd) or set SystemdCgroup = false"
                ),
            ));
        }
    }
    let kill_all_on_exit = shares_pid_namespace(&spec);
    let wd = workdir::create(&bundle, &spec)
        .map_err(|e| runtime_core::Error::sys("mkdir", workdir::path(&bundle).display(), e))?;
    let mounts: Vec<_> = req
        .rootfs
        .iter()
        .map(|m| runtime_core::rootfs_mount::RootfsMount {
            typ: m.type_.clone(),
            source: m.source.clone(),
            options: m.options.clone(),
        })
        .collect();
    let mounted = !mounts.is_empty();
    // The helper and the init are our children: not orphans (see reaper).
    let _gate = reaper::spawning();
    let result =
        runtime_core::rootfs_mount::mount_all(&mounts, &bundle.join("rootfs")).and_then(|_| {
            match restore {
                Some(from) => crate::checkpoint::restore(req, from, stdio),
                None => runtime_core::Container::create(runtime_core::CreateOpts {
                    exec_fifo: None,
                    id: &req.id,
                    bundle: &bundle,
                    stdio,
                }),
            }
        });
    match result {
        Ok(c) => {
            reaper::track(c.pid());
            let _ = std::fs::write(wd.join("init.pid"), c.pid().to_string());
            Ok(Created {
                core: c,
                rootfs_mounted: mounted,
                kill_all_on_exit,
            })
        }
        Err(e) => {
            undo_create(&bundle, mounted);
            Err(e)
        }
    }
}

/// The container once no in-flight operation (a Stats or Exec that cloned
/// the handle just before Delete took it) still uses it. Those finish
/// promptly: the init is gone, so an exec fails at once.
pub(super) fn sole_owner(mut core: Arc<runtime_core::Container>) -> runtime_core::Container {
    loop {
        match Arc::try_unwrap(core) {
            Ok(k) => return k,
            Err(shared) => {
                core = shared;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// How long a failed Start waits for the killed init's exit to be recorded.
const STOPPED_AFTER_FAILED_START: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) fn join_err(e: tokio::task::JoinError) -> TtrpcError {
    err(Code::INTERNAL, e.to_string())
}

impl Service {
    pub(super) async fn start_init(&self, c: Arc<Container>) -> Res<StartResponse> {
        let p = c.init.clone();
        if p.status() != Status::Created {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("container {} is not in created state", c.id),
            ));
        }
        let order = c.event_order.lock().await;
        let c2 = c.clone();
        let started = tokio::task::spawn_blocking(move || match c2.core() {
            // poststart hooks are our children, reaped by the hook runner.
            Some(core) => {
                let _gate = reaper::spawning();
                core.start_shared()
            }
            None => Err(runtime_core::Error::Protocol(
                "container was deleted".into(),
            )),
        })
        .await
        .map_err(join_err)?;
        if let Err(e) = started {
            // The init is dead or dying (runtime-core kills it when its start
            // fails). Answer only once its exit is recorded: a client that
            // reads CREATED after a failed Start cannot delete the task
            // (containerd's client refuses to delete a created task with a pid).
            drop(order);
            if tokio::time::timeout(STOPPED_AFTER_FAILED_START, p.wait())
                .await
                .is_err()
            {
                log::error!(
                    "container {}: init not reported exited {STOPPED_AFTER_FAILED_START:?} after its failed start",
                    c.id
                );
            }
            return Err(core_err(e));
        }
        // Only a process still marked created becomes running (it may have exited already).
        p.status.send_if_modified(|s| {
            let change = *s == Status::Created;
            if change {
                *s = Status::Running;
            }
            change
        });
        self.publisher.publish(Event::Start(TaskStart {
            container_id: c.id.clone(),
            pid: p.pid(),
            ..Default::default()
        }));
        drop(order);
        Ok(StartResponse {
            pid: p.pid(),
            ..Default::default()
        })
    }

    pub(super) async fn start_exec(
        &self,
        c: Arc<Container>,
        p: Arc<Process>,
    ) -> Res<StartResponse> {
        if p.status() != Status::Created {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("exec {} was already started", p.exec_id),
            ));
        }
        if c.init.status() != Status::Running {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("container {} is not running", c.id),
            ));
        }
        let terminal = p.spec.as_ref().and_then(|s| s.terminal()) == Some(true);
        // With a terminal, the pty (made in the container) replaces the pipes.
        let (stdio, io) = if terminal {
            (runtime_core::Stdio::default(), None)
        } else {
            let owner = io::Owner {
                io_ids: c.io_ids,
                ..self.owner(&p.exec_id)
            };
            let (stdio, io) = io::open(owner, &p.stdin, &p.stdout, &p.stderr)
                .await
                .map_err(|e| err(Code::INTERNAL, format!("open exec stdio: {e}")))?;
            (stdio, Some(io))
        };
        *p.io.lock().unwrap() = io;
        let order = c.event_order.lock().await;
        let (c2, p2) = (c.clone(), p.clone());
        let pidfd = tokio::task::spawn_blocking(move || {
            let spec = p2.spec.as_ref().expect("execs carry their spec");
            let _gate = reaper::spawning();
            match c2.core() {
                Some(core) => core
                    .exec(spec, stdio)
                    .inspect(|(fd, _)| reaper::track(fd.pid())),
                None => Err(runtime_core::Error::Protocol(
                    "container was deleted".into(),
                )),
            }
        })
        .await
        .map_err(join_err)?;
        let (pidfd, console) = match pidfd {
            Ok(fd) => fd,
            Err(e) => {
                // Never ran: report it as exited so Wait and Delete do not hang.
                p.io.lock().unwrap().take();
                p.status.send_replace(Status::Stopped {
                    code: 127,
                    at: crate::events::now(),
                });
                return Err(core_err(e));
            }
        };
        if let Some(master) = console {
            let io = io::terminal(master, self.owner(&p.exec_id), &p.stdin, &p.stdout)
                .await
                .map_err(|e| err(Code::INTERNAL, format!("exec terminal IO: {e}")))?;
            *p.io.lock().unwrap() = Some(io);
        }
        let pid = pidfd.pid() as u32;
        p.pid.store(pid, std::sync::atomic::Ordering::Relaxed);
        let watch_fd = container::dup_pidfd(&pidfd)
            .map_err(|e| err(Code::INTERNAL, format!("dup pidfd: {e}")))?;
        *p.pidfd.lock().unwrap() = Some(pidfd);
        p.status.send_replace(Status::Running);
        container::watch_exit(c.clone(), p.clone(), watch_fd, self.publisher.clone())
            .map_err(|e| err(Code::INTERNAL, format!("watch exec pidfd: {e}")))?;
        self.publisher.publish(Event::ExecStarted(TaskExecStarted {
            container_id: c.id.clone(),
            exec_id: p.exec_id.clone(),
            pid,
            ..Default::default()
        }));
        drop(order);
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    pub(super) async fn delete_init(&self, c: Arc<Container>) -> Res<DeleteResponse> {
        let p = c.init.clone();
        match p.status() {
            Status::Running | Status::Paused => {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("container {} is running: kill it before delete", c.id),
                ))
            }
            Status::Created => {
                // Never started: the init waits before exec; end it.
                if let Some(core) = c.core() {
                    let _ = core.kill(libc::SIGKILL, false);
                }
            }
            Status::Stopped { .. } => {}
        }
        let (code, at) = p.wait().await;
        // Taken here, on the async thread: of concurrent Deletes only one goes on.
        let Some(core) = c.core.lock().unwrap().take() else {
            return Err(err(
                Code::NOT_FOUND,
                format!("container {} is being deleted", c.id),
            ));
        };
        let c2 = c.clone();
        tokio::task::spawn_blocking(move || -> runtime_core::Result<()> {
            let core = sole_owner(core);
            // poststop hooks are our children, reaped by the hook runner.
            let _gate = reaper::spawning();
            let res = core.delete();
            undo_create(&c2.bundle, c2.rootfs_mounted);
            res
        })
        .await
        .map_err(join_err)?
        .map_err(core_err)?;
        self.containers.lock().unwrap().remove(&c.id);
        self.publisher.publish(Event::Delete(TaskDelete {
            container_id: c.id.clone(),
            id: c.id.clone(),
            pid: p.pid(),
            exit_status: code,
            exited_at: MessageField::some(at.clone()),
            ..Default::default()
        }));
        Ok(DeleteResponse {
            pid: p.pid(),
            exit_status: code,
            exited_at: MessageField::some(at),
            ..Default::default()
        })
    }

    pub(super) async fn freeze(&self, id: &str, pause: bool) -> Res<Empty> {
        let c = self.get(id)?;
        let (from, to) = if pause {
            (Status::Running, Status::Paused)
        } else {
            (Status::Paused, Status::Running)
        };
        if c.init.status() != from {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("container {id} is not {from:?}"),
            ));
        }
        let c2 = c.clone();
        tokio::task::spawn_blocking(move || match c2.core() {
            Some(core) if pause => core.pause(),
            Some(core) => core.resume(),
            None => Err(runtime_core::Error::Protocol(
                "container was deleted".into(),
            )),
        })
        .await
        .map_err(join_err)?
        .map_err(core_err)?;
        c.init.status.send_if_modified(|s| {
            let change = *s == from;
            if change {
                *s = to;
            }
            change
        });
        self.publisher.publish(if pause {
            Event::Paused(TaskPaused {
                container_id: id.to_string(),
                ..Default::default()
            })
        } else {
            Event::Resumed(TaskResumed {
                container_id: id.to_string(),
                ..Default::default()
            })
        });
        Ok(Empty::new())
    }
}
