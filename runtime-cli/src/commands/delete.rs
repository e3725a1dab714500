//! `delete [--force]`: kills a live container only with `--force`; the
//! poststop hooks of one whose init is long gone run from its bundle.

use runtime_core::Container;

use crate::args::{Cmd, Global};
use crate::error::{Error, Res};
use crate::state;

pub fn delete(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let force = cmd.has("force") || cmd.has("f");
    let s = match state::load(&g.root, id) {
        Ok(s) => s,
        Err(e) if force => {
            let _ = std::fs::remove_dir_all(state::dir(&g.root, id));
            return if state::dir(&g.root, id).exists() {
                Err(e)
            } else {
                Ok(())
            };
        }
        Err(e) => return Err(e),
    };
    let status = state::status(&g.root, &s);
    if status != "stopped" && status != "created" && !force {
        return Err(Error::Status(format!(
            "cannot delete container {id} that is not stopped: {status}"
        )));
    }
    let c = Container::attach(id, &s.bundle, s.pid).ok();
    if status != "stopped" {
        if let Some(c) = &c {
            let _ = c.kill(libc::SIGKILL, true);
        }
        for _ in 0..1000 {
            if state::status(&g.root, &s) == "stopped" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let res = match c {
        Some(c) => c.delete().map_err(Error::from),
        // The init is gone and so is its pid (its parent reaped it long
        // ago: it is not ours): clean up from the bundle alone.
        None => {
            let r = runtime_core::container::cleanup(&s.bundle, id).map_err(Error::from);
            poststop_from_bundle(&s);
            r
        }
    };
    std::fs::remove_dir_all(state::dir(&g.root, id))
        .map_err(Error::io(format!("remove state of {id}")))?;
    res
}

/// The spec's poststop hooks, for a container whose init is gone, after its
/// cgroup is removed (runtime-spec: after the container is deleted). A
/// failing hook is a warning; the delete goes on (as runc does).
fn poststop_from_bundle(s: &state::Saved) {
    let spec = match runtime_core::spec::load(&s.bundle) {
        Ok(spec) => spec,
        Err(e) => return log::warn!("poststop hooks of {}: {e}", s.id),
    };
    let state = runtime_core::hooks::State {
        oci_version: spec.version(),
        id: &s.id,
        status: "stopped",
        pid: s.pid,
        bundle: &s.bundle,
        annotations: spec.annotations().as_ref(),
    };
    let hooks = spec.hooks().as_ref().and_then(|h| h.poststop().as_ref());
    if let Err(e) = runtime_core::hooks::run("poststop", hooks, &state) {
        log::warn!("container {}: {e}", s.id);
    }
}
