//! OOM-kill notifications: the v1 `memory.oom_control` eventfd, or on v2 the
//! `memory.events` files of the cgroup and of its parent, opened once when the
//! watch is made.
//!
//! v2: the kernel raises `oom_kill` before it sends the victim its SIGKILL
//! (mm/oom_kill.c: "raise event before sending signal: task reaper must see
//! this"), so once the victim is seen dead the count is final. It is read
//! through the fd opened at create time (`pread`), and waited for with
//! `POLLPRI`, which kernfs raises synchronously when the file changes (inotify
//! comes later, from a workqueue) — but at most every 20 ms per file
//! (cgroup_file_notify defers the rest to a timer). systemd removes an emptied
//! transient scope's cgroup at once, before the shim sees the exit (seen in the
//! guest nearly every time), and that removal drops a deferred notification and
//! makes every read of the open fd fail with ENODEV: a kill in those last 20 ms
//! would be lost. The parent's `memory.events` counts its children's kills too
//! (cgroup v2 counts them up the tree) and outlives the scope, so the watch
//! keeps a reading of both, taken together, renewed whenever either changes;
//! once the cgroup is gone, [`OomWatch::take_from_parent`] finds a kill there
//! that none of the cgroup's own readings explains.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{write, Cgroup};
use crate::error::{Error, Result};

/// A pollable fd (readable when something happened) and how to count what.
#[derive(Debug)]
pub struct OomWatch {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// v1: the eventfd counts OOM notifications.
    V1 { efd: OwnedFd },
    /// v2: an epoll fd over the `POLLPRI` of both files, and the counts.
    V2 {
        epoll: OwnedFd,
        scope: Events,
        parent: Option<Events>,
        counts: Mutex<Counts>,
    },
}

/// One open `memory.events`.
#[derive(Debug)]
struct Events {
    file: File,
    path: PathBuf,
}

impl Events {
    fn open(dir: &Path) -> Result<Events> {
        let path = dir.join("memory.events");
        // std opens with O_CLOEXEC.
        let file = File::open(&path).map_err(|e| Error::sys("open", path.display(), e))?;
        Ok(Events { file, path })
    }

    /// `oom_kill` (0 when the file has no such line). Reading also marks the
    /// file's current state seen, for POLLPRI.
    fn oom_kill(&self) -> Result<u64> {
        let mut buf = [0u8; 512];
        let n = self
            .file
            .read_at(&mut buf, 0)
            .map_err(|e| Error::sys("pread", self.path.display(), e))?;
        Ok(parse_oom_kill(&buf[..n]).unwrap_or(0))
    }
}

/// What has been taken: the cgroup's highest `oom_kill`, and the last reading
/// of the parent's `oom_kill` with the cgroup's count at that moment.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counts {
    taken: u64,
    parent: Option<(u64, u64)>,
}

impl AsRawFd for OomWatch {
    fn as_raw_fd(&self) -> RawFd {
        match &self.kind {
            Kind::V1 { efd } => efd.as_raw_fd(),
            Kind::V2 { epoll, .. } => epoll.as_raw_fd(),
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

/// Takes a reading of the cgroup (`now`, and the parent's `parent` when read
/// with it consistently): returns the kills not taken before (each once; a
/// stale, lower reading counts nothing) and renews the parent reading.
fn take_reading(c: &mut Counts, now: u64, parent: Option<u64>) -> u64 {
    let new = now.saturating_sub(c.taken);
    c.taken = c.taken.max(now);
    if let Some(p) = parent {
        c.parent = Some((p, c.taken));
    }
    new
}

/// The cgroup is gone and its process died: kills of the parent's count since
/// its last reading that the cgroup's own count (taken since that reading)
/// does not explain, at most one — the one that ended this process, so only
/// when it died of SIGKILL, as OOM victims do. A sibling's kill in the same
/// moment could be counted here; one long before is in the last reading.
fn take_from_parent_reading(c: &mut Counts, parent_now: u64, died_of_sigkill: bool) -> u64 {
    let Some((p, at)) = c.parent else {
        return 0;
    };
    // Another process's exit may be the victim's: leave the kill to it.
    if !died_of_sigkill {
        return 0;
    }
    let unexplained = parent_now
        .saturating_sub(p)
        .saturating_sub(c.taken.saturating_sub(at));
    let n = unexplained.min(1);
    c.taken += n;
    c.parent = Some((parent_now.max(p), c.taken));
    n
}

impl OomWatch {
    /// Drains the fd and returns how many OOM kills happened since the last
    /// call (v1: 1 if the OOM notifier fired, which counts OOM situations).
    /// Each kill is counted once, by whichever caller takes it first. On v2 an
    /// error says the cgroup's count could not be read (ENODEV: the cgroup is
    /// gone; see [`Self::take_from_parent`]).
    pub fn take(&self) -> Result<u64> {
        match &self.kind {
            Kind::V1 { efd } => {
                let mut buf = [0u8; 8];
                // SAFETY: reads into a live local buffer of the given length from our own fd.
                let n = unsafe { libc::read(efd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                Ok(u64::from(n == 8 && u64::from_ne_bytes(buf) > 0))
            }
            Kind::V2 {
                epoll,
                scope,
                parent,
                counts,
            } => {
                let mut c = counts.lock().unwrap();
                let r = reading(scope, parent.as_ref());
                drain(epoll);
                match r {
                    Ok((now, p)) => Ok(take_reading(&mut c, now, p)),
                    Err(e) => {
                        // A removed file polls ready for ever: stop waiting on it.
                        unwatch(epoll, &scope.file);
                        Err(e)
                    }
                }
            }
        }
    }

    /// For the exit of a process whose cgroup is gone (`take` failed): the
    /// kill that ended it, if the parent counted one that the cgroup's own
    /// readings do not explain and the process died of SIGKILL (0 or 1; v1
    /// and a cgroup without a readable parent: 0).
    pub fn take_from_parent(&self, died_of_sigkill: bool) -> Result<u64> {
        let Kind::V2 {
            epoll,
            parent: Some(parent),
            counts,
            ..
        } = &self.kind
        else {
            return Ok(0);
        };
        let mut c = counts.lock().unwrap();
        match parent.oom_kill() {
            Ok(now) => Ok(take_from_parent_reading(&mut c, now, died_of_sigkill)),
            Err(e) => {
                unwatch(epoll, &parent.file);
                Err(e)
            }
        }
    }

    /// True for the v2 (memory.events) kind.
    pub fn is_v2(&self) -> bool {
        matches!(self.kind, Kind::V2 { .. })
    }
}

/// The cgroup's count, and the parent's read between two equal readings of
/// the cgroup's (so that a kill of the cgroup is in both or in neither).
fn reading(scope: &Events, parent: Option<&Events>) -> Result<(u64, Option<u64>)> {
    let mut now = scope.oom_kill()?;
    let Some(parent) = parent else {
        return Ok((now, None));
    };
    for _ in 0..3 {
        let p = parent.oom_kill().ok();
        let again = scope.oom_kill()?;
        if again == now {
            return Ok((now, p));
        }
        now = again;
    }
    Ok((now, None))
}

/// Consumes the epoll fd's ready list (the files were just read).
fn drain(epoll: &OwnedFd) {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 2];
    // SAFETY: `evs` is a live array of the given length; timeout 0 never blocks.
    unsafe { libc::epoll_wait(epoll.as_raw_fd(), evs.as_mut_ptr(), evs.len() as i32, 0) };
}

fn unwatch(epoll: &OwnedFd, f: &File) {
    // SAFETY: both fds are ours and open; DEL takes no event (ENOENT when done before is fine).
    unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            f.as_raw_fd(),
            std::ptr::null_mut(),
        )
    };
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
    let scope = Events::open(dir)?;
    // The root cgroup has no memory.events: no parent reading then.
    let parent = dir
        .parent()
        .filter(|p| p.join("memory.events").exists())
        .map(Events::open)
        .transpose()?;
    let epoll = new_epoll()?;
    for e in std::iter::once(&scope).chain(parent.as_ref()) {
        // Level-triggered: ready until the file is read again.
        let mut ev = libc::epoll_event {
            events: libc::EPOLLPRI as u32,
            u64: 0,
        };
        // SAFETY: both fds are ours and open; `ev` outlives the call.
        let r = unsafe {
            libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                e.file.as_raw_fd(),
                &mut ev,
            )
        };
        if r < 0 {
            return Err(crate::error::last("epoll_ctl", e.path.display()));
        }
    }
    v2_of(epoll, scope, parent)
}

fn new_epoll() -> Result<OwnedFd> {
    // SAFETY: epoll_create1(2) takes plain flags.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(crate::error::last("epoll_create1", "OOM notification"));
    }
    // SAFETY: `fd` is a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The watch over open files (and an epoll fd that waits on them).
fn v2_of(epoll: OwnedFd, scope: Events, parent: Option<Events>) -> Result<OomWatch> {
    // Kills from before the watch (none for a new cgroup) are not news.
    let (now, p) = reading(&scope, parent.as_ref())?;
    let mut counts = Counts::default();
    take_reading(&mut counts, now, p);
    drain(&epoll);
    Ok(OomWatch {
        kind: Kind::V2 {
            epoll,
            scope,
            parent,
            counts: Mutex::new(counts),
        },
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
        let mut c = Counts::default();
        assert_eq!(take_reading(&mut c, 2, Some(10)), 2);
        assert_eq!(take_reading(&mut c, 2, None), 0, "taken once");
        assert_eq!(take_reading(&mut c, 3, None), 1);
        // A racing caller's older reading: nothing, and the mark stays.
        assert_eq!(take_reading(&mut c, 2, None), 0);
        assert_eq!(c.taken, 3);
        // The parent reading is renewed only by a consistent one.
        assert_eq!(c.parent, Some((10, 2)));
        assert_eq!(take_reading(&mut c, 5, Some(14)), 2);
        assert_eq!(c.parent, Some((14, 5)));
    }

    #[test]
    fn a_kill_only_the_parent_counted_is_the_exits_if_it_died_of_sigkill() {
        // Last reading: parent 10 with the cgroup at 2; the cgroup's own count
        // then rose to 3 (taken), and the cgroup is gone.
        let base = Counts {
            taken: 3,
            parent: Some((10, 2)),
        };
        // Parent 12: one kill is ours (taken), one is not explained: the exit's.
        let mut c = base;
        assert_eq!(take_from_parent_reading(&mut c, 12, true), 1);
        assert_eq!(c.taken, 4);
        assert_eq!(
            take_from_parent_reading(&mut c, 12, true),
            0,
            "counted once: the next exit finds nothing"
        );
        // Nothing unexplained: nothing, however the process died.
        let mut c = base;
        assert_eq!(take_from_parent_reading(&mut c, 11, true), 0);
        // Not SIGKILL: not an OOM victim; the kill stays for the victim's exit.
        let mut c = base;
        assert_eq!(take_from_parent_reading(&mut c, 12, false), 0);
        assert_eq!(c, base);
        assert_eq!(take_from_parent_reading(&mut c, 12, true), 1);
        // Many unexplained kills (siblings'): one exit is at most one kill.
        let mut c = base;
        assert_eq!(take_from_parent_reading(&mut c, 20, true), 1);
        // No parent reading ever taken: nothing to compare with.
        let mut c = Counts {
            taken: 1,
            parent: None,
        };
        assert_eq!(take_from_parent_reading(&mut c, 5, true), 0);
    }

    /// Plain files stand in for memory.events (rewritten in place, as the
    /// kernel's files change under their open fds; no epoll on them, which
    /// plain files do not support).
    fn fake(d: &Path) -> OomWatch {
        let open = |name: &str| Events {
            file: File::open(d.join(name)).unwrap(),
            path: d.join(name),
        };
        v2_of(
            new_epoll().unwrap(),
            open("memory.events"),
            Some(open("parent.events")),
        )
        .unwrap()
    }

    #[test]
    fn v2_counts_each_kill_once_through_the_open_fds() {
        let d = std::env::temp_dir().join(format!("rshim-oom-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let ev = |k: u64| std::fs::write(d.join("memory.events"), events_text(k)).unwrap();
        let parent = |k: u64| std::fs::write(d.join("parent.events"), events_text(k)).unwrap();
        ev(2);
        parent(7);
        let w = fake(&d);
        assert!(w.is_v2());
        assert_eq!(
            w.take().unwrap(),
            0,
            "kills before the watch are not reported"
        );
        ev(3);
        parent(8);
        assert_eq!(w.take().unwrap(), 1);
        assert_eq!(w.take().unwrap(), 0, "taken once");
        ev(5);
        parent(10);
        // The path is not read again: the open file is.
        std::fs::rename(d.join("memory.events"), d.join("moved")).unwrap();
        assert_eq!(w.take().unwrap(), 2);
        // All the parent's kills are the cgroup's, taken: none from the parent.
        assert_eq!(w.take_from_parent(true).unwrap(), 0);
        // One more in the parent only (the cgroup's files gone): that one.
        parent(11);
        assert_eq!(w.take_from_parent(true).unwrap(), 1);
        assert_eq!(w.take_from_parent(true).unwrap(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
