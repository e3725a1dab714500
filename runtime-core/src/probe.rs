//! Probes of the kernel features runtime-core uses, each by trying the real
//! call in a way that changes nothing on the host (invalid arguments the
//! kernel rejects only if it knows the call, fds that are closed at once, a
//! detached mount that is never attached). For `containerd-shim-rust-v1
//! check`; never on a container's path.
//!
//! Each probe returns `Ok(detail)` or `Err(why)`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub type Probe = std::result::Result<String, String>;

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn missing(call: &str, e: std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOSYS) {
        format!("{call}: not implemented by this kernel (ENOSYS)")
    } else {
        format!("{call}: {e}")
    }
}

/// Takes ownership of a returned fd (closed on drop).
fn own(fd: libc::c_long, call: &str) -> std::result::Result<OwnedFd, String> {
    if fd < 0 {
        return Err(missing(call, errno()));
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// clone3 with a NULL argument: EFAULT/EINVAL where it exists, ENOSYS where not.
pub fn clone3() -> Probe {
    // SAFETY: a NULL clone_args with size 0 is rejected before any process is made.
    let r = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
    let e = errno();
    match (r, e.raw_os_error()) {
        (_, Some(libc::ENOSYS)) => Err(missing("clone3", e)),
        (r, _) if r < 0 => Ok("available (CLONE_PIDFD, CLONE_INTO_CGROUP)".into()),
        _ => Err("clone3 accepted a NULL argument".into()),
    }
}

pub fn pidfd_open() -> Probe {
    // SAFETY: pidfd_open of our own pid with no flags; the fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    own(fd, "pidfd_open").map(|_| "available".into())
}

/// close_range(CLOSE_RANGE_CLOEXEC), as the init uses it, on an fd range that
/// cannot be open: a no-op where it exists.
pub fn close_range() -> Probe {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: fds u32::MAX..=u32::MAX are beyond any fd table; nothing changes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            u32::MAX,
            u32::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(missing("close_range(CLOSE_RANGE_CLOEXEC)", errno()));
    }
    Ok("available (CLOSE_RANGE_CLOEXEC)".into())
}

/// openat2 of `/` with RESOLVE_IN_ROOT, as rootfs paths are resolved.
pub fn openat2() -> Probe {
    // struct open_how (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: a valid path and open_how of the size passed; the fd is owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c"/".as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    own(fd, "openat2").map(|_| "available (RESOLVE_IN_ROOT)".into())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// mount_setattr on fd -1: EBADF where it exists.
pub fn mount_setattr() -> Probe {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: an invalid dirfd; the kernel rejects it without touching a mount.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    let e = errno();
    if r < 0 && e.raw_os_error() == Some(libc::ENOSYS) {
        return Err(missing("mount_setattr", e));
    }
    Ok("available (recursive mount attributes)".into())
}

/// A user namespace with one mapping, held by a child process that waits
/// until the returned pipe end is closed. Returns (ns fd, child pid, pipe).
fn user_namespace() -> std::result::Result<(OwnedFd, libc::pid_t, OwnedFd), String> {
    let mut ready = [0; 2];
    let mut hold = [0; 2];
    // SAFETY: pipe2 fills the two-element arrays with fresh fds.
    if unsafe { libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) } != 0
        // SAFETY: the same for the second array.
        || unsafe { libc::pipe2(hold.as_mut_ptr(), libc::O_CLOEXEC) } != 0
    {
        return Err(format!("pipe2: {}", errno()));
    }
    // SAFETY: each fd was just returned by pipe2 and is owned once.
    let (ready_r, ready_w, hold_r, hold_w) = unsafe {
        (
            OwnedFd::from_raw_fd(ready[0]),
            OwnedFd::from_raw_fd(ready[1]),
            OwnedFd::from_raw_fd(hold[0]),
            OwnedFd::from_raw_fd(hold[1]),
        )
    };
    // SAFETY: `check` is single-threaded; the child only makes
    // async-signal-safe calls (unshare, write, read, _exit) on fds it inherited.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", errno()));
    }
    if pid == 0 {
        // SAFETY: see above; the child never returns into Rust code.
        unsafe {
            // The parent's ends: with our copy of the write end open, the
            // read below would never see EOF.
            libc::close(hold_w.as_raw_fd());
            libc::close(ready_r.as_raw_fd());
            let ok: u8 = (libc::unshare(libc::CLONE_NEWUSER) == 0) as u8;
            libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
            let mut b = 0u8;
            libc::read(hold_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop((ready_w, hold_r));
    let reap = |pid| {
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    };
    let mut ok = 0u8;
    // SAFETY: reads one byte into a local.
    let n = unsafe { libc::read(ready_r.as_raw_fd(), (&mut ok as *mut u8).cast(), 1) };
    if n != 1 || ok != 1 {
        drop(hold_w);
        reap(pid);
        return Err("unshare(CLONE_NEWUSER) failed in a child".into());
    }
    let setup = || -> std::io::Result<OwnedFd> {
        std::fs::write(format!("/proc/{pid}/uid_map"), "0 100000 1")?;
        std::fs::write(format!("/proc/{pid}/gid_map"), "0 100000 1")?;
        Ok(std::fs::File::open(format!("/proc/{pid}/ns/user"))?.into())
    };
    match setup() {
        Ok(ns) => Ok((ns, pid, hold_w)),
        Err(e) => {
            drop(hold_w);
            reap(pid);
            Err(format!("user namespace ID maps: {e}"))
        }
    }
}

/// An ID-mapped tmpfs: a detached mount (fsopen/fsmount, never attached to
/// any tree) given MOUNT_ATTR_IDMAP with a fresh user namespace.
pub fn idmapped_mounts() -> Probe {
    let (ns, pid, hold) = user_namespace()?;
    let result = (|| {
        let fstype = CString::new("tmpfs").unwrap();
        // SAFETY: fsopen with a valid name; the fd is owned below.
        let fs = own(
            unsafe {
                libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 1 /* CLOEXEC */)
            },
            "fsopen(tmpfs)",
        )?;
        // SAFETY: FSCONFIG_CMD_CREATE (6) takes no key or value.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                6,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            )
        };
        if r < 0 {
            return Err(missing("fsconfig(FSCONFIG_CMD_CREATE)", errno()));
        }
        // SAFETY: fsmount of the created context; the detached mount fd is owned below.
        let mnt = own(
            unsafe {
                libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), 1 /* CLOEXEC */, 0)
            },
            "fsmount",
        )?;
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: ns.as_raw_fd() as u64,
        };
        // SAFETY: a mount fd we own, an empty path with AT_EMPTY_PATH, an attr of the size passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                mnt.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if r < 0 {
            return Err(missing("mount_setattr(MOUNT_ATTR_IDMAP) on tmpfs", errno()));
        }
        Ok("available (an ID-mapped tmpfs was made, detached)".to_string())
    })();
    drop(hold);
    // SAFETY: waits for the namespace holder, our own child, which exits now.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    result
}

/// Loads (and closes) a two-instruction BPF_PROG_TYPE_CGROUP_DEVICE program
/// that allows everything: what the v2 device cgroup needs.
pub fn bpf_cgroup_device() -> Probe {
    // mov64 r0, 1; exit
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, 1, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ];
    let license = c"Apache-2.0";
    // The leading fields of union bpf_attr for BPF_PROG_LOAD; the rest zero.
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        rest: [u64; 14],
    }
    let attr = ProgLoad {
        prog_type: 15, // BPF_PROG_TYPE_CGROUP_DEVICE
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        rest: [0; 14],
    };
    // SAFETY: BPF_PROG_LOAD (5) with an attr of the size passed whose pointers
    // outlive the call; the program fd is owned (and closed) below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            5,
            &attr as *const ProgLoad,
            std::mem::size_of::<ProgLoad>(),
        )
    };
    own(fd, "bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE)").map(|_| "available".into())
}

/// SECCOMP_GET_ACTION_AVAIL for SECCOMP_RET_USER_NOTIF.
pub fn seccomp_notify() -> Probe {
    let action: u32 = 0x7fc0_0000;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL (2) reads one u32; no filter is installed.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, 2, 0, &action as *const u32) };
    if r < 0 {
        return Err(missing(
            "seccomp(SECCOMP_GET_ACTION_AVAIL, USER_NOTIF)",
            errno(),
        ));
    }
    Ok("available (SECCOMP_RET_USER_NOTIF)".into())
}

pub fn time_namespace() -> Probe {
    match std::fs::symlink_metadata("/proc/self/ns/time") {
        Ok(_) => Ok("available (/proc/self/ns/time)".into()),
        Err(e) => Err(format!("/proc/self/ns/time: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This project's kernels (6.1 guest, 6.18 host) have every one of them;
    /// as root, so are the privileged ones.
    #[test]
    fn every_probe_passes_on_a_current_kernel_as_root() {
        for (name, p) in [
            ("clone3", clone3 as fn() -> Probe),
            ("pidfd_open", pidfd_open),
            ("close_range", close_range),
            ("openat2", openat2),
            ("mount_setattr", mount_setattr),
            ("seccomp_notify", seccomp_notify),
            ("time_namespace", time_namespace),
        ] {
            assert!(p().is_ok(), "{name}: {:?}", p());
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert!(bpf_cgroup_device().is_ok(), "{:?}", bpf_cgroup_device());
        } else {
            // Straight to fd 2, past libtest's capture: the part not run is named.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: probe::tests::every_probe_passes_on_a_current_kernel_as_root \
                  (bpf_cgroup_device) needs root\n",
            );
        }
    }
}
