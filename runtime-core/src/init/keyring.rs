//! The container's own session keyring, as runc gives every container: without
//! it the container's processes would share the session keyring of whoever
//! started the runtime (the shim's), and could read or link its keys.

use crate::error::{Error, Result};

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
const KEYCTL_SETPERM: libc::c_long = 5;
const KEYCTL_DESCRIBE: libc::c_long = 6;
/// Possessor: all; user (same uid): view, read, search. Nobody else.
const PERM: u32 = 0x3f0b_0000;

/// Joins a new session keyring named `_ses.<id>` (the init, and each exec).
pub fn join_new(id: &str) -> Result<()> {
    let what = "the container's session keyring";
    let name = std::ffi::CString::new(format!("_ses.{id}"))
        .map_err(|_| Error::Init("NUL in id".into()))?;
    // SAFETY: `name` is a live NUL-terminated CString that outlives the call; the other arguments
    // are integers.
    let serial =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if serial < 0 {
        let e = std::io::Error::last_os_error();
        // Kernels without keyrings: there is nothing to share, nothing to isolate.
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return Ok(());
        }
        return Err(Error::sys("keyctl(JOIN_SESSION_KEYRING)", what, e));
    }
    // SAFETY: KEYCTL_SETPERM takes only integers (the keyring's serial and the permission mask).
    if unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, serial, PERM) } < 0 {
        return Err(crate::error::last("keyctl(SETPERM)", what));
    }
    Ok(())
}

/// `type;uid;gid;perm;description` of the calling process's session keyring.
pub fn describe_session() -> Option<String> {
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    let mut buf = vec![0u8; 256];
    // SAFETY: the kernel writes at most `buf.len()` bytes to `buf.as_mut_ptr()`, a live,
    // initialised buffer of exactly that length.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            KEY_SPEC_SESSION_KEYRING,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    buf.truncate((n as usize).min(buf.len()).saturating_sub(1));
    String::from_utf8(buf).ok()
}
