//! What survives between CLI invocations: `<root>/<id>/state.json` and the
//! exec FIFO that a created init waits on until `start` opens it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

pub fn load(root: &str, id: &str) -> Result<Saved, String> {
    let p = dir(root, id).join("state.json");
    let data = std::fs::read(&p).map_err(|_| format!("container {id} does not exist"))?;
    serde_json::from_slice(&data).map_err(|e| format!("{}: {e}", p.display()))
}

pub fn save(root: &str, s: &Saved) -> Result<(), String> {
    let d = dir(root, &s.id);
    let tmp = d.join("state.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(s).unwrap())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, d.join("state.json")).map_err(|e| format!("save state: {e}"))
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
