//! `update --resources FILE|-`: new resources for a running container.

use super::with_container;
use crate::args::{Cmd, Global};
use crate::error::{Error, Res};

pub fn update(g: &Global, cmd: &Cmd) -> Res {
    let path = cmd
        .flag("resources")
        .or(cmd.flag("r"))
        .ok_or_else(|| Error::Usage("update: --resources FILE (or -) is required".into()))?;
    let data = if path == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
        v
    } else {
        std::fs::read(path).map_err(Error::io(format!("--resources {path}")))?
    };
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_slice(&data).map_err(Error::json(format!("--resources {path}")))?;
    with_container(g, cmd, |c| c.update(&res))
}
