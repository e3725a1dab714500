//! `ps [--format json]`: the container's pids.

use runtime_core::Container;

use crate::args::{Cmd, Global};
use crate::error::Res;
use crate::state;

pub fn ps(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let s = state::load(&g.root, id)?;
    let c = Container::attach(id, &s.bundle, s.pid)?;
    let pids = c.pids()?;
    if cmd.flag("format") == Some("json") {
        println!("{}", serde_json::to_string(&pids).unwrap());
    } else {
        println!("PID");
        for p in pids {
            println!("{p}");
        }
    }
    Ok(())
}
