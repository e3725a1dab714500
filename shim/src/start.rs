//! `start`: find or launch the shim for this container's group, print its address.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::address::{self, SANDBOX_ID};
use crate::args::Flags;
use crate::server::LISTENER_FD;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The grouping id: the pod's sandbox id when CRI set one, else our own id.
fn group_id(id: &str) -> String {
    let spec: serde_json::Value = std::fs::read("config.json")
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    spec["annotations"][SANDBOX_ID]
        .as_str()
        .unwrap_or(id)
        .to_string()
}

fn listen(path: &str) -> Result<Option<UnixListener>> {
    let dir = Path::new(path).parent().unwrap();
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    match UnixListener::bind(path) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Ok(None); // a live shim of our group already serves here
            }
            // A dead shim's socket: take it over.
            std::fs::remove_file(path).map_err(|e| format!("remove stale socket {path}: {e}"))?;
            Ok(Some(
                UnixListener::bind(path).map_err(|e| format!("bind {path}: {e}"))?,
            ))
        }
        Err(e) => Err(format!("bind {path}: {e}").into()),
    }
}

fn spawn_daemon(flags: &Flags, listener: &UnixListener, address: &str) -> Result<Child> {
    let exe = std::env::current_exe()?;
    let raw = listener.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.args(flags.daemon_args())
        .env("RSHIM_SOCKET", address)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls (setsid,
    // fcntl, dup2) run, and `start` is single-threaded.
    unsafe {
        cmd.pre_exec(move || {
            // Our own session: containerd's signals to its process group must not reach us.
            libc::setsid();
            if raw == LISTENER_FD {
                let f = libc::fcntl(raw, libc::F_GETFD);
                libc::fcntl(raw, libc::F_SETFD, f & !libc::FD_CLOEXEC);
            } else if libc::dup2(raw, LISTENER_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    Ok(cmd.spawn()?)
}

/// containerd 1.7 and 2.x (which set MAX_SHIM_VERSION=2) read a JSON reply
/// naming the task API version; containerd 1.6 only a plain address. 1.7
/// refuses version 3 ("unsupported shim version (3)") and 2.x still speaks
/// version 2, and the same handlers serve `containerd.task.v2.Task`: so the
/// reply names version 2 for both (3 only for a containerd that says 3).
fn reply(address: &str, max_version: u32) -> String {
    match max_version {
        0 | 1 => address.to_string(),
        2 => format!(r#"{{"version":2,"address":"{address}","protocol":"ttrpc"}}"#),
        _ => format!(r#"{{"version":3,"address":"{address}","protocol":"ttrpc"}}"#),
    }
}

/// containerd's options on stdin (see [`crate::options`]); read to the end
/// so it never blocks on us. Only `ShimCgroup` matters here: the rest is
/// checked at CreateTask, which carries the same options.
fn read_options() -> crate::options::Options {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        log::warn!("start: read runtime options from stdin: {e}");
    }
    match crate::options::Options::from_any_bytes(&bytes) {
        Ok((opts, any)) => {
            log::debug!(
                "start: runtime options {:?}: {opts:?}",
                any.as_ref().map_or("(none)", |a| a.type_url.as_str())
            );
            opts
        }
        // CreateTask refuses them with the same message.
        Err(e) => {
            log::warn!("start: {e}");
            Default::default()
        }
    }
}

pub fn run(flags: &Flags) -> Result<()> {
    let opts = read_options();
    crate::panic::test_point("start");
    let group = group_id(&flags.id);
    let addr = address::socket_address(&flags.address, &flags.namespace, &group);
    let path = address::socket_path(&addr);
    if let Some(listener) = listen(path)? {
        let mut daemon = spawn_daemon(flags, &listener, &addr)?;
        if !opts.shim_cgroup.is_empty() {
            if let Err(e) = crate::shim_cgroup::join(&opts.shim_cgroup, daemon.id()) {
                // Nothing of this start may stay: the daemon, its socket.
                let _ = daemon.kill();
                let _ = daemon.wait();
                let _ = std::fs::remove_file(path);
                return Err(e.into());
            }
        }
        let _ = std::fs::write("shim.pid", daemon.id().to_string());
    }
    std::fs::write("address", &addr).map_err(|e| format!("write address file: {e}"))?;
    let max = crate::protocol::max_shim_version_env();
    std::io::stdout().write_all(reply(&addr, max).as_bytes())?;
    Ok(())
}
