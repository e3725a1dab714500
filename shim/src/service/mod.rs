//! The Task service, served as both `containerd.task.v2.Task` (containerd 1.x)
//! and `containerd.task.v3.Task` (2.x): the messages are identical.

mod exec;
mod lifecycle;
mod queries;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use containerd_shim_protos::api::{
    ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, KillRequest, PidsRequest, PidsResponse, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, WaitRequest, WaitResponse,
};
use containerd_shim_protos::events::task::{TaskCreate, TaskExecAdded, TaskIO};
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::{EnumOrUnknown, MessageField};
use containerd_shim_protos::shim::shim::{
    CheckpointTaskRequest, CloseIORequest, ExecProcessRequest, PauseRequest, ResizePtyRequest,
    ResumeRequest, StatsRequest, StatsResponse, UpdateTaskRequest,
};
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::types::task::{ProcessInfo, Status as ApiStatus};
use tokio::sync::Notify;
use ttrpc::r#async::TtrpcContext;
use ttrpc::{Code, Error as TtrpcError};

use crate::container::{self, Container, Process, Status};
use crate::events::{Event, Publisher};
use crate::{io, reaper};

use lifecycle::{create_blocking, join_err, undo_create, Created};

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

pub struct Service {
    containers: Mutex<HashMap<String, Arc<Container>>>,
    publisher: Publisher,
    shutdown: Arc<Notify>,
    /// The containerd namespace this shim serves (for logging binaries).
    namespace: String,
}

impl Service {
    pub fn new(publisher: Publisher, shutdown: Arc<Notify>, namespace: String) -> Self {
        Service {
            containers: Mutex::new(HashMap::new()),
            publisher,
            shutdown,
            namespace,
        }
    }

    /// A process's identity for its logging binary: the container id for the
    /// init, the exec id for an exec (as the runc shim passes them).
    fn owner<'a>(&'a self, id: &'a str) -> io::Owner<'a> {
        io::Owner {
            id,
            namespace: &self.namespace,
            io_ids: (0, 0),
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

    /// The container and its init or exec process `exec_id`.
    fn process(&self, id: &str, exec_id: &str) -> Res<(Arc<Container>, Arc<Process>)> {
        let c = self.get(id)?;
        let p = c.process(exec_id).ok_or_else(|| {
            err(
                Code::NOT_FOUND,
                format!("exec {exec_id} not found in container {id}"),
            )
        })?;
        Ok((c, p))
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
        // containerd's runtime options (see crate::options): refused ones end
        // the create here, before anything is made.
        let opts = match req.options.as_ref() {
            Some(any) => crate::options::Options::from_any(any),
            None => Ok(Default::default()),
        }
        .map_err(|e| err(Code::INVALID_ARGUMENT, format!("create {}: {e}", req.id)))?;
        let mut refused = opts.refusals();
        let restore = crate::checkpoint::restore_from(Path::new(&req.bundle), &req, &opts)
            .unwrap_or_else(|e| {
                refused.push(e);
                None
            });
        if !refused.is_empty() {
            return Err(err(
                Code::INVALID_ARGUMENT,
                format!("create {}: {}", req.id, refused.join("; ")),
            ));
        }
        if restore.is_some() {
            let id = req.id.clone();
            let unusable = tokio::task::spawn_blocking(move || {
                (!crate::checkpoint::criu_works())
                    .then(|| crate::checkpoint::unavailable("Restore", &id))
            })
            .await
            .map_err(join_err)?;
            if let Some(msg) = unusable {
                return Err(err(Code::UNIMPLEMENTED, msg));
            }
        }
        let io_ids = (opts.io_uid, opts.io_gid);
        // With a terminal, the pty (made in the container) replaces the pipes.
        let (stdio, io) = if req.terminal {
            (runtime_core::Stdio::default(), None)
        } else {
            let owner = io::Owner {
                io_ids,
                ..self.owner(&req.id)
            };
            let (stdio, io) = io::open(owner, &req.stdin, &req.stdout, &req.stderr)
                .await
                .map_err(|e| err(Code::INTERNAL, format!("open container stdio: {e}")))?;
            (stdio, Some(io))
        };
        let req = Arc::new(req);
        let r = req.clone();
        let Created {
            mut core,
            rootfs_mounted: mounted,
            kill_all_on_exit,
        } = tokio::task::spawn_blocking(move || {
            create_blocking(&r, &opts, stdio, restore.as_ref())
        })
        .await
        .map_err(join_err)?
        .map_err(core_err)?;
        let io = match core.take_console() {
            Some(master) => {
                match io::terminal(master, self.owner(&req.id), &req.stdin, &req.stdout).await {
                    Ok(io) => Some(io),
                    Err(e) => {
                        let _ = core.kill(libc::SIGKILL, false);
                        let _ = core.init().reap_blocking();
                        reaper::untrack(core.pid());
                        let _ = core.delete();
                        undo_create(Path::new(&req.bundle), mounted);
                        return Err(err(Code::INTERNAL, format!("terminal IO: {e}")));
                    }
                }
            }
            None => io,
        };
        let pid = core.pid() as u32;
        let watch_fd = container::dup_pidfd(core.init())
            .map_err(|e| err(Code::INTERNAL, format!("dup pidfd: {e}")))?;
        let init = Arc::new(Process::new(
            "",
            [&req.stdin, &req.stdout, &req.stderr],
            None,
        ));
        init.pid.store(pid, std::sync::atomic::Ordering::Relaxed);
        *init.io.lock().unwrap() = io;
        let c = Arc::new(Container {
            id: req.id.clone(),
            bundle: PathBuf::from(&req.bundle),
            rootfs_mounted: mounted,
            kill_all_on_exit,
            io_ids,
            core: Mutex::new(Some(Arc::new(core))),
            init: init.clone(),
            execs: Mutex::new(HashMap::new()),
            oom: Mutex::new(None),
            oom_pending: Default::default(),
            event_order: tokio::sync::Mutex::new(()),
        });
        let oom_watch = c.core().map(|k| k.oom_watch());
        match oom_watch {
            Some(Ok(Some(w))) => container::watch_oom(c.clone(), w, self.publisher.clone())
                .map_err(|e| err(Code::INTERNAL, format!("watch OOM kills: {e}")))?,
            Some(Err(e)) => log::warn!("container {}: no OOM notifications: {e}", req.id),
            _ => {}
        }
        container::watch_exit(c.clone(), init, watch_fd, self.publisher.clone())
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
        let (c, p) = self.process(&req.id, &req.exec_id)?;
        if req.exec_id.is_empty() {
            self.start_init(c).await
        } else {
            self.start_exec(c, p).await
        }
    }

    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> Res<StateResponse> {
        self.state_req(req).await
    }

    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> Res<WaitResponse> {
        self.wait_req(req).await
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> Res<Empty> {
        self.kill_req(req).await
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> Res<PidsResponse> {
        self.pids_req(req).await
    }

    async fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> Res<DeleteResponse> {
        let (c, p) = self.process(&req.id, &req.exec_id)?;
        if req.exec_id.is_empty() {
            return self.delete_init(c).await;
        }
        match p.status() {
            Status::Stopped { code, at } => {
                c.execs.lock().unwrap().remove(&req.exec_id);
                Ok(DeleteResponse {
                    pid: p.pid(),
                    exit_status: code,
                    exited_at: MessageField::some(at),
                    ..Default::default()
                })
            }
            Status::Created => {
                c.execs.lock().unwrap().remove(&req.exec_id);
                Ok(DeleteResponse {
                    exited_at: MessageField::some(crate::events::now()),
                    ..Default::default()
                })
            }
            _ => Err(err(
                Code::FAILED_PRECONDITION,
                format!("exec {} is running: kill it before delete", req.exec_id),
            )),
        }
    }

    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> Res<Empty> {
        self.exec_req(req).await
    }

    async fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> Res<ConnectResponse> {
        self.connect_req(req).await
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> Res<Empty> {
        // One shim may serve a whole pod: it goes only when its last container did.
        if self.containers.lock().unwrap().is_empty() {
            self.shutdown.notify_one();
        }
        Ok(Empty::new())
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> Res<Empty> {
        self.close_io_req(req).await
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> Res<Empty> {
        self.freeze(&req.id, true).await
    }

    async fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> Res<Empty> {
        self.freeze(&req.id, false).await
    }

    async fn checkpoint(&self, _ctx: &TtrpcContext, req: CheckpointTaskRequest) -> Res<Empty> {
        let c = self.get(&req.id)?;
        tokio::task::spawn_blocking(move || {
            crate::checkpoint::checkpoint(&c, &req.path, req.options.as_ref())
        })
        .await
        .map_err(join_err)?
        .map_err(|(code, msg)| err(code, msg))?;
        Ok(Empty::new())
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> Res<Empty> {
        self.resize_pty_req(req).await
    }

    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> Res<Empty> {
        let c = self.get(&req.id)?;
        // containerd sends the OCI LinuxResources as JSON inside the Any.
        let res: oci_spec::runtime::LinuxResources = serde_json::from_slice(&req.resources.value)
            .map_err(|e| {
            err(
                Code::INVALID_ARGUMENT,
                format!("update {}: invalid LinuxResources: {e}", req.id),
            )
        })?;
        tokio::task::spawn_blocking(move || match c.core() {
            Some(core) => core.update(&res),
            None => Err(runtime_core::Error::Protocol(
                "container was deleted".into(),
            )),
        })
        .await
        .map_err(join_err)?
        .map_err(core_err)?;
        Ok(Empty::new())
    }

    async fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> Res<StatsResponse> {
        self.stats_req(req).await
    }
}
