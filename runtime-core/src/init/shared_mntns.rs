//! A container without a mount namespace of its own (`linux.namespaces` has
//! no `mount` entry): runtime-spec says it inherits the runtime's, so it
//! shares the host's mount table. As runc does then, it gets its rootfs by
//! `chroot` instead of `pivot_root` (which needs a mount namespace to pivot).
//! No mount is made at all: [`crate::spec::check_without_mount_ns`] refused
//! every field that would need one, so nothing lands in the host's table.
//!
//! An exec into such a container joins the init's namespaces through its
//! pidfd; joining the (shared) mount namespace resets the root to the
//! namespace's, the host's `/`, so the exec then takes the init's root again.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{last, Error, Result};

/// `chroot` into `rootfs` (through an fd, so the path is resolved once),
/// after the createContainer hooks, which still see the host's paths.
pub fn enter(rootfs: &Path, before_root: &dyn Fn() -> Result<()>) -> Result<()> {
    before_root()?;
    let c = CString::new(rootfs.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; the fd is checked and owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last("open", format!("root.path {}", rootfs.display())));
    }
    // SAFETY: fd was just opened by us and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    chroot_to(fd.as_raw_fd(), &format!("root.path {}", rootfs.display()))
}

fn chroot_to(dir: RawFd, what: &str) -> Result<()> {
    // SAFETY: fchdir on an fd we hold; chroot/chdir take NUL-terminated literals.
    if unsafe { libc::fchdir(dir) } < 0 {
        return Err(last("fchdir", what));
    }
    // SAFETY: as above.
    if unsafe { libc::chroot(c".".as_ptr()) } < 0 {
        return Err(last("chroot", what));
    }
    // SAFETY: as above.
    if unsafe { libc::chdir(c"/".as_ptr()) } < 0 {
        return Err(last("chdir", format!("/ of {what}")));
    }
    Ok(())
}

/// The pid behind a pidfd, from its fdinfo.
fn pid_of(pidfd: RawFd) -> Result<i32> {
    let path = format!("/proc/self/fdinfo/{pidfd}");
    let info = std::fs::read_to_string(&path).map_err(|e| Error::sys("read", &path, e))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
        .filter(|&p: &i32| p > 0)
        .ok_or_else(|| Error::Init(format!("{path}: no live pid (the container init exited)")))
}

/// Before joining the init's namespaces: when it shares our mount namespace,
/// an fd of its root (its chroot), to take after the join.
pub fn init_root_if_shared(init: RawFd) -> Result<Option<OwnedFd>> {
    let pid = pid_of(init)?;
    let ns = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    let theirs = format!("/proc/{pid}/ns/mnt");
    if ns(&theirs).map_err(|e| Error::sys("stat", &theirs, e))?
        != ns("/proc/self/ns/mnt").map_err(|e| Error::sys("stat", "/proc/self/ns/mnt", e))?
    {
        return Ok(None);
    }
    let root = CString::new(format!("/proc/{pid}/root")).unwrap();
    // SAFETY: a NUL-terminated path; the fd is checked and owned below.
    let fd = unsafe {
        libc::open(
            root.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last(
            "open",
            format!("/proc/{pid}/root (the container's root)"),
        ));
    }
    // SAFETY: fd was just opened by us and is owned by nothing else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// After the join: back into the init's root (see [`init_root_if_shared`]).
pub fn join_root(root: OwnedFd) -> Result<()> {
    chroot_to(
        root.as_raw_fd(),
        "the container's root (no mount namespace)",
    )
}
