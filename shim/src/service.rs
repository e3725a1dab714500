//! The Task service, served as both `containerd.task.v2.Task` (containerd 1.x)
//! and `containerd.task.v3.Task` (2.x): the messages are identical.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use containerd_shim_protos::api::{
    ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, KillRequest, PidsRequest, PidsResponse, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, WaitRequest, WaitResponse,
};
use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskIO, TaskStart};
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::{EnumOrUnknown, MessageField};
use containerd_shim_protos::shim::shim::{
    CheckpointTaskRequest, CloseIORequest, ExecProcessRequest, PauseRequest, ResizePtyRequest,
    ResumeRequest, StatsRequest, StatsResponse, UpdateTaskRequest,
};
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::types::task::{ProcessInfo, Status as ApiStatus};
use tokio::sync::{watch, Notify};
use ttrpc::r#async::TtrpcContext;
use ttrpc::{Code, Error as TtrpcError};

use crate::container::{self, Container, Status};
use crate::events::{Event, Publisher};
use crate::{io, workdir};

type Res<T> = ttrpc::Result<T>;

fn err(code: Code, msg: impl Into<String>) -> TtrpcError {
    TtrpcError::RpcStatus(ttrpc::get_status(code, msg.into()))
}

fn core_err(e: runtime_core::Error) -> TtrpcError {
    let code = match &e {
        runtime_core::Error::Spec { .. } | runtime_core::Error::Unsupported { .. } => {
            Code::INVALID_ARGUMENT
        }
        runtime_core::Error::Init(_) => Code::FAILED_PRECONDITION,
        _ => Code::INTERNAL,
    };
    err(code, e.to_string())
}

fn unimplemented(method: &str) -> TtrpcError {
    err(
        Code::UNIMPLEMENTED,
        format!("{method} is not implemented by containerd-shim-rust-v1 yet"),
    )
}

pub struct Service {
    containers: Mutex<HashMap<String, Arc<Container>>>,
    publisher: Publisher,
    shutdown: Arc<Notify>,
}

impl Service {
    pub fn new(publisher: Publisher, shutdown: Arc<Notify>) -> Self {
        Service {
            containers: Mutex::new(HashMap::new()),
            publisher,
            shutdown,
        }
    }

    fn get(&self, id: &str) -> Res<Arc<Container>> {
        self.containers
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| err(Code::NOT_FOUND, format!("container {id} not found")))
    }

    fn no_exec(exec_id: &str) -> Res<()> {
        if exec_id.is_empty() {
            Ok(())
        } else {
            Err(err(
                Code::NOT_FOUND,
                format!("exec {exec_id} not found: execs are not implemented yet"),
            ))
        }
    }
}

/// Undoes the host-side steps of a failed create.
fn undo_create(bundle: &Path, mounted: bool) {
    if mounted {
        if let Err(e) = runtime_core::rootfs_mount::unmount(&bundle.join("rootfs")) {
            log::error!("{e}");
        }
    }
    if let Err(e) = workdir::remove(bundle) {
        log::error!("remove work dir in {}: {e}", bundle.display());
    }
}

/// Host-side creation, run on a blocking thread: work dir, rootfs, container.
fn create_blocking(
    req: &CreateTaskRequest,
    stdio: runtime_core::Stdio,
) -> runtime_core::Result<(runtime_core::Container, bool)> {
    let bundle = PathBuf::from(&req.bundle);
    let spec = runtime_core::spec::load(&bundle)?;
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
    let result =
        runtime_core::rootfs_mount::mount_all(&mounts, &bundle.join("rootfs")).and_then(|_| {
            runtime_core::Container::create(runtime_core::CreateOpts {
                id: &req.id,
                bundle: &bundle,
                stdio,
            })
        });
    match result {
        Ok(c) => {
            let _ = std::fs::write(wd.join("init.pid"), c.pid().to_string());
            Ok((c, mounted))
        }
        Err(e) => {
            undo_create(&bundle, mounted);
            Err(e)
        }
    }
}

#[async_trait]
impl Task for Service {
    async fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> Res<CreateTaskResponse> {
        log::debug!("create {} bundle {}", req.id, req.bundle);
        if self.containers.lock().unwrap().contains_key(&req.id) {
            return Err(err(
                Code::ALREADY_EXISTS,
                format!("container {} already exists", req.id),
            ));
        }
        if req.terminal {
            return Err(err(
                Code::UNIMPLEMENTED,
                "terminal (tty) containers are not implemented yet",
            ));
        }
        if !req.checkpoint.is_empty() {
            return Err(err(
                Code::UNIMPLEMENTED,
                "restore from checkpoint is not implemented yet",
            ));
        }
        let (stdio, io) = io::open(&req.stdin, &req.stdout, &req.stderr)
            .map_err(|e| err(Code::INTERNAL, format!("open container stdio FIFOs: {e}")))?;
        let req = Arc::new(req);
        let r = req.clone();
        let (core, mounted) = tokio::task::spawn_blocking(move || create_blocking(&r, stdio))
            .await
            .map_err(|e| err(Code::INTERNAL, e.to_string()))?
            .map_err(core_err)?;
        let pid = core.pid() as u32;
        let c = Arc::new(Container {
            id: req.id.clone(),
            bundle: PathBuf::from(&req.bundle),
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            pid,
            rootfs_mounted: mounted,
            core: Mutex::new(Some(core)),
            io: Mutex::new(io),
            status: watch::Sender::new(Status::Created),
            event_order: tokio::sync::Mutex::new(()),
        });
        container::watch_exit(c.clone(), self.publisher.clone())
            .map_err(|e| err(Code::INTERNAL, format!("watch init pidfd: {e}")))?;
        self.containers.lock().unwrap().insert(req.id.clone(), c);
        self.publisher.publish(Event::Create(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            pid,
            ..Default::default()
        }));
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> Res<StartResponse> {
        Self::no_exec(&req.exec_id)?;
        let c = self.get(&req.id)?;
        if c.status() != Status::Created {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("container {} is not in created state", req.id),
            ));
        }
        let order = c.event_order.lock().await;
        let c2 = c.clone();
        let started = tokio::task::spawn_blocking(move || match c2.core.lock().unwrap().as_mut() {
            Some(core) => core.start(),
            None => Err(runtime_core::Error::Protocol(
                "container was deleted".into(),
            )),
        })
        .await
        .map_err(|e| err(Code::INTERNAL, e.to_string()))?;
        started.map_err(core_err)?;
        // Only a container still marked created becomes running (it may have exited already).
        c.status.send_if_modified(|s| {
            let change = *s == Status::Created;
            if change {
                *s = Status::Running;
            }
            change
        });
        self.publisher.publish(Event::Start(TaskStart {
            container_id: req.id.clone(),
            pid: c.pid,
            ..Default::default()
        }));
        drop(order);
        Ok(StartResponse {
            pid: c.pid,
            ..Default::default()
        })
    }

    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> Res<StateResponse> {
        Self::no_exec(&req.exec_id)?;
        let c = self.get(&req.id)?;
        let mut resp = StateResponse {
            id: c.id.clone(),
            bundle: c.bundle.display().to_string(),
            pid: c.pid,
            stdin: c.stdin.clone(),
            stdout: c.stdout.clone(),
            stderr: c.stderr.clone(),
            ..Default::default()
        };
        resp.status = EnumOrUnknown::new(match c.status() {
            Status::Created => ApiStatus::CREATED,
            Status::Running => ApiStatus::RUNNING,
            Status::Stopped { code, at } => {
                resp.exit_status = code;
                resp.exited_at = MessageField::some(at);
                ApiStatus::STOPPED
            }
        });
        Ok(resp)
    }

    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> Res<WaitResponse> {
        Self::no_exec(&req.exec_id)?;
        let c = self.get(&req.id)?;
        let (code, at) = c.wait().await;
        Ok(WaitResponse {
            exit_status: code,
            exited_at: MessageField::some(at),
            ..Default::default()
        })
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> Res<Empty> {
        Self::no_exec(&req.exec_id)?;
        let c = self.get(&req.id)?;
        if matches!(c.status(), Status::Stopped { .. }) {
            return Err(err(
                Code::NOT_FOUND,
                format!("process {} already finished", req.id),
            ));
        }
        let core = c.core.lock().unwrap();
        let core = core
            .as_ref()
            .ok_or_else(|| err(Code::NOT_FOUND, "container deleted"))?;
        core.kill(req.signal as i32, req.all).map_err(core_err)?;
        Ok(Empty::new())
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> Res<PidsResponse> {
        let c = self.get(&req.id)?;
        let pids = {
            let core = c.core.lock().unwrap();
            core.as_ref()
                .map(|k| k.pids())
                .transpose()
                .map_err(core_err)?
                .unwrap_or_default()
        };
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid: pid as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    async fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> Res<DeleteResponse> {
        Self::no_exec(&req.exec_id)?;
        let c = self.get(&req.id)?;
        match c.status() {
            Status::Running => {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("container {} is running: kill it before delete", req.id),
                ))
            }
            Status::Created => {
                // Never started: the init waits before exec; end it.
                if let Some(core) = c.core.lock().unwrap().as_ref() {
                    let _ = core.kill(libc::SIGKILL, false);
                }
            }
            Status::Stopped { .. } => {}
        }
        let (code, at) = c.wait().await;
        let c2 = c.clone();
        tokio::task::spawn_blocking(move || -> runtime_core::Result<()> {
            let core = c2.core.lock().unwrap().take();
            let res = core.map(|k| k.delete()).unwrap_or(Ok(()));
            undo_create(&c2.bundle, c2.rootfs_mounted);
            res
        })
        .await
        .map_err(|e| err(Code::INTERNAL, e.to_string()))?
        .map_err(core_err)?;
        self.containers.lock().unwrap().remove(&req.id);
        self.publisher.publish(Event::Delete(TaskDelete {
            container_id: req.id.clone(),
            id: req.id.clone(),
            pid: c.pid,
            exit_status: code,
            exited_at: MessageField::some(at.clone()),
            ..Default::default()
        }));
        Ok(DeleteResponse {
            pid: c.pid,
            exit_status: code,
            exited_at: MessageField::some(at),
            ..Default::default()
        })
    }

    async fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> Res<ConnectResponse> {
        let task_pid = self.get(&req.id).map(|c| c.pid).unwrap_or(0);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> Res<Empty> {
        // One shim may serve a whole pod: it goes only when its last container did.
        if self.containers.lock().unwrap().is_empty() {
            self.shutdown.notify_one();
        }
        Ok(Empty::new())
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> Res<Empty> {
        Self::no_exec(&req.exec_id)?;
        let c = self.get(&req.id)?;
        c.io.lock().unwrap().close_stdin();
        Ok(Empty::new())
    }

    async fn pause(&self, _ctx: &TtrpcContext, _req: PauseRequest) -> Res<Empty> {
        Err(unimplemented("Pause"))
    }

    async fn resume(&self, _ctx: &TtrpcContext, _req: ResumeRequest) -> Res<Empty> {
        Err(unimplemented("Resume"))
    }

    async fn checkpoint(&self, _ctx: &TtrpcContext, _req: CheckpointTaskRequest) -> Res<Empty> {
        Err(unimplemented("Checkpoint"))
    }

    async fn exec(&self, _ctx: &TtrpcContext, _req: ExecProcessRequest) -> Res<Empty> {
        Err(unimplemented("Exec"))
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, _req: ResizePtyRequest) -> Res<Empty> {
        Err(unimplemented("ResizePty"))
    }

    async fn update(&self, _ctx: &TtrpcContext, _req: UpdateTaskRequest) -> Res<Empty> {
        Err(unimplemented("Update"))
    }

    async fn stats(&self, _ctx: &TtrpcContext, _req: StatsRequest) -> Res<StatsResponse> {
        Err(unimplemented("Stats"))
    }
}
