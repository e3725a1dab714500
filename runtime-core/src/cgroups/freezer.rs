//! Freezing (pause/resume): the v1 freezer's `freezer.state`, or v2
//! `cgroup.freeze` with its state read back from `cgroup.events`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::{write, Cgroup};
use crate::error::{Error, Result};

impl Cgroup {
    /// Where freezing happens: (dir, file to write, value, file to read, value read when done).
    fn freezer(
        &self,
        frozen: bool,
    ) -> Option<(
        &Path,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    )> {
        if let Some(d) = self.dir_of("freezer") {
            let v = if frozen { "FROZEN" } else { "THAWED" };
            return Some((d, "freezer.state", v, "freezer.state", v));
        }
        let d = self.unified()?;
        let v = if frozen { "1" } else { "0" };
        let done = if frozen { "frozen 1" } else { "frozen 0" };
        Some((d, "cgroup.freeze", v, "cgroup.events", done))
    }

    /// True when the cgroup is frozen (or freezing).
    pub fn is_frozen(&self) -> bool {
        match self.freezer(true) {
            Some((d, "freezer.state", ..)) => {
                fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() != "THAWED")
            }
            Some((d, ..)) => {
                fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            }
            None => false,
        }
    }

    pub fn thaw_if_frozen(&self) {
        if self.is_frozen() {
            if let Err(e) = self.freeze(false) {
                log::warn!("thaw {} after SIGKILL: {e}", self.rel.display());
            }
        }
    }

    /// Freezes (`true`) or thaws every process in the cgroup: the v1 freezer or
    /// v2 `cgroup.freeze`. Returns once the kernel reports the new state.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let (dir, file, value, state_file, done) =
            self.freezer(frozen).ok_or_else(|| Error::Cgroup {
                path: self.rel.display().to_string(),
                msg: "no freezer: neither the v1 freezer nor cgroup v2 is mounted".into(),
            })?;
        write(dir, file, value)?;
        // Freezing is asynchronous: wait until every task is stopped.
        for _ in 0..1000 {
            let state = fs::read_to_string(dir.join(state_file)).unwrap_or_default();
            let reached = if state_file == "cgroup.events" {
                state.lines().any(|l| l == done)
            } else {
                state.trim() == done
            };
            if reached {
                return Ok(());
            }
            if frozen && state.trim() == "FREEZING" {
                // Retrying the write nudges tasks that were in an uninterruptible sleep.
                write(dir, file, value)?;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(Error::Cgroup {
            path: self.rel.display().to_string(),
            msg: format!("{file} did not reach {done}"),
        })
    }
}
