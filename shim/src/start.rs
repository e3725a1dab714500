//! `start`: find or launch the shim for this container's group, print its address.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

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

fn spawn_daemon(flags: &Flags, listener: &UnixListener, address: &str) -> Result<u32> {
    let exe = std::env::current_exe()?;
    let raw = listener.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.args(flags.daemon_args())
        .env("RSHIM_SOCKET", address)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child between fork and exec, so it calls only
    // async-signal-safe functions (setsid, fcntl, dup2, errno) and allocates nothing (`start` is
    // single-threaded anyway); `raw` is the listener's fd, open while `listener` is borrowed, which
    // outlives spawn().
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
    Ok(cmd.spawn()?.id())
}

/// containerd 2.x understands a JSON reply naming the task API version;
/// containerd 1.x only a plain address.
fn reply(address: &str, v3: bool) -> String {
    if v3 {
        format!(r#"{{"version":3,"address":"{address}","protocol":"ttrpc"}}"#)
    } else {
        address.to_string()
    }
}

pub fn run(flags: &Flags) -> Result<()> {
    // containerd may pipe runtime options on stdin; read them so it never blocks on us.
    let mut opts = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut opts);
    let group = group_id(&flags.id);
    let addr = address::socket_address(&flags.address, &flags.namespace, &group);
    let path = address::socket_path(&addr);
    if let Some(listener) = listen(path)? {
        let pid = spawn_daemon(flags, &listener, &addr)?;
        let _ = std::fs::write("shim.pid", pid.to_string());
    }
    std::fs::write("address", &addr).map_err(|e| format!("write address file: {e}"))?;
    let v3 = crate::protocol::containerd_speaks_v3();
    std::io::stdout().write_all(reply(&addr, v3).as_bytes())?;
    Ok(())
}
