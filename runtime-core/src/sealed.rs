//! The binary that enters containers is a sealed in-memory copy of ourselves.
//!
//! Why: the helper runs inside the container's namespaces before `execve`. If
//! it ran from our on-disk file, a process in the container could open
//! `/proc/<helper>/exe` and overwrite the shim binary on the host
//! (CVE-2019-5736, the runc escape). A memfd sealed against writes, growth and
//! shrinking cannot be modified by anyone, so there is nothing to overwrite.
//! One copy is made lazily per shim process and reused for every container.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

use crate::error::{last, Error, Result};

static SEALED: OnceLock<OwnedFd> = OnceLock::new();

/// Path that executes the sealed copy (`/proc/self/fd/N`).
pub fn exe_path() -> Result<String> {
    if let Some(fd) = SEALED.get() {
        return Ok(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    }
    let fd = seal_self()?;
    // Another thread may have won the race; either copy is fine.
    let fd = SEALED.get_or_init(|| fd);
    Ok(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn seal_self() -> Result<OwnedFd> {
    let name = CString::new("containerd-shim-rust-v1").unwrap();
    let raw = unsafe {
        libc::memfd_create(
            name.as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_EXEC,
        )
    };
    let raw = if raw < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 do not know MFD_EXEC.
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) }
    } else {
        raw
    };
    if raw < 0 {
        return Err(last("memfd_create", "sealed shim binary"));
    }
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
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(last("fcntl(F_ADD_SEALS)", "sealed shim binary"));
    }
    Ok(memfd)
}

/// True when `fd` carries every seal we rely on (used by tests and by `init`).
pub fn is_sealed(fd: i32) -> bool {
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    let want = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    seals >= 0 && seals & want == want
}
