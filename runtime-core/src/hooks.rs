//! OCI lifecycle hooks: each gets the container state JSON on stdin, its own
//! args and env, and an optional timeout.
//!
//! Where each kind runs, and what a failure does (runtime-spec "Lifecycle"):
//! - `prestart`, `createRuntime`: by the helper, in the runtime's namespaces,
//!   after the init's namespaces exist and before it sets up the rootfs
//!   (runc runs them a little later, after the rootfs mounts: a hook that
//!   needs the container's mounts should be a `createContainer` hook).
//!   Failure fails the create.
//! - `createContainer`: by the init, in the container's namespaces, after the
//!   mounts and before `pivot_root` (the hook path is still the host's).
//!   Failure fails the create.
//! - `startContainer`: by the init after Start, right before `execve`, inside
//!   the container's root. Failure fails the start.
//! - `poststart`: by the shim after the process started; `poststop`: after
//!   delete. Failures there are logged and the lifecycle goes on.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use serde::Serialize;

use crate::error::{Error, Result};

/// The runtime-spec `state` object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct State<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'a str,
    pub pid: i32,
    pub bundle: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a HashMap<String, String>>,
}

fn run_one(kind: &str, i: usize, hook: &Hook, state: &[u8]) -> Result<()> {
    let what = format!("hooks.{kind}[{i}] {}", hook.path().display());
    let mut cmd = Command::new(hook.path());
    let args = hook.args().clone().unwrap_or_default();
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Init(format!("{what}: {e}")))?;
    // A hook that does not read its stdin must not block us: ignore EPIPE.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(Error::Init(format!("{what}: {status}: {}", err.trim())));
            }
            Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Init(format!(
                    "{what}: timed out after {}s",
                    hook.timeout().unwrap_or(0)
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(Error::Init(format!("{what}: wait: {e}"))),
        }
    }
}

/// Runs `hooks` in order, stopping at the first failure.
pub fn run(kind: &str, hooks: Option<&Vec<Hook>>, state: &State) -> Result<()> {
    let Some(hooks) = hooks.filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let json = serde_json::to_vec(state).map_err(|e| Error::Protocol(e.to_string()))?;
    for (i, h) in hooks.iter().enumerate() {
        run_one(kind, i, h, &json)?;
    }
    Ok(())
}
