//! Checkpoint and restore (CRIU): not offered, and the error says why.
//!
//! runc drives CRIU for a container it created (`criu swrk` RPC, with the
//! container's namespaces, cgroups and mounts described to it). The same
//! would work for runtime-core's containers, but the CRIU this machine can
//! have (Debian bookworm's 3.17) cannot checkpoint any process on its kernel:
//! 6.13+ split the vDSO's data pages into `[vvar]` and `[vvar_vclock]`, and
//! CRIU before 4.1 stops at start-up ("Unexpected rt vDSO area bounds",
//! checkpoint-restore/criu#2532). So the shim returns Unimplemented, with
//! what `criu check` says on this host appended.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Why checkpoint/restore is unavailable here, probed once.
fn criu_verdict() -> &'static str {
    static VERDICT: OnceLock<String> = OnceLock::new();
    VERDICT.get_or_init(|| {
        // criu is our child: the orphan reaper must leave its status to us.
        let _gate = crate::reaper::spawning();
        let out = Command::new("criu")
            .arg("check")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output();
        match out {
            Err(e) => format!("criu is not usable ({e}; Debian: apt-get install criu)"),
            Ok(o) if o.status.success() => {
                "criu check passes on this host, but the shim does not drive CRIU yet".into()
            }
            Ok(o) => {
                let all = String::from_utf8_lossy(&o.stderr).into_owned()
                    + &String::from_utf8_lossy(&o.stdout);
                // The first error is the cause; the later ones are its consequences.
                let first = all
                    .lines()
                    .find(|l| l.contains("Error"))
                    .unwrap_or_else(|| all.lines().last().unwrap_or("no output"));
                format!(
                    "CRIU cannot run on this kernel: `criu check` fails with {:?} \
                     (a CRIU with vvar_vclock support, 4.1 or later, is needed)",
                    first.trim()
                )
            }
        }
    })
}

/// The message for a Checkpoint of, or a restore into, container `id`.
pub fn unavailable(what: &str, id: &str) -> String {
    format!(
        "{what} of container {id}: checkpoint/restore is not implemented by \
         containerd-shim-rust-v1: {}",
        criu_verdict()
    )
}
