//! `start`: opens the exec FIFO a created init waits on.

use runtime_core::Container;

use crate::args::{Cmd, Global};
use crate::error::{Error, Res};
use crate::state;

pub fn start(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let s = state::load(&g.root, id)?;
    let status = state::status(&g.root, &s);
    if status != "created" {
        return Err(Error::Status(format!(
            "cannot start a container that is {status}"
        )));
    }
    let fifo = state::fifo(&g.root, id);
    // Opening for reading meets the init's pending open for writing.
    let mut f =
        std::fs::File::open(&fifo).map_err(Error::io(format!("open {}", fifo.display())))?;
    let mut b = [0u8; 1];
    let n = std::io::Read::read(&mut f, &mut b)
        .map_err(Error::io(format!("read {}", fifo.display())))?;
    let _ = std::fs::remove_file(&fifo);
    if n != 1 {
        return Err(Error::Status(
            "the container init exited before it was started".into(),
        ));
    }
    // The user process runs from here on and may be gone (exited and reaped by our
    // caller, a subreaper) before we look: attach (pidfd_open) only for poststart hooks.
    let spec = runtime_core::spec::load(&s.bundle)?;
    let has_poststart = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().as_ref())
        .is_some_and(|p| !p.is_empty());
    if !has_poststart {
        return Ok(());
    }
    let c = Container::attach(id, &s.bundle, s.pid)?;
    if let Err(e) = c.run_hooks("poststart", "running") {
        eprintln!("rshim-runc: warning: {e}");
    }
    Ok(())
}
