//! `rshim-runc`: a runc-compatible command line over runtime-core, so any OCI
//! tooling (containerd's Go runc shim through `BinaryName`, runtime-tools, runc's
//! own tests) can drive our runtime and be compared with runc on equal terms.
//!
//! Unlike the shim, a CLI's `create` process exits while the container waits
//! to be started: the init then waits on `<root>/<id>/exec.fifo`, which
//! `start` opens (runc's own design), instead of on the control channel.
//!
//! This file parses and dispatches; each command is in `commands/`.

mod args;
mod commands;
mod error;
mod logger;
mod state;

use std::io::Write;

use args::{Cmd, Global};
use commands as c;
use error::{Error, Res};

fn main() {
    // First, before any thread exists: maybe we are the container-init helper.
    runtime_core::init::main_if_helper();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (g, cmd) = match args::parse(&argv) {
        Ok(p) => p,
        Err(e) => fail(&Global::default(), &e),
    };
    logger::init(&g);
    if let Err(e) = args::check_flags(&cmd) {
        fail(&g, &e);
    }
    if let Err(e) = dispatch(&g, &cmd) {
        fail(&g, &e);
    }
}

fn dispatch(g: &Global, cmd: &Cmd) -> Res {
    match cmd.name.as_str() {
        "create" => c::create::create(g, cmd),
        "start" => c::start::start(g, cmd),
        "run" => c::run::run(g, cmd),
        "state" => c::state::state(g, cmd),
        "kill" => c::kill::kill(g, cmd),
        "delete" => c::delete::delete(g, cmd),
        "ps" => c::ps::ps(g, cmd),
        "exec" => c::exec::exec(g, cmd),
        "pause" => c::pause::pause(g, cmd),
        "resume" => c::pause::resume(g, cmd),
        "update" => c::update::update(g, cmd),
        "features" => c::features::features(),
        "--version" => c::features::version(),
        "" | "--help" => Err(Error::Usage(
            "usage: rshim-runc [--root DIR] [--log FILE] [--log-format json] COMMAND [FLAGS] ID"
                .into(),
        )),
        other => Err(Error::Usage(format!("command {other:?} is not supported"))),
    }
}

/// One error, on stderr and (as go-runc reads it) in the JSON log.
fn fail(g: &Global, err: &Error) -> ! {
    let msg = err.to_string();
    if let Some(log) = &g.log {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let line = if g.log_json {
                serde_json::json!({"level": "error", "msg": msg}).to_string()
            } else {
                format!("level=error msg={msg:?}")
            };
            let _ = writeln!(f, "{line}");
        }
    }
    eprintln!("rshim-runc: {msg}");
    std::process::exit(1)
}
