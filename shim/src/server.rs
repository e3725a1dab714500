//! The serving daemon: ttrpc Task service on the socket `start` handed us (fd 3).

use std::sync::Arc;

use containerd_shim_protos::shim_async::create_task;
use tokio::sync::Notify;

use crate::args::Flags;
use crate::events::Publisher;
use crate::service::Service;
use crate::{address, logger, reaper};

/// The listening socket `start` passes to the daemon.
pub const LISTENER_FD: i32 = 3;

const V2: &str = "containerd.task.v2.Task";
const V3: &str = "containerd.task.v3.Task";

pub fn run(flags: Flags) -> Result<(), Box<dyn std::error::Error>> {
    logger::init(&flags.id, flags.debug);
    crate::panic::test_point("serve");
    // Orphans of our containers become ours, not the machine's (see reaper).
    if let Err(e) = reaper::become_subreaper() {
        log::warn!("prctl(PR_SET_CHILD_SUBREAPER): {e}: orphans will escape to pid 1");
    }
    // One thread serves everything: requests are short, and blocking runtime
    // work goes to spawn_blocking. It keeps the shim's memory small.
    // Blocking threads (container create/start/delete) go away soon after use,
    // so an idle shim is one thread. One malloc arena: a shim allocates little,
    // and per-thread arenas would cost resident memory for nothing.
    // SAFETY: mallopt takes only integers; glibc applies the tunable under its own malloc lock.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_millis(500))
        .build()?;
    rt.block_on(serve(&flags))?;
    let group_socket = std::env::var("RSHIM_SOCKET").unwrap_or_default();
    if !group_socket.is_empty() {
        let _ = std::fs::remove_file(address::socket_path(&group_socket));
    }
    Ok(())
}

async fn serve(flags: &Flags) -> Result<(), Box<dyn std::error::Error>> {
    let ttrpc_address =
        std::env::var("TTRPC_ADDRESS").unwrap_or_else(|_| format!("{}.ttrpc", flags.address));
    let publisher = Publisher::spawn(ttrpc_address, flags.namespace.clone());
    reaper::spawn()?;
    let shutdown = Arc::new(Notify::new());
    let service = Arc::new(Service::new(
        publisher,
        shutdown.clone(),
        flags.namespace.clone(),
    ));
    // The same handlers under both names: containerd 1.x calls v2, 2.x calls v3.
    let v3 = create_task(service.clone());
    let mut v2 = create_task(service);
    let handlers = v2.remove(V3).expect("generated service");
    v2.insert(V2.to_string(), handlers);
    // SAFETY: the serving mode (no action) is started only by `start` (spawn_daemon), whose
    // pre_exec put the listening socket at LISTENER_FD without close-on-exec; nothing else in this
    // process owns that fd, so the ttrpc server may take it over.
    let mut server = unsafe { ttrpc::r#async::Server::new().add_unix_listener(LISTENER_FD)? }
        .register_service(v3)
        .register_service(v2);
    server.start().await?;
    log::debug!("serving {V2} and {V3}");
    shutdown.notified().await;
    // Let the Shutdown reply go out before the process ends.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let _ = server.shutdown().await;
    crate::io::finish_loggers().await;
    Ok(())
}
