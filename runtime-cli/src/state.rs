//! What survives between CLI invocations: `<root>/<id>/state.json` and the
//! exec FIFO that a created init waits on until `start` opens it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

#[derive(Serialize, Deserialize)]
pub struct Saved {
    pub id: String,
    pub pid: i32,
    /// The init's start time (clock ticks, /proc/PID/stat field 22): a pid
    /// reused by another process is not mistaken for our init.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub created: String,
}

pub fn dir(root: &str, id: &str) -> PathBuf {
    Path::new(root).join(id)
}

pub fn fifo(root: &str, id: &str) -> PathBuf {
    dir(root, id).join("exec.fifo")
}

/// The exec FIFO, as runc makes it: mode 0622 (not subject to our umask) and
/// owned by the container's root, so that an init in a user namespace, as
/// mapped root, can reopen it for writing (through the fd the helper opened
/// before any namespace was joined: the state root itself is 0700 root's).
pub fn make_fifo(path: &Path, spec: &oci_spec::runtime::Spec) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(Error::sys(format!("mkfifo {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o622))
        .map_err(Error::io(format!("chmod {}", path.display())))?;
    let linux = spec.linux().as_ref();
    let (uid, gid) = (
        host_root(linux.and_then(|l| l.uid_mappings().as_deref())),
        host_root(linux.and_then(|l| l.gid_mappings().as_deref())),
    );
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(Error::io(format!(
        "chown {} to {uid}:{gid}",
        path.display()
    )))
}

/// The host id that container id 0 maps to (0 without a mapping).
pub fn host_root(maps: Option<&[oci_spec::runtime::LinuxIdMapping]>) -> u32 {
    maps.into_iter()
        .flatten()
        .find(|m| m.container_id() == 0 && m.size() > 0)
        .map_or(0, |m| m.host_id())
}

pub fn load(root: &str, id: &str) -> Result<Saved, Error> {
    let p = dir(root, id).join("state.json");
    let data =
        std::fs::read(&p).map_err(|_| Error::Status(format!("container {id} does not exist")))?;
    serde_json::from_slice(&data).map_err(Error::json(p.display().to_string()))
}

pub fn save(root: &str, s: &Saved) -> Result<(), Error> {
    let d = dir(root, &s.id);
    let tmp = d.join("state.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(s).unwrap())
        .map_err(Error::io(tmp.display().to_string()))?;
    std::fs::rename(&tmp, d.join("state.json")).map_err(Error::io("save state"))
}

pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// runc's statuses: created (waiting on the FIFO), running, paused, stopped.
pub fn status(root: &str, s: &Saved) -> &'static str {
    let alive = start_time(s.pid) == Some(s.start_time)
        && std::fs::read_to_string(format!("/proc/{}/stat", s.pid))
            .map(|st| {
                !st.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false);
    if !alive {
        "stopped"
    } else if fifo(root, &s.id).exists() {
        "created"
    } else if frozen(s) {
        "paused"
    } else {
        "running"
    }
}

fn frozen(s: &Saved) -> bool {
    let Ok(cg) = std::fs::read_to_string(format!("/proc/{}/cgroup", s.pid)) else {
        return false;
    };
    cg.lines()
        .filter_map(|l| l.split_once(":freezer:"))
        .any(|(_, path)| {
            std::fs::read_to_string(format!("/sys/fs/cgroup/freezer{path}/freezer.state"))
                .is_ok_and(|st| st.trim() == "FROZEN")
        })
}
