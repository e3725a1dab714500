//! One container as the shim tracks it: the runtime-core handle, its init
//! and exec processes, and the tasks that wait for them to exit.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::events::task::{TaskExit, TaskOOM};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use runtime_core::cgroups::OomWatch;
use runtime_core::container::Pidfd;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;

use crate::events::{self, Event, Publisher};
use crate::io::Io;

#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped { code: u32, at: Timestamp },
}

/// The init or an exec process.
pub struct Process {
    /// Empty for the init.
    pub exec_id: String,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub pid: AtomicU32,
    pub io: Mutex<Option<Io>>,
    pub status: watch::Sender<Status>,
    /// An exec's pidfd (the init's lives in the runtime-core container).
    pub pidfd: Mutex<Option<Pidfd>>,
    /// An exec's OCI process, from the Exec request until Start.
    pub spec: Option<oci_spec::runtime::Process>,
}

impl Process {
    pub fn new(exec_id: &str, stdio: [&str; 3], spec: Option<oci_spec::runtime::Process>) -> Self {
        Process {
            exec_id: exec_id.to_string(),
            stdin: stdio[0].to_string(),
            stdout: stdio[1].to_string(),
            stderr: stdio[2].to_string(),
            pid: AtomicU32::new(0),
            io: Mutex::new(None),
            status: watch::Sender::new(Status::Created),
            pidfd: Mutex::new(None),
            spec,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    pub fn is_stopped(&self) -> bool {
        matches!(self.status(), Status::Stopped { .. })
    }

    /// Resolves when the process has exited and its output is drained.
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

    pub fn close_stdin(&self) {
        if let Some(io) = self.io.lock().unwrap().as_mut() {
            io.close_stdin();
        }
    }
}

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs_mounted: bool,
    /// The container has no pid namespace of its own: see `shares_pid_namespace`.
    pub kill_all_on_exit: bool,
    /// IoUid/IoGid of the runtime options, for the stdio pipes of its execs.
    pub io_ids: (u32, u32),
    /// `None` once deleted. The mutex guards only the slot: callers clone the
    /// `Arc` out ([`Container::core`]) and work on it unlocked, so a slow exec
    /// or start on a blocking thread never stalls a Kill, Stats or exit reap
    /// on the (single) async thread. One lock held across such work is the
    /// deadlock the rust-extensions runc shim had.
    pub core: Mutex<Option<Arc<runtime_core::Container>>>,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// The cgroup's OOM watch (v1 eventfd, v2 memory.events), shared by the
    /// OOM watcher and the exit watchers of the init and execs: see
    /// [`Container::take_ooms`].
    pub oom: Mutex<Option<Arc<AsyncFd<OomWatch>>>>,
    /// OOM kills taken from the watch and not yet published.
    pub oom_pending: AtomicU64,
    /// Taken by Start until its event is out, and by the exit watchers before
    /// they publish: a start event always precedes the exit event it belongs to.
    pub event_order: tokio::sync::Mutex<()>,
}

impl Container {
    /// The runtime-core handle, unless the container was deleted.
    pub fn core(&self) -> Option<Arc<runtime_core::Container>> {
        self.core.lock().unwrap().clone()
    }

    /// The init (empty `exec_id`) or one of the execs.
    pub fn process(&self, exec_id: &str) -> Option<Arc<Process>> {
        if exec_id.is_empty() {
            Some(self.init.clone())
        } else {
            self.execs.lock().unwrap().get(exec_id).cloned()
        }
    }

    /// Moves the kills the cgroup counted since the last call into
    /// `oom_pending`, without waiting for any lock (Start may hold
    /// `event_order` for a while): the OOM watcher calls it when the count
    /// changed, an exit watcher first thing when its process is dead (the kill
    /// that caused the exit is counted by then; if systemd has removed the
    /// emptied scope already, [`Self::take_ooms_from_parent`] stands in).
    /// Publishing is [`Self::publish_ooms`], under `event_order`, by whoever
    /// comes first: a kill is published before the exit it caused, whichever
    /// watcher took it. `Err` if the count could not be read (the cgroup is gone).
    pub fn take_ooms(&self) -> runtime_core::Result<()> {
        let Some(w) = self.oom.lock().unwrap().clone() else {
            return Ok(());
        };
        let n = w.get_ref().take()?;
        self.oom_pending.fetch_add(n, Ordering::SeqCst);
        Ok(())
    }

    /// For an exit after the cgroup is gone: see `OomWatch::take_from_parent`.
    fn take_ooms_from_parent(&self, died_of_sigkill: bool) -> runtime_core::Result<u64> {
        let Some(w) = self.oom.lock().unwrap().clone() else {
            return Ok(0);
        };
        let n = w.get_ref().take_from_parent(died_of_sigkill)?;
        self.oom_pending.fetch_add(n, Ordering::SeqCst);
        Ok(n)
    }

    /// One /tasks/oom per pending kill (v2 counts kills; v1 OOM situations).
    /// Called with `event_order` held.
    fn publish_ooms(&self, publisher: &Publisher) {
        for _ in 0..self.oom_pending.swap(0, Ordering::SeqCst) {
            publisher.publish(Event::Oom(TaskOOM {
                container_id: self.id.clone(),
                ..Default::default()
            }));
        }
    }

    /// Reaps `p` if it has exited.
    fn try_reap(&self, p: &Process) -> Option<u32> {
        let r = if p.exec_id.is_empty() {
            self.core().map(|k| k.init().try_reap())
        } else {
            p.pidfd.lock().unwrap().as_ref().map(|fd| fd.try_reap())
        };
        match r {
            Some(Ok(Some(status))) => Some(status.0),
            Some(Ok(None)) => None,
            Some(Err(e)) => {
                log::error!("reap {} {}: {e}", self.id, p.exec_id);
                Some(255)
            }
            None => Some(255),
        }
    }
}

/// Waits on a process's pidfd, reaps it, drains its output, then records the
/// exit and publishes /tasks/exit. The init's exit waits for its execs' first.
pub fn watch_exit(
    c: Arc<Container>,
    p: Arc<Process>,
    pidfd: OwnedFd,
    publisher: Publisher,
) -> std::io::Result<()> {
    // SAFETY: `pidfd` is moved into the AsyncFd, so it stays open and refers
    // to the same process for the AsyncFd's whole life.
    let afd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    tokio::spawn(async move {
        let code = loop {
            let Ok(mut guard) = afd.readable().await else {
                break 255;
            };
            match c.try_reap(&p) {
                Some(code) => break code,
                None => guard.clear_ready(),
            }
        };
        // Before anything else (see take_ooms): the count is final now.
        if let Err(e) = c.take_ooms() {
            // The cgroup is gone (systemd removes an emptied scope at once).
            match c.take_ooms_from_parent(code == 137) {
                Ok(n) => log::debug!(
                    "container {} process {:?} exited with {code}, its cgroup gone ({e}): \
                     {n} OOM kill(s) found in the parent's count",
                    c.id,
                    p.exec_id
                ),
                Err(e2) if code == 137 => log::warn!(
                    "container {} process {:?} died of SIGKILL and no OOM count could be \
                     read (an OOM kill may go unreported): {e}; {e2}",
                    c.id,
                    p.exec_id
                ),
                Err(e2) => log::debug!("container {}: OOM counts at exit: {e}; {e2}", c.id),
            }
        }
        crate::reaper::untrack(p.pid() as i32);
        if p.exec_id.is_empty() && c.kill_all_on_exit {
            // No pid namespace ends with this init: end what it leaves behind
            // (they would also hold its output open, so it never drained).
            if let Some(core) = c.core() {
                if let Err(e) = core.kill(libc::SIGKILL, true) {
                    log::warn!(
                        "container {}: kill its processes after the init's exit: {e}",
                        c.id
                    );
                }
            }
        }
        // Output written before the exit must reach the client before the exit does.
        let outputs =
            p.io.lock()
                .unwrap()
                .as_mut()
                .map(|io| io.take_outputs())
                .unwrap_or_default();
        for h in outputs {
            let _ = h.await;
        }
        if let Some(io) = p.io.lock().unwrap().as_mut() {
            io.stop();
        }
        if p.exec_id.is_empty() {
            // The execs die with the init's pid namespace; report them first.
            // One deadline for all of them, not one each: many execs must not
            // hold the init's exit back for long.
            let execs: Vec<_> = c.execs.lock().unwrap().values().cloned().collect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            for e in execs.iter().filter(|e| e.status() == Status::Running) {
                let _ = tokio::time::timeout_at(deadline, e.wait()).await;
            }
        }
        let _order = c.event_order.lock().await;
        // An OOM kill of this process (init or exec) is reported before its
        // exit, whichever watcher took it. Kills counted since the first take
        // (of other processes) come along; the cgroup may be gone by now.
        let _ = c.take_ooms();
        c.publish_ooms(&publisher);
        let at = events::now();
        log::debug!(
            "container {} process {:?} exited with {code}",
            c.id,
            p.exec_id
        );
        p.status.send_replace(Status::Stopped {
            code,
            at: at.clone(),
        });
        publisher.publish(Event::Exit(TaskExit {
            container_id: c.id.clone(),
            id: if p.exec_id.is_empty() {
                c.id.clone()
            } else {
                p.exec_id.clone()
            },
            pid: p.pid(),
            exit_status: code,
            exited_at: MessageField::some(at),
            ..Default::default()
        }));
    });
    Ok(())
}

/// Publishes /tasks/oom whenever the kernel's OOM killer acts in the container,
/// until the init has exited (its exit watcher takes the last count; nothing
/// is left to kill then, and removing a cgroup wakes no waiter).
pub fn watch_oom(c: Arc<Container>, w: OomWatch, publisher: Publisher) -> std::io::Result<()> {
    // SAFETY: the watch owns its fd and is moved into the AsyncFd, so the fd
    // stays open and the same for the AsyncFd's whole life.
    let afd = Arc::new(
        unsafe { AsyncFd::register_with_interest(w, Interest::READABLE) }
            .map_err(std::io::Error::from)?,
    );
    *c.oom.lock().unwrap() = Some(afd.clone());
    tokio::spawn(async move {
        loop {
            let mut guard = tokio::select! {
                biased;
                _ = c.init.wait() => break,
                r = afd.readable() => match r {
                    Ok(g) => g,
                    Err(_) => break,
                },
            };
            // v1: removing the cgroup at delete also fires the eventfd: not an OOM.
            if c.core.lock().unwrap().is_none() {
                break;
            }
            if let Err(e) = c.take_ooms() {
                log::debug!("container {}: OOM count: {e}", c.id);
            }
            guard.clear_ready();
            drop(guard);
            if c.oom_pending.load(Ordering::SeqCst) > 0 {
                let _order = c.event_order.lock().await;
                c.publish_ooms(&publisher);
            }
        }
    });
    Ok(())
}

/// A dup of a pidfd for the exit watcher's epoll registration.
pub fn dup_pidfd(p: &Pidfd) -> std::io::Result<OwnedFd> {
    p.as_fd().try_clone_to_owned()
}
