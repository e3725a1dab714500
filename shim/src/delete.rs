//! `delete`: containerd's clean-up after a shim that died (or never served).
//! Removes the container's processes, cgroup, rootfs mount and work dir, and
//! answers like a SIGKILLed init.

use std::io::Write;
use std::path::PathBuf;

use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::{Message, MessageField};

use crate::args::Flags;
use crate::{events, workdir};

/// The dead shim could not remove its socket. One that still answers belongs
/// to a live shim of the same pod and stays.
fn remove_dead_socket(bundle: &std::path::Path) {
    let Ok(addr) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = crate::address::socket_path(addr.trim());
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

pub fn run(flags: &Flags) -> Result<(), Box<dyn std::error::Error>> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir()?
    } else {
        PathBuf::from(&flags.bundle)
    };
    let pid: u32 = std::fs::read_to_string(workdir::path(&bundle).join("init.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if bundle.join("config.json").exists() {
        if let Err(e) = runtime_core::container::cleanup(&bundle, &flags.id) {
            eprintln!("delete {}: {e}", flags.id);
        }
    }
    runtime_core::rootfs_mount::unmount(&bundle.join("rootfs"))?;
    remove_dead_socket(&bundle);
    workdir::remove(&bundle)?;
    let resp = DeleteResponse {
        pid,
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: MessageField::some(events::now()),
        ..Default::default()
    };
    std::io::stdout().write_all(&resp.write_to_bytes()?)?;
    Ok(())
}
