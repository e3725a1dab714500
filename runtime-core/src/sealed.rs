//! The binary that enters containers is a sealed in-memory copy of ourselves.
//!
//! Why: the helper runs inside the container's namespaces before `execve`. If
//! it ran from our on-disk file, a process in the container could open
//! `/proc/<helper>/exe` and overwrite the shim binary on the host
//! (CVE-2019-5736, the runc escape). A memfd sealed against writes, growth and
//! shrinking cannot be modified by anyone, so there is nothing to overwrite.
//! A fresh copy is made for every helper and closed once the helper has
//! exec'd from it: an idle shim holds no copy (2–3 MB of shared memory each
//! otherwise), at the cost of one in-kernel file copy per create or exec.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{last, Error, Result};

/// A sealed, executable copy of our own binary. Run it through
/// `/proc/self/fd/N` ([`path`]); it is close-on-exec, and `execve` holds the
/// file open for the new image, so it can be dropped once the child exec'd.
pub fn copy() -> Result<OwnedFd> {
    let name = CString::new("containerd-shim-rust-v1").unwrap();
    // SAFETY: `name` is a live NUL-terminated CString; flags are integers.
    let raw = unsafe {
        libc::memfd_create(
            name.as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_EXEC,
        )
    };
    let raw = if raw < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 do not know MFD_EXEC.
        // SAFETY: `name` is a live NUL-terminated CString; flags are integers.
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) }
    } else {
        raw
    };
    if raw < 0 {
        return Err(last("memfd_create", "sealed shim binary"));
    }
    // SAFETY: `raw` was just returned by memfd_create (checked >= 0 above) and is owned by nobody
    // else.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut src =
        File::open("/proc/self/exe").map_err(|e| Error::sys("open", "/proc/self/exe", e))?;
    let mut dst = File::from(
        memfd
            .try_clone()
            .map_err(|e| Error::sys("dup", "memfd", e))?,
    );
    io::copy(&mut src, &mut dst).map_err(|e| Error::sys("copy", "/proc/self/exe to memfd", e))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS takes integers, on the memfd that `memfd` owns.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(last("fcntl(F_ADD_SEALS)", "sealed shim binary"));
    }
    Ok(memfd)
}

/// Path that executes the sealed copy `fd`.
pub fn path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// True when `fd` carries every seal we rely on (used by tests and by `init`).
pub fn is_sealed(fd: i32) -> bool {
    // SAFETY: F_GET_SEALS takes only integers (a bad fd fails with EBADF).
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    let want = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    seals >= 0 && seals & want == want
}
