//! Benchmark helper (not a test): the Task API floor. A containerd shim v2 that answers
//! every call at once and runs nothing (it opens and closes the stdio FIFOs it is given): `Create` and `Start` reply with the shim's own pid,
//! `Wait` replies exit status 0 as soon as `Start` has been answered, `Delete` replies at
//! once, `Shutdown` ends the process. What `ctr run --rm` or the Task API bench costs with
//! it is what containerd, ctr and the ttrpc round trips cost with no shim work at all:
//! `scripts/bench` installs it as `containerd-shim-floor-v1` and prints our figures
//! against it.
//!
//!   floor_shim [-namespace NS] [-id ID] [-address A] ... start|delete

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim_protos::api::{
    ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, Empty, KillRequest, ShutdownRequest, StartRequest, StartResponse, StateRequest,
    StateResponse, WaitRequest, WaitResponse,
};
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::{create_task, Task};
use containerd_shim_protos::ttrpc::r#async::TtrpcContext;
use tokio::sync::watch;

const V2: &str = "containerd.task.v2.Task";
const V3: &str = "containerd.task.v3.Task";

struct Floor {
    started: watch::Sender<bool>,
    /// The listening socket, removed at Shutdown.
    path: String,
}

type R<T> = containerd_shim_protos::ttrpc::Result<T>;

#[async_trait]
impl Task for Floor {
    async fn create(&self, _: &TtrpcContext, r: CreateTaskRequest) -> R<CreateTaskResponse> {
        // ctr copies the container's stdout/stderr FIFOs until their writer goes: open each
        // once and close it (the least any shim does), off the runtime (a FIFO open blocks
        // until its reader is there).
        for path in [r.stdout, r.stderr] {
            if !path.is_empty() {
                std::thread::spawn(move || {
                    drop(std::fs::OpenOptions::new().write(true).open(path))
                });
            }
        }
        Ok(CreateTaskResponse {
            pid: std::process::id(),
            ..Default::default()
        })
    }
    async fn start(&self, _: &TtrpcContext, _: StartRequest) -> R<StartResponse> {
        self.started.send_replace(true);
        Ok(StartResponse {
            pid: std::process::id(),
            ..Default::default()
        })
    }
    async fn wait(&self, _: &TtrpcContext, _: WaitRequest) -> R<WaitResponse> {
        let mut rx = self.started.subscribe();
        let _ = rx.wait_for(|s| *s).await;
        Ok(WaitResponse::default())
    }
    async fn state(&self, _: &TtrpcContext, r: StateRequest) -> R<StateResponse> {
        Ok(StateResponse {
            id: r.id,
            pid: std::process::id(),
            ..Default::default()
        })
    }
    async fn kill(&self, _: &TtrpcContext, _: KillRequest) -> R<Empty> {
        Ok(Empty::default())
    }
    async fn delete(&self, _: &TtrpcContext, _: DeleteRequest) -> R<DeleteResponse> {
        Ok(DeleteResponse {
            pid: std::process::id(),
            ..Default::default()
        })
    }
    async fn connect(&self, _: &TtrpcContext, _: ConnectRequest) -> R<ConnectResponse> {
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: std::process::id(),
            ..Default::default()
        })
    }
    async fn shutdown(&self, _: &TtrpcContext, _: ShutdownRequest) -> R<Empty> {
        let _ = std::fs::remove_file(&self.path);
        tokio::spawn(async {
            // Let the reply go out first.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            std::process::exit(0);
        });
        Ok(Empty::default())
    }
}

fn flag(args: &[String], name: &str) -> String {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].clone())
        .unwrap_or_default()
}

/// A socket path per (namespace, id), short enough for sun_path.
fn socket_path(ns: &str, id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ns.bytes().chain([0]).chain(id.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("/tmp/rshim-floor-{h:016x}.sock")
}

/// `start`: spawn the serving daemon in its own session, wait until it listens, print the
/// address for containerd.
fn start(args: &[String]) -> Result<(), String> {
    let path = socket_path(&flag(args, "-namespace"), &flag(args, "-id"));
    let _ = std::fs::remove_file(&path);
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .arg("serve")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("spawn the floor daemon: {e}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .map_err(|e| format!("read the floor daemon's readiness: {e}"))?;
    if line.trim() != "ready" {
        return Err(format!("the floor daemon did not start ({line:?})"));
    }
    print!("unix://{path}");
    std::io::stdout().flush().map_err(|e| e.to_string())
}

fn serve(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (started, _) = watch::channel(false);
        let task = Arc::new(Floor {
            started,
            path: path.to_string(),
        });
        let v3 = create_task(task.clone());
        let mut v2 = create_task(task);
        let handlers = v2.remove(V3).expect("generated service");
        v2.insert(V2.to_string(), handlers);
        let mut server = containerd_shim_protos::ttrpc::r#async::Server::new()
            .bind(&format!("unix://{path}"))?
            .register_service(v3)
            .register_service(v2);
        server.start().await?;
        println!("ready");
        std::io::stdout().flush()?;
        std::future::pending::<()>().await;
        Ok(())
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.last().map(String::as_str) {
        Some("start") => start(&args),
        Some("delete") => {
            // containerd reads a DeleteResponse from stdout after a failed shutdown.
            let bytes = DeleteResponse::default()
                .write_to_bytes()
                .unwrap_or_default();
            let _ = std::io::stdout().write_all(&bytes);
            Ok(())
        }
        _ if args.first().map(String::as_str) == Some("serve") && args.len() == 2 => {
            serve(&args[1]).map_err(|e| format!("serve {}: {e}", args[1]))
        }
        _ => Err("usage: floor_shim [flags] start|delete (a benchmark helper)".into()),
    };
    if let Err(e) = result {
        eprintln!("floor_shim: {e}");
        std::process::exit(1);
    }
}
