//! One file per runc command; the helpers they share (stdio, console socket,
//! pid file, bundle, attaching to a saved container) live here.

pub mod create;
pub mod delete;
pub mod exec;
pub mod features;
pub mod kill;
pub mod pause;
pub mod ps;
pub mod run;
pub mod start;
pub mod state;
pub mod update;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use runtime_core::{Container, Stdio};

use crate::args::{Cmd, Global};
use crate::error::{Error, Res};

pub fn dup_stdio() -> Result<Stdio, Error> {
    let d = |fd: i32| -> Result<Option<OwnedFd>, Error> {
        // SAFETY: fd is 0, 1 or 2: std's start-up reopens any of them that was closed on /dev/null,
        // and nothing in this process closes them, so the fd stays open for the borrow, which ends
        // in this closure.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        b.try_clone_to_owned()
            .map(Some)
            .map_err(Error::io(format!("dup fd {fd}")))
    };
    Ok(Stdio {
        stdin: d(0)?,
        stdout: d(1)?,
        stderr: d(2)?,
    })
}

/// Sends the terminal master to `--console-socket`, as runc does.
pub fn send_console(socket: &str, master: OwnedFd) -> Res {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let s = std::os::unix::net::UnixStream::connect(socket)
        .map_err(Error::io(format!("connect console socket {socket}")))?;
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
    sendmsg::<()>(
        s.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(Error::sys(format!("send console to {socket}")))?;
    Ok(())
}

pub fn write_pid_file(path: Option<&str>, pid: i32) -> Res {
    let Some(path) = path else { return Ok(()) };
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, pid.to_string()).map_err(Error::io(format!("pid file {tmp}")))?;
    std::fs::rename(&tmp, path).map_err(Error::io(format!("pid file {path}")))
}

pub fn bundle_of(cmd: &Cmd) -> Result<PathBuf, Error> {
    let b = cmd.flag("bundle").or(cmd.flag("b")).map(PathBuf::from);
    let b = match b {
        Some(b) => b,
        None => std::env::current_dir()?,
    };
    std::fs::canonicalize(&b).map_err(Error::io(format!("bundle {}", b.display())))
}

/// Runs `f` on the saved container `cmd`'s first argument names, unless it
/// has stopped.
pub fn with_container(
    g: &Global,
    cmd: &Cmd,
    f: impl FnOnce(&Container) -> runtime_core::Result<()>,
) -> Res {
    let id = cmd.arg(0, "container id")?;
    let s = crate::state::load(&g.root, id)?;
    if crate::state::status(&g.root, &s) == "stopped" {
        return Err(Error::Status(format!("container {id} is not running")));
    }
    let c = Container::attach(id, &s.bundle, s.pid)?;
    Ok(f(&c)?)
}
