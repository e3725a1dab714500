//! Container stdio through the FIFOs containerd passes.
//!
//! The container gets anonymous pipes, never the FIFOs themselves: the shim
//! copies between them, so a client that goes away (or containerd restarting)
//! never blocks or kills the container, and CloseIO can close stdin even though
//! the FIFO's writer (ctr) keeps it open.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Copy tasks of one process.
pub struct Io {
    stdin_close: Option<oneshot::Sender<()>>,
    stdin_task: Option<JoinHandle<()>>,
    outputs: Vec<JoinHandle<()>>,
    /// The terminal's master, for ResizePty.
    console: Option<Arc<AsyncFd<OwnedFd>>>,
}

/// Opens the FIFOs (empty path = not attached) and returns the container's ends.
pub fn open(stdin: &str, stdout: &str, stderr: &str) -> std::io::Result<(runtime_core::Stdio, Io)> {
    let mut io = Io {
        stdin_close: None,
        stdin_task: None,
        outputs: Vec::new(),
        console: None,
    };
    let mut stdio = runtime_core::Stdio::default();
    if !stdin.is_empty() {
        let (tx, rx) = pipe::pipe()?;
        // O_RDWR: opening never blocks and never sees a premature EOF before the
        // client connects; the end of input is signalled by CloseIO.
        let fifo = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(stdin)?;
        let (close_tx, close_rx) = oneshot::channel();
        io.stdin_task = Some(tokio::spawn(copy_stdin(fifo, tx, close_rx)));
        io.stdin_close = Some(close_tx);
        stdio.stdin = Some(rx.into_blocking_fd()?);
    }
    for (path, slot) in [(stdout, &mut stdio.stdout), (stderr, &mut stdio.stderr)] {
        if path.is_empty() {
            continue;
        }
        let (tx, rx) = pipe::pipe()?;
        let fifo = open_output(path)?;
        io.outputs
            .push(tokio::spawn(copy_output(rx, fifo, path.to_string())));
        *slot = Some(tx.into_blocking_fd()?);
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

async fn copy_output(mut from: pipe::Receiver, mut fifo: pipe::Sender, path: String) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut alive = true;
    loop {
        match from.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) if alive => {
                if let Err(e) = fifo.write_all(&buf[..n]).await {
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
}

/// Terminal IO: the pty master carries both directions (a tty merges stdout
/// and stderr). The master is read until EIO, which the kernel returns once
/// every slave fd (every process of the terminal) is gone.
pub fn terminal(master: OwnedFd, stdin: &str, stdout: &str) -> std::io::Result<Io> {
    let flags = unsafe { libc::fcntl(master.as_raw_fd(), libc::F_GETFL) };
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    // Safety: `master` is moved into the AsyncFd, which owns it from here on.
    let afd =
        unsafe { AsyncFd::register_with_interest(master, Interest::READABLE | Interest::WRITABLE) }
            .map_err(std::io::Error::from)?;
    let console = Arc::new(afd);
    let mut io = Io {
        stdin_close: None,
        stdin_task: None,
        outputs: Vec::new(),
        console: Some(console.clone()),
    };
    if !stdin.is_empty() {
        let fifo = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(stdin)?;
        let (close_tx, close_rx) = oneshot::channel();
        io.stdin_task = Some(tokio::spawn(copy_to_pty(fifo, console.clone(), close_rx)));
        io.stdin_close = Some(close_tx);
    }
    if !stdout.is_empty() {
        let fifo = open_output(stdout)?;
        io.outputs.push(tokio::spawn(copy_from_pty(
            console,
            fifo,
            stdout.to_string(),
        )));
    }
    Ok(io)
}

fn pty_read(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> std::io::Result<usize> {
    let n = unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn pty_write(fd: &AsyncFd<OwnedFd>, buf: &[u8]) -> std::io::Result<usize> {
    let n = unsafe { libc::write(fd.get_ref().as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

async fn copy_from_pty(master: Arc<AsyncFd<OwnedFd>>, mut fifo: pipe::Sender, path: String) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut alive = true;
    loop {
        let Ok(mut guard) = master.readable().await else {
            break;
        };
        let n = match guard.try_io(|fd| pty_read(fd, &mut buf)) {
            Err(_would_block) => continue,
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => continue,
            // EIO: the last slave fd closed, everything is read.
            Ok(Err(_)) => break,
        };
        if alive {
            if let Err(e) = fifo.write_all(&buf[..n]).await {
                log::warn!("terminal output {path}: {e}; discarding further output");
                alive = false;
            }
        }
    }
}

async fn copy_to_pty(
    mut fifo: pipe::Receiver,
    master: Arc<AsyncFd<OwnedFd>>,
    mut close: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = tokio::select! {
            biased;
            _ = &mut close => break,
            r = fifo.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        let mut off = 0;
        while off < n {
            let Ok(mut guard) = master.writable().await else {
                return;
            };
            match guard.try_io(|fd| pty_write(fd, &buf[off..n])) {
                Err(_would_block) => continue,
                Ok(Ok(w)) => off += w,
                Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => continue,
                Ok(Err(_)) => return,
            }
        }
    }
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
