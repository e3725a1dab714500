//! `/dev` contents: the nodes `mountplan` lists, made (or bound from the host) and
//! checked. Which devices may be opened is the device controller's decision:
//! `crate::cgroups::devices`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use super::fsutil;
use super::mountplan::{DevStep, Node};
use crate::error::{Error, Result};

const SYMLINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

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
    // A FIFO has no device number (runtime-spec: major/minor only "unless type is p").
    let dev = if kind == libc::S_IFIFO {
        0
    } else {
        libc::makedev(major as u32, minor as u32)
    };
    // SAFETY: `parent` is an open directory fd and `name` a NUL-terminated
    // CString, both alive for the call; mode and dev are integers.
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
            "{what}: created node is not {}",
            if kind == libc::S_IFIFO {
                "a FIFO".to_string()
            } else {
                format!("{major}:{minor}")
            }
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

/// Walks the plan's `/dev` steps (`mountplan::plan`), then the standard symlinks.
pub fn populate(root: RawFd, steps: &[DevStep]) -> Result<()> {
    for step in steps {
        match step {
            DevStep::Node { path, node } => mknod(root, path, node)?,
            DevStep::BindHost(path) => bind_host_node(root, path)?,
        }
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
