//! The new mount API for what `mount(2)` cannot do: recursive attributes
//! (`rro`, `rnosuid`, …: `mount_setattr(AT_RECURSIVE)`) and ID-mapped bind
//! mounts (`mounts[].uidMappings/gidMappings`: `open_tree(OPEN_TREE_CLONE)` +
//! `mount_setattr(MOUNT_ATTR_IDMAP)` + `move_mount`), both Linux 5.12+.
//!
//! An ID-mapped mount needs CAP_SYS_ADMIN in the user namespace that owns the
//! source's filesystem (the host's), so the mapped trees are made by the
//! helper, still root of the host, before it joins any namespace: it sees the
//! sources as the caller does. The init, possibly mapped root of a new user
//! namespace, inherits the detached trees (fds) through its clone and moves
//! them into its own mount namespace. The mapping itself is a user namespace
//! fd: the helper (single-threaded, so forking is safe) clones a child into a
//! new user namespace, writes the mapping from outside, opens its
//! `ns/user`, and lets it exit; the child never runs anything but a read.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};

use crate::error::{Error, Result};
use crate::mountopts::{parse_options, RecAttr, MOUNT_ATTR_IDMAP};
use crate::sys::{self, Forked};

/// The kernel's `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn mount_setattr(fd: RawFd, flags: u32, attr: &MountAttr) -> std::io::Result<()> {
    // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH (the fd itself)
    // and a pointer to a live, correctly sized struct mount_attr.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags | libc::AT_EMPTY_PATH as u32,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => ": this kernel has no mount_setattr (Linux 5.12+)",
        _ => "",
    }
}

/// Applies the `r*` options to the mount at `fd` and every mount below it.
pub fn set_recursive(fd: RawFd, rec: RecAttr, what: &str) -> Result<()> {
    if rec == RecAttr::default() {
        return Ok(());
    }
    let attr = MountAttr {
        attr_set: rec.set,
        attr_clr: rec.clr,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr(fd, libc::AT_RECURSIVE as u32, &attr).map_err(|e| {
        Error::Init(format!(
            "{what}: mount_setattr(AT_RECURSIVE) of the recursive options: {e}{}",
            hint(&e)
        ))
    })
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// A user namespace with exactly these mappings, as an fd.
pub(crate) fn userns_fd(
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
    what: &str,
) -> Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::nix("pipe2", what, e))?;
    // SAFETY: the child only closes an fd, blocks in read and _exits (no allocation, no
    // lock), which is sound after a fork of the single-threaded helper and of the
    // multi-threaded shim (rootfs_idmap) alike.
    match unsafe { sys::clone3_fork(libc::CLONE_NEWUSER as u64) } {
        Err(e) => Err(Error::sys("clone3(CLONE_NEWUSER)", what, e)),
        Ok(Forked::Child) => {
            drop(w);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&r, &mut b);
            // SAFETY: leaving the child without running any destructor.
            unsafe { libc::_exit(0) }
        }
        Ok(Forked::Parent { pid, pidfd }) => {
            drop(r);
            let res = (|| {
                for (file, maps) in [("uid_map", uid), ("gid_map", gid)] {
                    let path = format!("/proc/{pid}/{file}");
                    let text = map_text(maps);
                    std::fs::write(&path, &text).map_err(|e| {
                        Error::Init(format!("{what}: write {path} ({}): {e}", text.trim()))
                    })?;
                }
                let ns = format!("/proc/{pid}/ns/user");
                std::fs::File::open(&ns)
                    .map(OwnedFd::from)
                    .map_err(|e| Error::sys("open", &ns, e))
            })();
            // EOF on the pipe lets the child exit; reap it through its pidfd.
            drop(w);
            let _ = sys::waitid_pidfd(pidfd.as_raw_fd(), false);
            res
        }
    }
}

/// `src` (not recursive) as a detached tree ID-mapped through the user namespace `ns`:
/// for containerd's overlay lowerdirs of a user-namespaced pod (`uidmap=`/`gidmap=`).
pub(crate) fn idmapped_tree(src: &Path, ns: &OwnedFd, what: &str) -> Result<OwnedFd> {
    let tree = open_tree_clone(src, false, what)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: ns.as_raw_fd() as u64,
    };
    mount_setattr(tree.as_raw_fd(), 0, &attr).map_err(|e| {
        Error::Init(format!(
            "{what}: mount_setattr(MOUNT_ATTR_IDMAP) of {}: {e}{}",
            src.display(),
            hint(&e)
        ))
    })?;
    Ok(tree)
}

/// The detached ID-mapped trees, one slot per `mounts[]` entry.
#[derive(Default)]
pub struct IdmapTrees(Vec<Option<OwnedFd>>);

impl IdmapTrees {
    /// The tree made for `mounts[i]`, once.
    pub fn take(&mut self, i: usize) -> Option<OwnedFd> {
        self.0.get_mut(i).and_then(Option::take)
    }
}

fn has_idmap(m: &Mount) -> bool {
    m.uid_mappings().is_some() || m.gid_mappings().is_some()
}

/// Refuses what cannot be ID-mapped, by name (parent side, before anything
/// is made): only bind mounts, with both mappings.
pub fn check(spec: &Spec) -> Result<()> {
    for m in spec.mounts().iter().flatten().filter(|m| has_idmap(m)) {
        let what = format!(
            "mounts[{}].uidMappings/gidMappings",
            m.destination().display()
        );
        let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
        if !(opts.bind || m.typ().as_deref() == Some("bind")) {
            return Err(Error::unsupported(
                what,
                "ID mappings apply to bind mounts only: add \"bind\" or \"rbind\" to its options",
            ));
        }
        let nonempty = |v: &Option<Vec<LinuxIdMapping>>| v.as_ref().is_some_and(|v| !v.is_empty());
        if !nonempty(m.uid_mappings()) || !nonempty(m.gid_mappings()) {
            return Err(Error::unsupported(
                what,
                "an ID-mapped mount needs both uidMappings and gidMappings",
            ));
        }
    }
    Ok(())
}

/// In the helper, before any namespace is joined: every ID-mapped mount's
/// source as a detached tree with its mapping applied.
pub fn prepare(spec: &Spec, bundle: &Path) -> Result<IdmapTrees> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    if !mounts.iter().any(has_idmap) {
        return Ok(IdmapTrees::default());
    }
    // One user namespace per distinct mapping (a pod's volumes share one).
    let mut userns: Vec<(String, OwnedFd)> = Vec::new();
    let mut trees = Vec::with_capacity(mounts.len());
    for m in mounts {
        if !has_idmap(m) {
            trees.push(None);
            continue;
        }
        let what = format!("mounts[{}] (ID-mapped)", m.destination().display());
        let (uid, gid) = (
            m.uid_mappings().as_deref().unwrap_or_default(),
            m.gid_mappings().as_deref().unwrap_or_default(),
        );
        let key = format!("{}|{}", map_text(uid), map_text(gid));
        let ns = match userns.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                userns.push((key, userns_fd(uid, gid, &what)?));
                userns.len() - 1
            }
        };
        let src = m.source().as_deref().unwrap_or(Path::new(""));
        let src = if src.is_absolute() {
            src.to_path_buf()
        } else {
            bundle.join(src)
        };
        let rec = parse_options(m.options().as_deref().unwrap_or(&[])).flags & libc::MS_REC != 0;
        let tree = open_tree_clone(&src, rec, &what)?;
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns[ns].1.as_raw_fd() as u64,
        };
        let flags = if rec { libc::AT_RECURSIVE as u32 } else { 0 };
        mount_setattr(tree.as_raw_fd(), flags, &attr).map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::EINVAL) => ": the source's filesystem does not support ID-mapped mounts (or a mapping is invalid)",
                _ => hint(&e),
            };
            Error::Init(format!(
                "{what}: mount_setattr(MOUNT_ATTR_IDMAP) of {}: {e}{why}",
                src.display()
            ))
        })?;
        trees.push(Some(tree));
    }
    Ok(IdmapTrees(trees))
}

fn open_tree_clone(src: &Path, rec: bool, what: &str) -> Result<OwnedFd> {
    const OPEN_TREE_CLONE: u32 = 1;
    let c = CString::new(src.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Init(format!("{what}: NUL byte in source")))?;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | if rec { libc::AT_RECURSIVE as u32 } else { 0 };
    // SAFETY: a NUL-terminated path; the returned fd is checked and owned below.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::Init(format!(
            "{what}: open_tree(OPEN_TREE_CLONE) of source {}: {e}",
            src.display()
        )));
    }
    // SAFETY: fd is a new descriptor returned by the kernel, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// In the init: attaches a detached tree onto `target` (an fd of the
/// destination, resolved inside the rootfs), without any path lookup.
pub fn move_onto(tree: OwnedFd, target: &OwnedFd, what: &str) -> Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
    // SAFETY: empty NUL-terminated paths with the *_EMPTY_PATH flags: both
    // ends are the fds we hold.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(crate::error::last("move_mount", what));
    }
    Ok(())
}
