//! CRIU, for checkpoint/restore.

use std::process::{Command, Stdio};

use super::{Check, Level};

/// CRIU's presence and `criu check`, for checkpoint/restore.
pub(super) fn check(out: &mut Vec<Check>) {
    let run = |args: &[&str]| {
        Command::new("criu")
            .args(args)
            .stdin(Stdio::null())
            .output()
    };
    let version = match run(&["--version"]) {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Err(e) => {
            out.push(Check::bad(
                Level::Warn,
                "criu",
                format!("not found ({e}): checkpoint/restore is unavailable"),
                "apt-get install criu",
            ));
            return;
        }
    };
    out.push(match run(&["check"]) {
        Ok(o) if o.status.success() => Check::bad(
            Level::Warn,
            "criu",
            format!(
                "{version}; `criu check` passes: Checkpoint works, restore (Create \
                 with a checkpoint) answers Unimplemented"
            ),
            "use runtime io.containerd.runc.v2 for containers that need restores",
        ),
        Ok(o) => {
            let first = crate::checkpoint::criu_check_cause(&o);
            Check::bad(
                Level::Warn,
                "criu",
                format!(
                    "{version}; `criu check` fails: {first}: checkpoint/restore is unavailable"
                ),
                "a CRIU that supports this kernel (4.1 or later on Linux >= 6.13)",
            )
        }
        Err(e) => Check::bad(
            Level::Warn,
            "criu",
            format!("{version}; `criu check` could not run: {e}"),
            "check the criu installation",
        ),
    });
}
