//! `run`: create, start, wait; the exit code is the container's.

use super::create::create_container;
use crate::args::{Cmd, Global};
use crate::error::Res;
use crate::state;

pub fn run(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let (mut c, _) = create_container(g, cmd, id, false)?;
    let started = c.start();
    let status = c.init().reap_blocking();
    let deleted = c.delete();
    let _ = std::fs::remove_dir_all(state::dir(&g.root, id));
    started?;
    deleted?;
    std::process::exit(status?.0 as i32)
}
