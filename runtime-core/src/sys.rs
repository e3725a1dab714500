//! Thin raw-syscall wrappers for calls that `nix`/`libc` do not wrap, or whose
//! libc wrappers are unsafe in our context (see the crate docs on fork safety).

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Result of [`clone3_fork`] as seen by each side.
pub enum Forked {
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
    Child,
}

/// fork-like `clone3` (no new stack) that always returns a pidfd.
///
/// # Safety
/// The caller must be single-threaded: the child continues with a copy of the
/// parent's memory and runs arbitrary Rust code.
pub unsafe fn clone3_fork(flags: u64) -> io::Result<Forked> {
    // SAFETY: our caller guarantees clone3_fork_into's contract (single-threaded).
    unsafe { clone3_fork_into(flags, None) }
}

/// `CLONE_INTO_CGROUP` (Linux 5.7): the child starts in this cgroup v2 directory.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// [`clone3_fork`] with the child born in the cgroup v2 directory `cgroup`
/// (an fd opened on it) instead of the caller's.
///
/// # Safety
/// As [`clone3_fork`].
pub unsafe fn clone3_fork_into(flags: u64, cgroup: Option<RawFd>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let into = cgroup.map_or(0, |_| CLONE_INTO_CGROUP);
    let mut args = CloneArgs {
        flags: flags | into | libc::CLONE_PIDFD as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        pidfd: &mut pidfd as *mut RawFd as u64,
        // With CLONE_PARENT the kernel uses the caller's own exit signal.
        exit_signal: if flags & libc::CLONE_PARENT as u64 != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    // SAFETY: `args` is a live, initialised `struct clone_args` of the size passed, and its
    // `pidfd` field points at the live local `pidfd`, which the kernel writes; with no new stack
    // the child goes on with a copy of this one, and the caller's guarantee that this process is
    // single-threaded (see # Safety) makes running Rust code in that copy sound.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    })?;
    if ret == 0 {
        Ok(Forked::Child)
    } else {
        Ok(Forked::Parent {
            pid: ret as libc::pid_t,
            // SAFETY: in the parent a successful clone3 with CLONE_PIDFD stored a new pidfd in
            // `pidfd`; nothing else owns it.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        })
    }
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes only integers and touches no memory of ours.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: `check` passed, so `fd` is the new pidfd pidfd_open just returned, owned by nobody
    // else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes integers and a siginfo pointer that may be null (the kernel
    // then fills in a default, as kill does).
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(|_| ())
}

/// `waitid(P_PIDFD, …)`; returns `None` with `WNOHANG` when still running.
pub fn waitid_pidfd(pidfd: RawFd, nohang: bool) -> io::Result<Option<libc::siginfo_t>> {
    const P_PIDFD: libc::idtype_t = 3;
    // SAFETY: siginfo_t is plain old data (integers and a union of integers), so all-zero is a
    // valid value; a zero si_pid is also how WNOHANG's "still running" is told apart below.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: `info` is a live, writable siginfo_t for the whole call; the pidfd is passed as
        // an integer (the callers' Pidfd keeps it open).
        let r = unsafe { libc::waitid(P_PIDFD, pidfd as libc::id_t, &mut info, flags) };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // SAFETY: `info` is either still zeroed or was filled by waitid for a child, which is the
    // SIGCHLD layout whose pid field si_pid() reads.
    if unsafe { info.si_pid() } == 0 {
        return Ok(None);
    }
    Ok(Some(info))
}

/// Marks every fd from `first` up close-on-exec.
///
/// `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11) does it in one call; on a
/// kernel without it (`ENOSYS`, or `EINVAL` for the flag on 5.9/5.10) every
/// fd listed in `/proc/self/fd` is marked one by one, as runc does.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes no pointers; CLOEXEC only sets fd flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    match check(r) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) => {
            cloexec_from_proc(first)
        }
        Err(e) => Err(e),
    }
}

/// The `/proc/self/fd` walk behind [`cloexec_from`] (also its test).
pub(crate) fn cloexec_from_proc(first: u32) -> io::Result<()> {
    // Collected first: the directory's own fd must stay open while it is read,
    // and setting a flag on it (or on fds that close meanwhile) is harmless.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &RawFd| fd >= first as RawFd)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD take an int and touch only this fd's flags;
        // an fd closed since the listing fails with EBADF, which is ignored.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        // SAFETY: as above, on the same integer fd.
        if flags >= 0 && unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBADF) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Raw `setgroups`: glibc's wrapper broadcasts to all threads with a lock
/// (`__nptl_setxid`), which must not run after a fork of a threaded process.
pub fn setgroups(gids: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the kernel reads `gids.len()` gid_t values from `gids.as_ptr()`, a live slice of
    // exactly that length.
    check(unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) }).map(|_| ())
}

/// Raw `setresgid` (see [`setgroups`] for why raw).
pub fn setresgid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: setresgid takes only integers (the raw syscall, so no libc lock is taken).
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(|_| ())
}

/// Raw `setresuid` (see [`setgroups`] for why raw).
pub fn setresuid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: setresuid takes only integers (the raw syscall, so no libc lock is taken).
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(|_| ())
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: both pointers come from `&CStr`s borrowed for the whole call, so they are live and
    // NUL-terminated.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(|_| ())
}

/// `openat2` with `RESOLVE_IN_ROOT`: `path` is resolved as if `root` were `/`,
/// so neither `..` nor an absolute symlink can leave it. Magic links
/// (`/proc/*/fd/*`) are refused too.
pub fn openat2_in_root(root: RawFd, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    openat2(
        root,
        path,
        flags,
        mode,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// `openat2` with the given `RESOLVE_*` flags (always `O_CLOEXEC`).
pub fn openat2(
    dir: RawFd,
    path: &CStr,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // Our own layout of `struct open_how` (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & libc::O_CREAT != 0 {
            mode as u64
        } else {
            0
        },
        resolve,
    };
    loop {
        // SAFETY: `path` is a live NUL-terminated string and `how` a live `struct open_how` whose
        // size is the size argument, so the kernel reads exactly that object.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check(r) {
            // SAFETY: `check` passed, so `fd` is the new fd openat2 just returned, owned by nobody
            // else.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            // The kernel asks for a retry when a rename raced the lookup.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fallback_marks_inherited_fds_cloexec() {
        // SAFETY: dup of stdin; the result is checked and closed below.
        let fd = unsafe { libc::dup(0) };
        assert!(fd >= 0);
        assert_eq!(
            // SAFETY: F_GETFD on the fd just made.
            unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC,
            0
        );
        // Only fds from ours up: the test harness's own fds below stay as they are.
        cloexec_from_proc(fd as u32).unwrap();
        // SAFETY: as above.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        // SAFETY: closing the fd made above, used by nothing else.
        unsafe { libc::close(fd) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }
}
