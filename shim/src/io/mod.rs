//! Container stdio through the URIs containerd passes.
//!
//! The container gets anonymous pipes, never the FIFOs (or files, or logger
//! pipes) themselves: the shim copies between them, so a client that goes away
//! (or containerd restarting, or a logger that dies) never blocks or kills the
//! container, and CloseIO can close stdin even though the FIFO's writer (ctr)
//! keeps it open.
//!
//! Output URIs, as containerd's runc shim reads them (`pkg/process/io.go`):
//! - a plain path or `fifo:///path`: a FIFO each for stdout and stderr;
//! - `binary:///path/to/logger?k=v&k2=v2`: one logger process per container
//!   process, started with args `k v k2 v2` (query keys verbatim, first value
//!   of each; `env.NAME=v` queries become env NAME=v instead), env
//!   `CONTAINER_ID` (the container's id; the exec's id for an exec, as the runc
//!   shim does) and `CONTAINER_NAMESPACE`, stdout on fd 3, stderr on fd 4 and a
//!   pipe on fd 5 that it closes (or writes a byte to) once it is ready;
//! - `file:///abs/path`: stdout and stderr appended to that file (made 0600,
//!   with its directories, if missing).
//!
//! The stdout URI decides; stderr then names the same URI (or nothing).

mod logger;
mod pty;
mod uri;

pub use logger::finish_loggers;
pub use pty::terminal;

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use logger::{start_logger, Logger};
use uri::{fifo_path, target, Target};

/// Copy tasks of one process.
pub struct Io {
    stdin_close: Option<oneshot::Sender<()>>,
    stdin_task: Option<JoinHandle<()>>,
    outputs: Vec<JoinHandle<()>>,
    /// The terminal's master, for ResizePty.
    console: Option<Arc<AsyncFd<OwnedFd>>>,
    /// The logging binary of a `binary://` URI; terminated when the Io goes.
    logger: Option<Logger>,
}

/// Who the process is, for a logging binary's environment.
#[derive(Clone, Copy)]
pub struct Owner<'a> {
    /// The container's id, or the exec's id for an exec (as the runc shim does).
    pub id: &'a str,
    pub namespace: &'a str,
    /// IoUid/IoGid of the runtime options: owner of the pipes the process
    /// gets (as the runc shim chowns them), so a process running as that
    /// user can reopen its stdio through /proc/self/fd.
    pub io_ids: (u32, u32),
}

/// Gives a pipe (both ends share the inode) to the runtime options' IoUid/IoGid.
fn chown_pipe(fd: &OwnedFd, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    if (uid, gid) == (0, 0) {
        return Ok(());
    }
    std::os::unix::fs::fchown(fd, Some(uid), Some(gid)).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("fchown stdio pipe to IoUid {uid} IoGid {gid}: {e}"),
        )
    })
}

/// Where one output stream is copied to.
enum Sink {
    Pipe(pipe::Sender),
    /// A regular file (file://): written in place, which does not block on
    /// anything but the disk.
    File(std::fs::File),
}

impl Sink {
    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Pipe(p) => p.write_all(buf).await,
            Sink::File(f) => std::io::Write::write_all(f, buf),
        }
    }
}

fn open_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let ctx = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(ctx)?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(ctx)
}

/// The sinks of stdout and stderr (None = not attached), and the logger if any.
async fn output_sinks(
    owner: Owner<'_>,
    stdout: &str,
    stderr: &str,
) -> std::io::Result<([Option<(Sink, String)>; 2], Option<Logger>)> {
    Ok(match target(stdout, stderr)? {
        Target::Fifos(out, err) => {
            let open = |p: String| -> std::io::Result<Option<(Sink, String)>> {
                if p.is_empty() {
                    return Ok(None);
                }
                Ok(Some((Sink::Pipe(open_output(&p)?), p)))
            };
            ([open(out)?, open(err)?], None)
        }
        Target::File(path) => {
            let f = open_file(&path)?;
            let name = path.display().to_string();
            (
                [
                    Some((Sink::File(f.try_clone()?), name.clone())),
                    Some((Sink::File(f), name)),
                ],
                None,
            )
        }
        Target::Binary(cmd) => {
            let (out, err, logger) = start_logger(&cmd, owner).await?;
            let name = cmd.path.display().to_string();
            (
                [
                    Some((Sink::Pipe(out), format!("{name} stdout"))),
                    Some((Sink::Pipe(err), format!("{name} stderr"))),
                ],
                Some(logger),
            )
        }
    })
}

/// Opens stdin (a FIFO; empty = not attached) and the outputs, and returns the
/// container's ends.
pub async fn open(
    owner: Owner<'_>,
    stdin: &str,
    stdout: &str,
    stderr: &str,
) -> std::io::Result<(runtime_core::Stdio, Io)> {
    let stdin = fifo_path(stdin)?;
    let mut io = Io {
        stdin_close: None,
        stdin_task: None,
        outputs: Vec::new(),
        console: None,
        logger: None,
    };
    let mut stdio = runtime_core::Stdio::default();
    if !stdin.is_empty() {
        let (tx, rx) = pipe::pipe()?;
        // O_RDWR: opening never blocks and never sees a premature EOF before the
        // client connects; the end of input is signalled by CloseIO.
        let fifo = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&stdin)?;
        let (close_tx, close_rx) = oneshot::channel();
        io.stdin_task = Some(tokio::spawn(copy_stdin(fifo, tx, close_rx)));
        io.stdin_close = Some(close_tx);
        let rx = rx.into_blocking_fd()?;
        chown_pipe(&rx, owner.io_ids)?;
        stdio.stdin = Some(rx);
    }
    let (sinks, logger) = output_sinks(owner, stdout, stderr).await?;
    io.logger = logger;
    for (sink, slot) in sinks
        .into_iter()
        .zip([&mut stdio.stdout, &mut stdio.stderr])
    {
        let Some((sink, name)) = sink else {
            continue;
        };
        let (tx, rx) = pipe::pipe()?;
        io.outputs.push(tokio::spawn(copy_output(rx, sink, name)));
        let tx = tx.into_blocking_fd()?;
        chown_pipe(&tx, owner.io_ids)?;
        *slot = Some(tx);
    }
    Ok((stdio, io))
}

/// O_WRONLY so a reader that goes away shows up as EPIPE; if no reader is
/// there yet (ENXIO), O_RDWR so the open cannot fail or block.
fn open_output(path: &str) -> std::io::Result<pipe::Sender> {
    match pipe::OpenOptions::new().open_sender(path) {
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            pipe::OpenOptions::new().read_write(true).open_sender(path)
        }
        other => other,
    }
}

async fn copy_stdin(
    mut fifo: pipe::Receiver,
    mut to: pipe::Sender,
    mut close: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        tokio::select! {
            biased;
            _ = &mut close => {
                // The client closed its end after writing: pass on what is buffered.
                loop {
                    match fifo.try_read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => if to.write_all(&buf[..n]).await.is_err() { break },
                        Err(_) => break,
                    }
                }
                break;
            }
            r = fifo.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => if to.write_all(&buf[..n]).await.is_err() { break },
            }
        }
    }
    // Dropping `to` is the container's EOF.
}

async fn copy_output(mut from: pipe::Receiver, mut to: Sink, path: String) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut alive = true;
    let mut total = 0usize;
    loop {
        match from.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) if alive => {
                total += n;
                if let Err(e) = to.write_all(&buf[..n]).await {
                    // Keep draining so the container never blocks on a full pipe.
                    log::warn!("output {path}: {e}; discarding further output");
                    alive = false;
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                log::warn!("read container output for {path}: {e}");
                break;
            }
        }
    }
    log::debug!("output {path}: {total} bytes copied");
}

impl Io {
    /// ResizePty: the terminal's new size (no-op without a terminal).
    pub fn resize(&self, width: u32, height: u32) -> runtime_core::Result<()> {
        match &self.console {
            Some(c) => runtime_core::set_terminal_size(
                c.get_ref().as_raw_fd(),
                height as u16,
                width as u16,
            ),
            None => Ok(()),
        }
    }

    /// CloseIO: the container's stdin reaches EOF once buffered input is passed on.
    pub fn close_stdin(&mut self) {
        if let Some(tx) = self.stdin_close.take() {
            let _ = tx.send(());
        }
    }

    /// The output copy tasks; each ends once the container's write ends are all closed.
    pub fn take_outputs(&mut self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.outputs)
    }

    /// Stops copying stdin (the process is gone).
    pub fn stop(&mut self) {
        if let Some(h) = self.stdin_task.take() {
            h.abort();
        }
        self.stdin_close = None;
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        self.stop();
        for h in &self.outputs {
            h.abort();
        }
    }
}
