//! `create`: the container waits on its exec FIFO until `start`.

use runtime_core::{Container, CreateOpts, Stdio};

use super::{bundle_of, dup_stdio, send_console, write_pid_file};
use crate::args::{Cmd, Global};
use crate::error::{Error, Res};
use crate::state;

pub fn create(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    create_container(g, cmd, id, true).map(|_| ())
}

/// Creates and saves the container; with `fifo_wait` its init waits on the
/// exec FIFO (`create`), without it the caller starts it (`run`). On an
/// error, the state directory is removed again.
pub fn create_container(
    g: &Global,
    cmd: &Cmd,
    id: &str,
    fifo_wait: bool,
) -> Result<(Container, state::Saved), Error> {
    let bundle = bundle_of(cmd)?;
    let dir = state::dir(&g.root, id);
    if dir.exists() {
        return Err(Error::Status(format!(
            "container with id {id} exists already"
        )));
    }
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("mkdir {}", dir.display())))?;
    let fifo = state::fifo(&g.root, id);
    let undo = |e: Error| {
        let _ = std::fs::remove_dir_all(&dir);
        e
    };
    let spec = runtime_core::spec::load(&bundle).map_err(|e| undo(e.into()))?;
    if fifo_wait {
        state::make_fifo(&fifo, &spec).map_err(undo)?;
    }
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let console_socket = cmd.flag("console-socket");
    if terminal && console_socket.is_none() && fifo_wait {
        return Err(undo(Error::Usage(
            "process.terminal needs --console-socket".into(),
        )));
    }
    let stdio = if terminal {
        Stdio::default()
    } else {
        dup_stdio().map_err(undo)?
    };
    let opts = CreateOpts {
        id,
        bundle: &bundle,
        stdio,
        exec_fifo: fifo_wait.then_some(fifo.as_path()),
    };
    let mut c = Container::create(opts).map_err(|e| undo(e.into()))?;
    if let (Some(sock), Some(master)) = (console_socket, c.take_console()) {
        if let Err(e) = send_console(sock, master) {
            let _ = c.kill(libc::SIGKILL, true);
            let _ = c.delete();
            return Err(undo(e));
        }
    }
    let saved = state::Saved {
        id: id.to_string(),
        pid: c.pid(),
        start_time: state::start_time(c.pid()).unwrap_or(0),
        bundle,
        created: runtime_core::rfc3339::now(),
    };
    state::save(&g.root, &saved).map_err(undo)?;
    write_pid_file(cmd.flag("pid-file"), c.pid())?;
    Ok((c, saved))
}
