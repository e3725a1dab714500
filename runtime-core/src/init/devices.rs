//! `/dev` contents and the v1 device cgroup.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, Spec};

use super::fsutil;
use crate::error::{Error, Result};

/// The devices every container gets (runtime-spec "Default Devices").
/// In runc's order (mount order shows in mountinfo with a user namespace).
const DEFAULT: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("random", 1, 8),
    ("full", 1, 7),
    ("tty", 5, 0),
    ("zero", 1, 5),
    ("urandom", 1, 9),
];

const SYMLINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// A device node to create.
#[derive(Clone, Copy)]
struct Node {
    kind: libc::mode_t,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// Creates a device node at `path` (inside the rootfs) and checks the result:
/// the node we then use must be exactly the device asked for.
fn mknod(root: RawFd, path: &Path, n: &Node) -> Result<()> {
    let Node {
        kind,
        major,
        minor,
        mode,
        uid,
        gid,
    } = *n;
    let what = format!("device {}", path.display());
    let parent = fsutil::mkdir_all(root, path.parent().unwrap_or(Path::new("/")), 0o755)?;
    let name = CString::new(path.file_name().unwrap_or_default().as_encoded_bytes()).unwrap();
    let dev = libc::makedev(major as u32, minor as u32);
    // SAFETY: `parent` owns an open directory fd and `name` is a live NUL-terminated CString; the
    // rest are integers.
    let r = unsafe {
        libc::mknodat(
            parent.as_raw_fd(),
            name.as_ptr(),
            kind | (mode & 0o7777),
            dev,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            // Replace whatever the image had there (it may be a symlink or a regular file).
            // SAFETY: `parent` owns an open directory fd and `name` is a live NUL-terminated
            // CString.
            unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), 0) };
            // SAFETY: `parent` owns an open directory fd and `name` is a live NUL-terminated
            // CString; the rest are integers.
            if unsafe {
                libc::mknodat(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    kind | (mode & 0o7777),
                    dev,
                )
            } < 0
            {
                return Err(crate::error::last("mknodat", &what));
            }
        } else {
            return Err(Error::sys("mknodat", &what, e));
        }
    }
    // mknod is subject to the umask; set the exact mode and owner.
    // SAFETY: `parent` owns an open directory fd and `name` is a live NUL-terminated CString; mode
    // and flags are integers.
    if unsafe { libc::fchmodat(parent.as_raw_fd(), name.as_ptr(), mode & 0o7777, 0) } < 0 {
        return Err(crate::error::last("fchmodat", &what));
    }
    // SAFETY: `parent` owns an open directory fd and `name` is a live NUL-terminated CString; the
    // rest are integers.
    if unsafe {
        libc::fchownat(
            parent.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } < 0
    {
        return Err(crate::error::last("fchownat", &what));
    }
    let fd = fsutil::open(root, path, libc::O_PATH | libc::O_NOFOLLOW)
        .map_err(|e| Error::sys("openat2", &what, e))?;
    let st = fsutil::fstat(fd.as_raw_fd()).map_err(|e| Error::sys("fstat", &what, e))?;
    if st.st_mode & libc::S_IFMT != kind || st.st_rdev != dev {
        return Err(Error::Init(format!(
            "{what}: created node is not {major}:{minor}"
        )));
    }
    Ok(())
}

/// In a user namespace `mknod` is not allowed: bind the host's node instead
/// (as runc does), onto an empty file created inside the rootfs.
fn bind_host_node(root: RawFd, path: &Path) -> Result<()> {
    let what = format!(
        "device {} (bind from the host, user namespace)",
        path.display()
    );
    // Whatever the image has there that is not a plain file (a symlink, maybe
    // to a procfs file) is removed, so the bind lands on our own empty file.
    if let Ok(fd) = fsutil::open(root, path, libc::O_PATH | libc::O_NOFOLLOW) {
        let st = fsutil::fstat(fd.as_raw_fd()).map_err(|e| Error::sys("fstat", &what, e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            let parent = fsutil::mkdir_all(root, path.parent().unwrap_or(Path::new("/")), 0o755)?;
            let name =
                CString::new(path.file_name().unwrap_or_default().as_encoded_bytes()).unwrap();
            // SAFETY: `parent` owns an open directory fd and `name` is a live NUL-terminated
            // CString.
            if unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), 0) } < 0 {
                return Err(crate::error::last("unlinkat", &what));
            }
        }
    }
    let target = fsutil::ensure(root, path, false)?;
    let src = fsutil::cstr(path);
    fsutil::mount(
        Some(&src),
        &fsutil::fd_path(&target),
        None,
        libc::MS_BIND,
        None,
        &what,
    )
}

pub fn populate(root: RawFd, spec: &Spec, userns: bool) -> Result<()> {
    if userns {
        for (name, _, _) in DEFAULT {
            bind_host_node(root, &Path::new("/dev").join(name))?;
        }
        for d in spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            bind_host_node(root, d.path())?;
        }
        return symlinks(root);
    }
    for (name, major, minor) in DEFAULT {
        let node = Node {
            kind: libc::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        mknod(root, &Path::new("/dev").join(name), &node)?;
    }
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::unsupported(
                    format!("linux.devices[{}].type", d.path().display()),
                    "\"a\" is only valid in cgroup rules",
                ))
            }
        };
        let node = Node {
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        mknod(root, d.path(), &node)?;
    }
    symlinks(root)
}

fn symlinks(root: RawFd) -> Result<()> {
    let dev = fsutil::mkdir_all(root, Path::new("/dev"), 0o755)?;
    let mut links: Vec<(&str, &str)> = SYMLINKS.to_vec();
    // /dev/ptmx must lead to the container's own devpts instance.
    if fsutil::open(
        root,
        Path::new("/dev/pts/ptmx"),
        libc::O_PATH | libc::O_NOFOLLOW,
    )
    .is_ok()
    {
        links.push(("ptmx", "pts/ptmx"));
    }
    for (name, target) in links {
        let n = CString::new(name).unwrap();
        let t = CString::new(target).unwrap();
        if name == "ptmx" {
            // SAFETY: `dev` owns an open fd of /dev and `n` is a live NUL-terminated CString.
            unsafe { libc::unlinkat(dev.as_raw_fd(), n.as_ptr(), 0) };
        }
        // SAFETY: `t` and `n` are live NUL-terminated CStrings and `dev` owns an open fd of /dev.
        if unsafe { libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), n.as_ptr()) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(Error::sys("symlinkat", format!("/dev/{name}"), e));
            }
        }
    }
    Ok(())
}

/// The devices every container may use whatever its rules (runc's allow list):
/// the default nodes, ptys (/dev/console is a pty slave bound there), and
/// `mknod` of anything, and /dev/net/tun: runc dropped it in 1.2.0 and put it back
/// in 1.2.4 because workloads rely on it (runc#4555); we keep runc's list.
const ALWAYS_ALLOWED: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:2 rwm",
    "c 10:200 rwm",
    "c 136:* rwm",
];

fn rule(r: &LinuxDeviceCgroup) -> String {
    let t = match r.typ() {
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        _ => "a",
    };
    let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
    let access = r
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    if t == "a" {
        return "a".into();
    }
    format!("{t} {}:{} {access}", n(r.major()), n(r.minor()))
}

/// Writes `linux.resources.devices` into a v1 devices cgroup, then the
/// always-allowed list.
pub fn apply_v1_rules(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let write = |file: &str, v: &str| {
        let p = dir.join(file);
        std::fs::write(&p, v).map_err(|e| Error::sys("write", format!("{} ({v})", p.display()), e))
    };
    for r in rules {
        write(
            if r.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            },
            &rule(r),
        )?;
    }
    for r in ALWAYS_ALLOWED {
        write("devices.allow", r)?;
    }
    Ok(())
}
