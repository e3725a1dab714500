//! Reaping orphans without stealing anyone's exit status.
//!
//! The shim is a child subreaper (as containerd's runc shim is): a process
//! that a container orphans is re-parented to the shim instead of escaping
//! to the machine's pid 1 (which here may not reap at all). That only
//! happens for processes outside a pid namespace of their own container
//! (a container in the host's pid namespace); inside a container's pid
//! namespace orphans go to that namespace's init, and the kernel kills them
//! all when it exits.
//!
//! Our own children (inits, execs, logging binaries) are each waited for on
//! their pidfd by the task that owns them. A global `waitpid(-1)` would race
//! those waits and steal statuses, so the orphan reaper instead:
//! - reaps only zombie children whose pid is not [`track`]ed, one by one
//!   with `waitpid(pid)`;
//! - runs only while it holds the [`spawning`] gate exclusively. Every place
//!   that creates children holds the gate shared until the child is tracked
//!   (or reaped by its creator, like the init helper or a hook), so a child
//!   that exits before it is tracked is never mistaken for an orphan.

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

static GATE: RwLock<()> = RwLock::new(());

/// Pids of children waited for elsewhere, with a count (a pid can be freed
/// and reused by another of our children before the first is untracked).
static TRACKED: Mutex<BTreeMap<i32, u32>> = Mutex::new(BTreeMap::new());

/// Held (shared) while creating children, until they are tracked or reaped.
pub fn spawning() -> RwLockReadGuard<'static, ()> {
    GATE.read().unwrap_or_else(|e| e.into_inner())
}

/// `pid` is our child and someone waits for it on its pidfd.
pub fn track(pid: i32) {
    *TRACKED.lock().unwrap().entry(pid).or_insert(0) += 1;
}

/// The waiter of `pid` has reaped it.
pub fn untrack(pid: i32) {
    let mut t = TRACKED.lock().unwrap();
    if let Some(n) = t.get_mut(&pid) {
        *n -= 1;
        if *n == 0 {
            t.remove(&pid);
        }
    }
}

/// Makes orphans of our descendants ours (PR_SET_CHILD_SUBREAPER).
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes only integers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps untracked zombie children whenever SIGCHLD arrives.
pub fn spawn() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigchld = signal(SignalKind::child())?;
    tokio::spawn(async move {
        while sigchld.recv().await.is_some() {
            // Children being created hold the gate; come back when they are tracked.
            while !reap_orphans() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    Ok(())
}

/// One pass over our children; false if the gate was busy (nothing done).
fn reap_orphans() -> bool {
    let Ok(_gate) = GATE.try_write() else {
        return false;
    };
    if !any_zombie_child() {
        return true; // the common case: a tracked child, already reaped by its waiter
    }
    let me = std::process::id() as i32;
    for pid in zombie_children(me) {
        if TRACKED.lock().unwrap().contains_key(&pid) {
            continue;
        }
        let mut status = 0;
        // This exact pid, which is an untracked zombie child: nobody else waits for it.
        // SAFETY: `status` is a live c_int that waitpid writes; the rest are integers.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            log::debug!("reaped orphan {pid} (wait status {status:#x})");
        }
    }
    true
}

/// Whether any child of ours has exited and is not reaped yet: a peek
/// (WNOWAIT) that reaps nothing, so it races no one.
fn any_zombie_child() -> bool {
    // SAFETY: siginfo_t is plain old data (integers and a union of integers), so all-zero is a
    // valid value; a zero si_pid is how "no child has exited" is told apart below.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a live, writable siginfo_t for the whole call; the rest are integers.
    let r = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: `info` is either still zeroed or was filled by waitid for a child, which is the
    // SIGCHLD layout whose pid field si_pid() reads.
    r == 0 && unsafe { info.si_pid() } != 0
}

/// Our children in state Z. Read from every /proc/N/stat: kernels without
/// CONFIG_PROC_CHILDREN (like this one) have no /proc/PID/task/TID/children.
fn zombie_children(me: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next(), f.next().and_then(|p| p.parse::<i32>().ok()));
        if state == Some("Z") && ppid == Some(me) {
            out.push(pid);
        }
    }
    out
}
