//! OOM-kill notifications: the v1 `memory.oom_control` eventfd, or on v2 an
//! inotify watch on `memory.events`, whose `oom_kill` counter the kernel
//! raises before it sends the victim its SIGKILL (mm/oom_kill.c: "raise event
//! before sending signal: task reaper must see this"), so a reaper that checks
//! after the exit always sees the kill that caused it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{write, Cgroup};
use crate::error::{Error, Result};

/// A pollable fd (readable when something happened) and how to count what.
#[derive(Debug)]
pub struct OomWatch {
    fd: OwnedFd,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// v1: the eventfd counts OOM notifications.
    V1,
    /// v2: `memory.events` of this directory, and the `oom_kill` count seen so far.
    V2 { dir: PathBuf, seen: AtomicU64 },
}

impl AsRawFd for OomWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn oom_kill(dir: &Path) -> u64 {
    crate::stats::read_keyed(dir, "memory.events")
        .get("oom_kill")
        .copied()
        .unwrap_or(0)
}

impl OomWatch {
    /// Drains the fd and returns how many OOM kills happened since the last
    /// call (v1: 1 if the OOM notifier fired, which counts OOM situations).
    /// Each kill is counted once, by whichever caller takes it first.
    pub fn take(&self) -> u64 {
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a live local buffer of the given length from our own fd.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match &self.kind {
            Kind::V1 => u64::from(n == 8 && u64::from_ne_bytes(buf[..8].try_into().unwrap()) > 0),
            Kind::V2 { dir, seen } => {
                // Drain every queued inotify event; the counter says what happened.
                // SAFETY: as above.
                while n > 0
                    // SAFETY: `buf` is a live buffer of buf.len() bytes and the
                    // inotify fd is owned by self for the whole call.
                    && unsafe {
                        libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                    } > 0
                {}
                let now = oom_kill(dir);
                let before = seen.fetch_max(now, Ordering::SeqCst);
                now.saturating_sub(before)
            }
        }
    }

    /// True for the v2 (memory.events) kind.
    pub fn is_v2(&self) -> bool {
        matches!(self.kind, Kind::V2 { .. })
    }
}

impl Cgroup {
    /// A watch that becomes readable when the kernel's OOM killer acts in this
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
    let oc = std::fs::File::open(&ctl).map_err(|e| Error::sys("open", ctl.display(), e))?;
    // The registration holds its own references: both fds can be closed later.
    write(
        dir,
        "cgroup.event_control",
        &format!("{} {}", efd.as_raw_fd(), oc.as_raw_fd()),
    )?;
    Ok(OomWatch {
        fd: efd,
        kind: Kind::V1,
    })
}

fn v2(dir: &Path) -> Result<OomWatch> {
    let events = dir.join("memory.events");
    // SAFETY: inotify_init1(2) takes plain flags.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(crate::error::last("inotify_init1", "OOM notification"));
    }
    // SAFETY: `fd` is a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Init(format!("{}: NUL in path", events.display())))?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) } < 0 {
        return Err(crate::error::last("inotify_add_watch", events.display()));
    }
    // Kills from before the watch (none for a new cgroup) are not news.
    let seen = AtomicU64::new(oom_kill(dir));
    Ok(OomWatch {
        fd,
        kind: Kind::V2 {
            dir: dir.to_path_buf(),
            seen,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counting, on a plain file standing in for memory.events (inotify
    /// works on any file): once per kill, whoever takes it.
    #[test]
    fn v2_counts_each_kill_once() {
        let d = std::env::temp_dir().join(format!("rshim-oom-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let ev = |k: u64| {
            std::fs::write(
                d.join("memory.events"),
                format!("low 0\nhigh 0\nmax 3\noom 1\noom_kill {k}\n"),
            )
            .unwrap()
        };
        ev(2);
        let w = v2(&d).unwrap();
        assert!(w.is_v2());
        assert_eq!(w.take(), 0, "kills before the watch are not reported");
        ev(3);
        assert_eq!(w.take(), 1);
        assert_eq!(w.take(), 0, "taken once");
        ev(5);
        assert_eq!(w.take(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
