//! One container as the shim tracks it: the runtime-core handle, its IO, its
//! status, and the task that waits for its init to exit.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use containerd_shim_protos::events::task::TaskExit;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;

use crate::events::{self, Event, Publisher};
use crate::io::Io;

#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Created,
    Running,
    Stopped { code: u32, at: Timestamp },
}

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub pid: u32,
    pub rootfs_mounted: bool,
    /// `None` once deleted. A std mutex: held only around short syscalls or
    /// inside `spawn_blocking`, never across an `.await`.
    pub core: Mutex<Option<runtime_core::Container>>,
    pub io: Mutex<Io>,
    pub status: watch::Sender<Status>,
    /// Taken by Start until its event is out, and by the exit watcher before it
    /// publishes: /tasks/start always precedes /tasks/exit.
    pub event_order: tokio::sync::Mutex<()>,
}

impl Container {
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Resolves when the init has exited and its output is drained.
    pub async fn wait(&self) -> (u32, Timestamp) {
        let mut rx = self.status.subscribe();
        loop {
            if let Status::Stopped { code, at } = &*rx.borrow_and_update() {
                return (*code, at.clone());
            }
            if rx.changed().await.is_err() {
                return (255, events::now());
            }
        }
    }
}

/// Waits on the init's pidfd, reaps it, drains its output, then records the
/// exit and publishes /tasks/exit.
pub fn watch_exit(c: Arc<Container>, publisher: Publisher) -> std::io::Result<()> {
    let fd = {
        let core = c.core.lock().unwrap();
        core.as_ref()
            .expect("just created")
            .init()
            .as_fd()
            .try_clone_to_owned()?
    };
    // Safety: `fd` is an OwnedFd moved into the AsyncFd, so it stays open and
    // refers to the same pidfd for the AsyncFd's whole life.
    let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    tokio::spawn(async move {
        let code = loop {
            let Ok(mut guard) = afd.readable().await else {
                break 255;
            };
            let reaped = c.core.lock().unwrap().as_ref().map(|k| k.init().try_reap());
            match reaped {
                Some(Ok(Some(status))) => break status.0,
                Some(Ok(None)) => guard.clear_ready(),
                Some(Err(e)) => {
                    log::error!("reap {}: {e}", c.id);
                    break 255;
                }
                None => break 255,
            }
        };
        // Output written before the exit must reach the client before the exit does.
        let outputs = c.io.lock().unwrap().take_outputs();
        for h in outputs {
            let _ = h.await;
        }
        c.io.lock().unwrap().stop();
        let _order = c.event_order.lock().await;
        let at = events::now();
        log::debug!("container {} exited with {code}", c.id);
        c.status.send_replace(Status::Stopped {
            code,
            at: at.clone(),
        });
        publisher.publish(Event::Exit(TaskExit {
            container_id: c.id.clone(),
            id: c.id.clone(),
            pid: c.pid,
            exit_status: code,
            exited_at: MessageField::some(at),
            ..Default::default()
        }));
    });
    Ok(())
}
