//! `binary://` logging binaries: started per container process, fed its
//! output, terminated (then killed) when the process's IO goes away.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use runtime_core::container::Pidfd;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::uri::{unescape, Uri};
use super::Owner;

/// How long a logger has to exit after SIGTERM before SIGKILL (containerd's
/// `binaryIOProcTermTimeout`).
const LOGGER_TERM_TIMEOUT: Duration = Duration::from_secs(12);

/// The logging binary's command line, as containerd's `NewBinaryCmd` builds it.
pub(super) struct LoggerCmd {
    pub(super) path: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl LoggerCmd {
    pub(super) fn new(uri: &Uri) -> Self {
        let mut args = Vec::new();
        let mut env = Vec::new();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        // url.Values.Get semantics: the first value of each key; pairs that do
        // not decode are skipped, as Go's ParseQuery does.
        for pair in uri.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(k), Some(v)) = (unescape(k, true), unescape(v, true)) else {
                continue;
            };
            if seen.contains(&k) {
                continue;
            }
            seen.push(k.clone());
            match k.strip_prefix(b"env.") {
                Some(name) => {
                    if name != b"CONTAINER_ID" && name != b"CONTAINER_NAMESPACE" {
                        env.push((OsString::from_vec(name.to_vec()), OsString::from_vec(v)));
                    }
                }
                None => {
                    args.push(OsString::from_vec(k));
                    args.push(OsString::from_vec(v));
                }
            }
        }
        LoggerCmd {
            path: PathBuf::from(OsString::from_vec(uri.path.clone())),
            args,
            env,
        }
    }
}

/// A running logging binary. Dropping it lets the logger finish on its own
/// for a while (SIGTERM, SIGKILL after [`LOGGER_TERM_TIMEOUT`]); it is reaped
/// through its pidfd whenever it exits.
pub(super) struct Logger {
    _terminate: oneshot::Sender<()>,
}

/// Moves `fd` to a number above 5 so dup2 onto 3..=5 never clobbers another source.
fn above_five(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 5 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC takes only integers, on the fd that `fd` owns.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 6) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fcntl just returned this new fd, owned by nobody else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) })
}

/// Starts the logging binary and waits until it is ready. Returns the write
/// ends of its stdout (fd 3) and stderr (fd 4) pipes.
pub(super) async fn start_logger(
    cmd: &LoggerCmd,
    owner: Owner<'_>,
) -> std::io::Result<(pipe::Sender, pipe::Sender, Logger)> {
    let what = cmd.path.display().to_string();
    let ctx =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("logging binary {what}: {e}"));
    let (out_tx, out_rx) = pipe::pipe()?;
    let (err_tx, err_rx) = pipe::pipe()?;
    let (ready_tx, mut ready_rx) = pipe::pipe()?;
    // The logger's ends are blocking, as a program expects of its fds.
    let fds = [
        above_five(out_rx.into_blocking_fd()?)?,
        above_five(err_rx.into_blocking_fd()?)?,
        above_five(ready_tx.into_blocking_fd()?)?,
    ];
    let raw: [RawFd; 3] = [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()];
    let mut c = std::process::Command::new(&cmd.path);
    c.args(&cmd.args)
        .env_clear()
        .env("CONTAINER_ID", owner.id)
        .env("CONTAINER_NAMESPACE", owner.namespace)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only dup2 between fork and exec, which is async-signal-safe; the
    // sources are above 5 and distinct, and dup2's copies are not close-on-exec.
    unsafe {
        c.pre_exec(move || {
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    // Tracked before the gate opens, so the orphan reaper leaves it to its supervisor.
    let child = {
        let _gate = crate::reaper::spawning();
        let child = c.spawn().map_err(ctx)?;
        crate::reaper::track(child.id() as i32);
        child
    };
    // Ours are closed: the logger holds the only ready write end, and the only
    // read ends, so a dead logger shows as EPIPE to the copy tasks.
    drop(fds);
    let pid = child.id() as i32;
    // The child stays a zombie until reaped, so its pid cannot be reused here.
    let pidfd = Pidfd::open(pid).map_err(|e| ctx(std::io::Error::other(e.to_string())))?;
    // Dropping a std Child neither waits nor kills; the pidfd reaps it.
    drop(child);
    // SAFETY: the Pidfd owns its fd and is moved into the AsyncFd, so the fd
    // stays open and refers to the logger for the AsyncFd's whole life.
    let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    let (term_tx, term_rx) = oneshot::channel();
    let h = tokio::spawn(supervise_logger(pidfd, term_rx, what.clone()));
    {
        let mut all = LOGGERS.lock().unwrap();
        all.retain(|h| !h.is_finished());
        all.push(h);
    }
    let logger = Logger {
        _terminate: term_tx,
    };
    // Ready: a byte, or EOF once it closes fd 5 (or exits).
    let mut b = [0u8; 1];
    ready_rx.read(&mut b).await.map_err(ctx)?;
    log::debug!(
        "logging binary {what} (pid {pid}) for {} is ready",
        owner.id
    );
    Ok((out_tx, err_tx, logger))
}

/// Supervisors of the loggers started so far (finished ones pruned on the way).
static LOGGERS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Before the shim exits: gives loggers still running (their processes are
/// gone, so they are being terminated) the time to finish. Whatever is left
/// after that is killed as its supervisor is dropped.
pub async fn finish_loggers() {
    let all = std::mem::take(&mut *LOGGERS.lock().unwrap());
    let _ = tokio::time::timeout(LOGGER_TERM_TIMEOUT + Duration::from_secs(1), async {
        for h in all {
            let _ = h.await;
        }
    })
    .await;
}

/// SIGKILLs the logger if its supervisor goes away before reaping it (the
/// shim is exiting), so no logger outlives the shim.
struct KillOnDrop<'a>(&'a Pidfd, bool);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if !self.1 {
            let _ = self.0.signal(libc::SIGKILL);
        }
    }
}

/// Reaps the logger when it exits; once told to (or its Logger is dropped),
/// SIGTERM, then SIGKILL if it is still there after the grace period.
async fn supervise_logger(pidfd: AsyncFd<Pidfd>, terminate: oneshot::Receiver<()>, what: String) {
    let mut guard = KillOnDrop(pidfd.get_ref(), false);
    let exited = async {
        loop {
            let Ok(mut guard) = pidfd.readable().await else {
                return None;
            };
            match pidfd.get_ref().try_reap() {
                Ok(Some(st)) => {
                    crate::reaper::untrack(pidfd.get_ref().pid());
                    return Some(st.0);
                }
                Ok(None) => guard.clear_ready(),
                Err(e) => {
                    log::warn!("logging binary {what}: {e}");
                    return None;
                }
            }
        }
    };
    tokio::pin!(exited);
    let status = tokio::select! {
        st = &mut exited => st,
        _ = terminate => {
            let _ = pidfd.get_ref().signal(libc::SIGTERM);
            match tokio::time::timeout(LOGGER_TERM_TIMEOUT, &mut exited).await {
                Ok(st) => st,
                Err(_) => {
                    log::warn!("logging binary {what} ignored SIGTERM; killing it");
                    let _ = pidfd.get_ref().signal(libc::SIGKILL);
                    exited.await
                }
            }
        }
    };
    guard.1 = true;
    log::debug!("logging binary {what} exited: {status:?}");
}
