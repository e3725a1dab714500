//! OOM-kill notifications: the v1 `memory.oom_control` eventfd, or on v2 the
//! `memory.events` file itself, opened once when the watch is made.
//!
//! v2: the kernel raises `oom_kill` before it sends the victim its SIGKILL
//! (mm/oom_kill.c: "raise event before sending signal: task reaper must see
//! this"), so once the victim is seen dead the count is final. The count is
//! read through the fd opened at create time, with `pread`, never by path:
//! a caller that reads as soon as the exit is seen (before anything else)
//! wins against systemd, which removes an emptied transient scope's cgroup a
//! moment later — after that removal every read says ENODEV, and a count not
//! read before it is lost. Waiting is `poll`/`epoll` for `POLLPRI` on that fd:
//! kernfs wakes pollers synchronously when the file changes (inotify, which it
//! delivers from a workqueue, comes later), at most every 20 ms per file
//! (cgroup_file_notify), so the exit is the check that cannot be late.
//! Removal wakes nobody: a waiter stops by other means (the init's exit).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{write, Cgroup};
use crate::error::{Error, Result};

/// A pollable fd and how to count what happened.
#[derive(Debug)]
pub struct OomWatch {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// v1: the eventfd (readable when it fired) counts OOM notifications.
    V1 { efd: OwnedFd },
    /// v2: `memory.events` open (`POLLPRI` when it changed), its path for
    /// messages, and the `oom_kill` count taken so far.
    V2 {
        events: File,
        path: PathBuf,
        seen: AtomicU64,
    },
}

impl AsRawFd for OomWatch {
    fn as_raw_fd(&self) -> RawFd {
        match &self.kind {
            Kind::V1 { efd } => efd.as_raw_fd(),
            Kind::V2 { events, .. } => events.as_raw_fd(),
        }
    }
}

/// The `oom_kill` count of a `memory.events` text; `None` if it has none.
fn parse_oom_kill(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// Kills in `now` not yet taken, given the highest count taken so far (raised
/// to `now`): each kill counted once, whoever reads first, and a stale
/// (lower) reading of a racing caller counts nothing.
fn take_new(seen: &AtomicU64, now: u64) -> u64 {
    now.saturating_sub(seen.fetch_max(now, Ordering::SeqCst))
}

impl OomWatch {
    /// Drains the fd and returns how many OOM kills happened since the last
    /// call (v1: 1 if the OOM notifier fired, which counts OOM situations).
    /// Each kill is counted once, by whichever caller takes it first. On v2 an
    /// error says the count could not be read (ENODEV: the cgroup is gone).
    pub fn take(&self) -> Result<u64> {
        match &self.kind {
            Kind::V1 { efd } => {
                let mut buf = [0u8; 8];
                // SAFETY: reads into a live local buffer of the given length from our own fd.
                let n = unsafe { libc::read(efd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                Ok(u64::from(n == 8 && u64::from_ne_bytes(buf) > 0))
            }
            Kind::V2 { events, path, seen } => {
                let now = read_oom_kill(events, path)?;
                Ok(take_new(seen, now))
            }
        }
    }

    /// True for the v2 kind, whose fd is waited for with `POLLPRI` (v1's with `POLLIN`).
    pub fn is_v2(&self) -> bool {
        matches!(self.kind, Kind::V2 { .. })
    }
}

/// `oom_kill` of the open `memory.events` (0 when the file has no such line).
fn read_oom_kill(events: &File, path: &Path) -> Result<u64> {
    let mut buf = [0u8; 512];
    let n = events
        .read_at(&mut buf, 0)
        .map_err(|e| Error::sys("pread", path.display(), e))?;
    Ok(parse_oom_kill(&buf[..n]).unwrap_or(0))
}

impl Cgroup {
    /// A watch that becomes ready when the kernel's OOM killer acts in this
    /// cgroup. `None` where no memory controller is available to the container.
    pub fn oom_watch(&self) -> Result<Option<OomWatch>> {
        if let Some(dir) = self.dir_of("memory") {
            return v1(dir).map(Some);
        }
        match self.unified() {
            Some(d) if d.join("memory.events").exists() => v2(d).map(Some),
            _ => Ok(None),
        }
    }
}

fn v1(dir: &Path) -> Result<OomWatch> {
    // SAFETY: eventfd(2) takes plain integers.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(crate::error::last("eventfd", "OOM notification"));
    }
    // SAFETY: `efd` is a new descriptor we own.
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    let ctl = dir.join("memory.oom_control");
    let oc = File::open(&ctl).map_err(|e| Error::sys("open", ctl.display(), e))?;
    // The registration holds its own references: both fds can be closed later.
    write(
        dir,
        "cgroup.event_control",
        &format!("{} {}", efd.as_raw_fd(), oc.as_raw_fd()),
    )?;
    Ok(OomWatch {
        kind: Kind::V1 { efd },
    })
}

fn v2(dir: &Path) -> Result<OomWatch> {
    let path = dir.join("memory.events");
    // std opens with O_CLOEXEC.
    let events = File::open(&path).map_err(|e| Error::sys("open", path.display(), e))?;
    // Kills from before the watch (none for a new cgroup) are not news. This
    // read also marks the file's current state seen, for POLLPRI.
    let seen = AtomicU64::new(read_oom_kill(&events, &path)?);
    Ok(OomWatch {
        kind: Kind::V2 { events, path, seen },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_text(k: u64) -> String {
        format!("low 0\nhigh 0\nmax 3\noom 1\noom_kill {k}\noom_group_kill 0\n")
    }

    #[test]
    fn oom_kill_is_parsed_by_its_own_key() {
        assert_eq!(parse_oom_kill(events_text(7).as_bytes()), Some(7));
        // oom_group_kill first must not be taken for oom_kill.
        assert_eq!(parse_oom_kill(b"oom_group_kill 4\noom_kill 2\n"), Some(2));
        assert_eq!(parse_oom_kill(b"low 0\nhigh 0\n"), None);
        assert_eq!(parse_oom_kill(b"oom_kill x\n"), None);
        assert_eq!(parse_oom_kill(&[0xff, 0xfe]), None);
    }

    #[test]
    fn each_kill_is_taken_once_and_stale_readings_count_nothing() {
        let seen = AtomicU64::new(2);
        assert_eq!(take_new(&seen, 2), 0, "kills before the watch");
        assert_eq!(take_new(&seen, 3), 1);
        assert_eq!(take_new(&seen, 3), 0, "taken once");
        // A racing caller's older reading: nothing, and the mark stays.
        assert_eq!(take_new(&seen, 2), 0);
        assert_eq!(take_new(&seen, 5), 2);
    }

    /// The counting through the fd opened once, on a plain file standing in
    /// for memory.events (rewritten in place, as the kernel's file changes
    /// under its open fd): once per kill, whoever takes it.
    #[test]
    fn v2_counts_each_kill_once_through_the_open_fd() {
        let d = std::env::temp_dir().join(format!("rshim-oom-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let ev = |k: u64| std::fs::write(d.join("memory.events"), events_text(k)).unwrap();
        ev(2);
        let w = v2(&d).unwrap();
        assert!(w.is_v2());
        assert_eq!(
            w.take().unwrap(),
            0,
            "kills before the watch are not reported"
        );
        ev(3);
        assert_eq!(w.take().unwrap(), 1);
        assert_eq!(w.take().unwrap(), 0, "taken once");
        ev(5);
        // The path is not read again: the open file is.
        std::fs::rename(d.join("memory.events"), d.join("moved")).unwrap();
        assert_eq!(w.take().unwrap(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
