//! `state`: runc's state JSON of a saved container.

use crate::args::{Cmd, Global};
use crate::error::Res;
use crate::state;

pub fn state(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let s = state::load(&g.root, id)?;
    let status = state::status(&g.root, &s);
    let spec = runtime_core::spec::load(&s.bundle).ok();
    let rootfs = spec
        .as_ref()
        .and_then(|sp| runtime_core::spec::rootfs(&s.bundle, sp).ok());
    let out = serde_json::json!({
        "ociVersion": "1.0.2",
        "id": s.id,
        "pid": if status == "stopped" { 0 } else { s.pid },
        "status": status,
        "bundle": s.bundle,
        "rootfs": rootfs,
        "created": s.created,
        "owner": "",
        "annotations": spec.as_ref().and_then(|sp| sp.annotations().clone()),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    Ok(())
}
