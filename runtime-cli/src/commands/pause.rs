//! `pause` and `resume`: the container's freezer.

use super::with_container;
use crate::args::{Cmd, Global};
use crate::error::Res;

pub fn pause(g: &Global, cmd: &Cmd) -> Res {
    with_container(g, cmd, |c| c.pause())
}

pub fn resume(g: &Global, cmd: &Cmd) -> Res {
    with_container(g, cmd, |c| c.resume())
}
