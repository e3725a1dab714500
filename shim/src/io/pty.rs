//! Terminal IO: copies between the pty master and the FIFOs.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use super::uri::fifo_path;
use super::{output_sinks, Io, Owner, Sink};

/// Terminal IO: the pty master carries both directions (a tty merges stdout
/// and stderr). The master is read until EIO, which the kernel returns once
/// every slave fd (every process of the terminal) is gone.
pub async fn terminal(
    master: OwnedFd,
    owner: Owner<'_>,
    stdin: &str,
    stdout: &str,
) -> std::io::Result<Io> {
    let stdin = fifo_path(stdin)?;
    // SAFETY: F_GETFL takes only integers, on the pty master fd that `master` owns.
    let flags = unsafe { libc::fcntl(master.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: F_SETFL takes only integers, on the pty master fd that `master` owns.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    // SAFETY: `master` is moved into the AsyncFd, which owns it from here on.
    let afd =
        unsafe { AsyncFd::register_with_interest(master, Interest::READABLE | Interest::WRITABLE) }
            .map_err(std::io::Error::from)?;
    let console = Arc::new(afd);
    let mut io = Io {
        stdin_close: None,
        stdin_task: None,
        outputs: Vec::new(),
        console: Some(console.clone()),
        logger: None,
    };
    if !stdin.is_empty() {
        let fifo = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&stdin)?;
        let (close_tx, close_rx) = oneshot::channel();
        io.stdin_task = Some(tokio::spawn(copy_to_pty(fifo, console.clone(), close_rx)));
        io.stdin_close = Some(close_tx);
    }
    // A terminal has one output; a logger's stderr (fd 4) is at EOF at once.
    let ([out, _], logger) = output_sinks(owner, stdout, "").await?;
    io.logger = logger;
    if let Some((sink, name)) = out {
        io.outputs
            .push(tokio::spawn(copy_from_pty(console, sink, name)));
    }
    Ok(io)
}

fn pty_read(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes to `buf.as_mut_ptr()`, a live,
    // exclusively borrowed slice of that length; the fd is owned by the AsyncFd borrowed for the
    // call.
    let n = unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn pty_write(fd: &AsyncFd<OwnedFd>, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf.as_ptr()`, a live slice of that
    // length; the fd is owned by the AsyncFd borrowed for the call.
    let n = unsafe { libc::write(fd.get_ref().as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

async fn copy_from_pty(master: Arc<AsyncFd<OwnedFd>>, mut to: Sink, path: String) {
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
            if let Err(e) = to.write_all(&buf[..n]).await {
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
