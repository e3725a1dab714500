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

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtime_core::container::Pidfd;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a logger has to exit after SIGTERM before SIGKILL (containerd's
/// `binaryIOProcTermTimeout`).
const LOGGER_TERM_TIMEOUT: Duration = Duration::from_secs(12);

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
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidInput, msg)
}

/// A stdio URI split the way Go's `url.Parse` does (only what we use).
struct Uri<'a> {
    scheme: &'a str,
    path: Vec<u8>,
    query: &'a str,
}

fn parse_uri(uri: &str) -> std::io::Result<Uri<'_>> {
    let scheme_end = uri.find(':').filter(|&i| {
        let s = &uri.as_bytes()[..i];
        !s.is_empty()
            && s[0].is_ascii_alphabetic()
            && s.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
    });
    let Some(i) = scheme_end else {
        // No scheme: a FIFO path, taken verbatim.
        return Ok(Uri {
            scheme: "",
            path: uri.as_bytes().to_vec(),
            query: "",
        });
    };
    let scheme = &uri[..i];
    let mut rest = &uri[i + 1..];
    if let Some(h) = rest.find('#') {
        rest = &rest[..h];
    }
    let (mut path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some(after) = path.strip_prefix("//") {
        let host_end = after.find('/').unwrap_or(after.len());
        if host_end != 0 {
            return Err(invalid(format!(
                "stdio URI {uri}: a host ({}) is not supported; write {scheme}:///absolute/path",
                &after[..host_end]
            )));
        }
        path = &after[host_end..];
    }
    let path = unescape(path, false)
        .ok_or_else(|| invalid(format!("stdio URI {uri}: bad %-escape in the path")))?;
    if !path.starts_with(b"/") {
        return Err(invalid(format!(
            "stdio URI {uri}: the path must be absolute ({scheme}:///absolute/path)"
        )));
    }
    Ok(Uri {
        scheme,
        path,
        query,
    })
}

/// Percent-decoding; in a query, `+` is a space too.
fn unescape(s: &str, query: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = b.get(i + 1..i + 3)?;
                if !h.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The logging binary's command line, as containerd's `NewBinaryCmd` builds it.
struct LoggerCmd {
    path: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl LoggerCmd {
    fn new(uri: &Uri) -> Self {
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

/// Where a process's output goes.
enum Target {
    /// FIFO paths; empty = not attached.
    Fifos(String, String),
    File(PathBuf),
    Binary(LoggerCmd),
}

const SUPPORTED: &str = "supported are FIFO paths (plain or fifo://), binary:// and file://";

fn fifo_path(uri: &str) -> std::io::Result<String> {
    if uri.is_empty() {
        return Ok(String::new());
    }
    let u = parse_uri(uri)?;
    match u.scheme {
        "" | "fifo" => {
            String::from_utf8(u.path).map_err(|_| invalid(format!("FIFO path {uri} is not UTF-8")))
        }
        "binary" | "file" => Err(invalid(format!(
            "stdio URI {uri}: {}:// is for stdout and stderr only",
            u.scheme
        ))),
        s => Err(invalid(format!(
            "stdio URI {uri}: unsupported scheme \"{s}\"; {SUPPORTED}"
        ))),
    }
}

fn target(stdout: &str, stderr: &str) -> std::io::Result<Target> {
    let main = if stdout.is_empty() { stderr } else { stdout };
    if main.is_empty() {
        return Ok(Target::Fifos(String::new(), String::new()));
    }
    let u = parse_uri(main)?;
    let t = match u.scheme {
        "" | "fifo" => return Ok(Target::Fifos(fifo_path(stdout)?, fifo_path(stderr)?)),
        "file" => Target::File(PathBuf::from(OsString::from_vec(u.path))),
        "binary" => Target::Binary(LoggerCmd::new(&u)),
        s => {
            return Err(invalid(format!(
                "stdio URI {main}: unsupported scheme \"{s}\"; {SUPPORTED}"
            )))
        }
    };
    if !stdout.is_empty() && !stderr.is_empty() && stdout != stderr {
        return Err(invalid(format!(
            "stdout {stdout} and stderr {stderr}: a {}:// URI must be the same for both",
            u.scheme
        )));
    }
    Ok(t)
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

/// A running logging binary. Dropping it lets the logger finish on its own
/// for a while (SIGTERM, SIGKILL after [`LOGGER_TERM_TIMEOUT`]); it is reaped
/// through its pidfd whenever it exits.
struct Logger {
    _terminate: oneshot::Sender<()>,
}

/// Moves `fd` to a number above 5 so dup2 onto 3..=5 never clobbers another source.
fn above_five(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 5 {
        return Ok(fd);
    }
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 6) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Safety: fcntl just returned this new fd, owned by nobody else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) })
}

/// Starts the logging binary and waits until it is ready. Returns the write
/// ends of its stdout (fd 3) and stderr (fd 4) pipes.
async fn start_logger(
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
    // Safety: only dup2 between fork and exec, which is async-signal-safe; the
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
    // Safety: the Pidfd owns its fd and is moved into the AsyncFd, so the fd
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
        stdio.stdin = Some(rx.into_blocking_fd()?);
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

async fn copy_output(mut from: pipe::Receiver, mut to: Sink, path: String) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut alive = true;
    loop {
        match from.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) if alive => {
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
}

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
