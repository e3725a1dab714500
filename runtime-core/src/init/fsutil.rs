//! Path handling inside the rootfs through fds, never following a symlink out.
//!
//! Every lookup below the rootfs uses `openat2(RESOLVE_IN_ROOT)`, so `..` and
//! absolute symlinks resolve as if the rootfs were `/`. Mounts then target the
//! opened fd through its `/proc/self/fd/N` magic link, so the kernel mounts on
//! exactly the object we checked, even if a component is swapped afterwards.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys;

pub fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// `/proc/self/fd/N` for a mount source or target.
pub fn fd_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
}

/// The path relative to the rootfs, with `.` and leading `/` removed.
fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect()
}

pub fn open(root: RawFd, path: &Path, flags: i32) -> std::io::Result<OwnedFd> {
    let rel = relative(path);
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    sys::openat2_in_root(root, &cstr(&rel), flags, 0)
}

/// `mkdir -p` inside the rootfs; returns an `O_PATH` fd of the directory.
pub fn mkdir_all(root: RawFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    let mut cur = PathBuf::new();
    let mut dir = open(root, &cur, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| Error::sys("openat2", "rootfs", e))?;
    for comp in relative(path).components() {
        cur.push(comp);
        match open(root, &cur, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => dir = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let name = CString::new(comp.as_os_str().as_bytes()).unwrap();
                // mkdirat never follows a symlink in its last component.
                // SAFETY: `dir` owns an open directory fd and `name` is a live NUL-terminated
                // CString; mode is an integer.
                if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) } < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(Error::sys(
                            "mkdirat",
                            format!("{} in rootfs", cur.display()),
                            e,
                        ));
                    }
                }
                dir = open(root, &cur, libc::O_PATH | libc::O_DIRECTORY).map_err(|e| {
                    if e.raw_os_error() == Some(libc::ENOENT) {
                        // mkdirat found something: a symlink whose target (resolved
                        // inside the rootfs) does not exist. Never create through it.
                        return Error::Init(format!(
                            "/{} in rootfs is a dangling symlink (its target, resolved inside the rootfs, does not exist): refusing to create through it",
                            cur.display()
                        ));
                    }
                    Error::sys("openat2", format!("{} in rootfs", cur.display()), e)
                })?;
            }
            Err(e) => {
                return Err(Error::sys(
                    "openat2",
                    format!("{} in rootfs", cur.display()),
                    e,
                ))
            }
        }
    }
    Ok(dir)
}

/// Makes sure `path` exists as a directory or (for file bind mounts) a file,
/// and returns an `O_PATH` fd of it.
pub fn ensure(root: RawFd, path: &Path, is_dir: bool) -> Result<OwnedFd> {
    if is_dir {
        return mkdir_all(root, path, 0o755);
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    mkdir_all(root, parent, 0o755)?;
    match open(root, path, libc::O_PATH) {
        Ok(fd) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            // O_CREAT|O_EXCL under RESOLVE_IN_ROOT creates inside the rootfs or fails.
            let fd = open(root, path, libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY)
                .or_else(|_| open(root, path, libc::O_PATH))
                .map_err(|e| {
                    Error::sys(
                        "openat2(O_CREAT)",
                        format!("{} in rootfs", path.display()),
                        e,
                    )
                })?;
            drop(fd);
            open(root, path, libc::O_PATH)
                .map_err(|e| Error::sys("openat2", format!("{} in rootfs", path.display()), e))
        }
        Err(e) => Err(Error::sys(
            "openat2",
            format!("{} in rootfs", path.display()),
            e,
        )),
    }
}

pub fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
    what: &dyn std::fmt::Display,
) -> Result<()> {
    // SAFETY: each pointer is null or comes from a `&CStr` borrowed for the whole call, so it is
    // live and NUL-terminated (the kernel reads `data` as a string too).
    let r = unsafe {
        libc::mount(
            src.map_or(std::ptr::null(), |s| s.as_ptr()),
            target.as_ptr(),
            fstype.map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    if r < 0 {
        return Err(crate::error::last("mount", what));
    }
    Ok(())
}

pub fn fstat(fd: RawFd) -> std::io::Result<libc::stat> {
    // SAFETY: `struct stat` is plain old data (integers only), so all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let empty = c"";
    // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH, and `st` is a live, writable `struct
    // stat`.
    if unsafe { libc::fstatat(fd, empty.as_ptr(), &mut st, libc::AT_EMPTY_PATH) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

/// The mount flags that are locked on an existing mount and must be kept on remount.
pub fn locked_flags(fd: RawFd) -> libc::c_ulong {
    // SAFETY: `struct statvfs` is plain old data (integers only), so all-zero is a valid value.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `sv` is a live, writable `struct statvfs`; the fd is only an integer to the kernel.
    if unsafe { libc::fstatvfs(fd, &mut sv) } < 0 {
        return 0;
    }
    let mut flags = 0;
    for (st, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if sv.f_flag & st != 0 {
            flags |= ms;
        }
    }
    flags
}
