//! The container's filesystem view: the executor of the mount plan (`mountplan`):
//! spec mounts, `/dev`, `pivot_root`, masked and read-only paths.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use oci_spec::runtime::Spec;

use super::fsutil::{self, cstr, fd_path};
use super::mountattr::IdmapTrees;
use super::mountplan::{mask_action, CgroupMount, MaskAction, MountKind, MountStep, PathStep};
use super::namespaces::Plan as NsPlan;
use crate::channel::CgroupDir;
use crate::error::{Error, Result};

/// Walks the mount plan (`mountplan::plan`, decided before anything is mounted):
/// propagation, the rootfs bound onto itself, `mounts[]`, `/dev`, the
/// createContainer hooks, `pivot_root`, sysctls, read-only and masked paths,
/// `root.readonly`, propagation of the new `/`.
pub fn prepare(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    cgroups: &[CgroupDir],
    ns: &NsPlan,
    idmap: &mut IdmapTrees,
    before_pivot: &dyn Fn() -> Result<()>,
) -> Result<()> {
    let plan = super::mountplan::plan(spec, bundle, cgroups, ns)?;
    // Propagation first: see `propagation` for the steps and why each.
    super::propagation::before_bind(&plan.propagation, rootfs)?;
    // pivot_root needs the new root to be a mount point.
    let root_c = cstr(rootfs);
    fsutil::mount(
        Some(&root_c),
        &root_c,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
        &format_args!("bind {} onto itself", rootfs.display()),
    )?;
    let root = std::fs::File::open(rootfs).map_err(|e| Error::sys("open", rootfs.display(), e))?;
    let root: OwnedFd = root.into();
    let rootfd = root.as_raw_fd();

    for step in &plan.mounts {
        mount_one(rootfd, step, idmap.take(step.index))?;
    }
    super::devices::populate(rootfd, &plan.devices)?;
    // createContainer hooks: the container's namespaces and mounts, the host's paths.
    before_pivot()?;
    pivot(rootfd)?;
    drop(root);

    let proc_ok = is_procfs(Path::new("/proc"));
    if plan.sysctl {
        if !proc_ok {
            return Err(Error::unsupported(
                "linux.sysctl",
                "needs a proc mount at /proc",
            ));
        }
        if let Some(s) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
            super::sysctl::apply(s)?;
        }
    }
    for step in &plan.paths {
        match step {
            PathStep::Readonly(p) => readonly(p, proc_ok)?,
            PathStep::Mask(p) => mask(p, proc_ok)?,
        }
    }
    if plan.root_readonly {
        let fd = fsutil::open(libc::AT_FDCWD, Path::new("/"), libc::O_PATH)
            .map_err(|e| Error::sys("open", "/", e))?;
        let flags = libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | fsutil::locked_flags(fd.as_raw_fd());
        fsutil::mount(None, c"/", None, flags, None, &"root.readonly remount of /")?;
    }
    super::propagation::after_pivot(&plan.propagation)?;
    Ok(())
}

/// One `mounts[]` step, then its recursive `r*` attributes over the whole
/// new mount tree (the plain flags of `mount(2)` reach the top mount only).
fn mount_one(root: RawFd, step: &MountStep, idmapped: Option<OwnedFd>) -> Result<()> {
    let what = &step.what;
    let dest = &step.dest;
    match &step.kind {
        MountKind::Cgroup(cg) => mount_cgroup(root, dest, cg, what)?,
        MountKind::Bind {
            source,
            recursive,
            remount,
        } => {
            bind(root, step, source, *recursive, idmapped)?;
            if let Some(r) = remount {
                // The bind itself ignores flags: they need a remount of the new mount.
                let target = fsutil::open(root, dest, libc::O_PATH)
                    .map_err(|e| Error::sys("openat2", format!("{what} after bind"), e))?;
                let flags = libc::MS_BIND
                    | libc::MS_REMOUNT
                    | r.set
                    | (fsutil::locked_flags(target.as_raw_fd()) & !r.keep_locked_except);
                fsutil::mount(
                    None,
                    &fd_path(&target),
                    None,
                    flags,
                    None,
                    &format_args!("{what} (remount)"),
                )?;
            }
            set_propagation(root, dest, step.propagation, what)?;
        }
        MountKind::New {
            source,
            fstype,
            flags,
            data,
        } => {
            let target = fsutil::ensure(root, dest, true)?;
            let src = CString::new(source.as_str()).unwrap();
            let fstype = CString::new(fstype.as_str()).unwrap();
            let data = data.as_deref().map(|d| CString::new(d).unwrap());
            fsutil::mount(
                Some(&src),
                &fd_path(&target),
                Some(&fstype),
                *flags,
                data.as_deref(),
                what,
            )?;
            set_propagation(root, dest, step.propagation, what)?;
        }
    }
    let Some(rec) = step.rec else {
        return Ok(());
    };
    let target = fsutil::open(root, dest, libc::O_PATH)
        .map_err(|e| Error::sys("openat2", format!("{what} (recursive options)"), e))?;
    super::mountattr::set_recursive(target.as_raw_fd(), rec, what)
}

/// The bind of a `mounts[]` step: onto a directory or a file after the source's
/// kind, from an ID-mapped tree the helper made or from an fd of the source.
fn bind(
    root: RawFd,
    step: &MountStep,
    src: &Path,
    recursive: bool,
    idmapped: Option<OwnedFd>,
) -> Result<()> {
    let what = &step.what;
    let meta = std::fs::metadata(src)
        .map_err(|e| Error::sys("stat", format!("{what} source {}", src.display()), e))?;
    let target = fsutil::ensure(root, &step.dest, meta.is_dir())?;
    if let Some(tree) = idmapped {
        // Made (and ID-mapped) by the helper from the host's view of the source.
        return super::mountattr::move_onto(tree, &target, what);
    }
    // Open the source without following a final symlink swap; mount from its fd.
    let src_fd = std::fs::File::open(src).map_err(|e| Error::sys("open", src.display(), e));
    let src_c = match &src_fd {
        Ok(f) => CString::new(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap(),
        Err(_) => cstr(src),
    };
    let rec = if recursive { libc::MS_REC } else { 0 };
    fsutil::mount(
        Some(&src_c),
        &fd_path(&target),
        None,
        libc::MS_BIND | rec,
        None,
        what,
    )
}

fn set_propagation(root: RawFd, dest: &Path, prop: libc::c_ulong, what: &str) -> Result<()> {
    if prop == 0 {
        return Ok(());
    }
    let target =
        fsutil::open(root, dest, libc::O_PATH).map_err(|e| Error::sys("openat2", what, e))?;
    fsutil::mount(
        None,
        &fd_path(&target),
        None,
        prop,
        None,
        &format_args!("{what} (propagation)"),
    )
}

/// `/sys/fs/cgroup` in the form the plan chose (see `mountplan::CgroupMount`).
fn mount_cgroup(root: RawFd, dest: &Path, cg: &CgroupMount, what: &str) -> Result<()> {
    let target = fsutil::ensure(root, dest, true)?;
    let (dirs, readonly) = match cg {
        CgroupMount::Cgroup2 { flags } => {
            return fsutil::mount(
                Some(c"cgroup"),
                &fd_path(&target),
                Some(c"cgroup2"),
                *flags,
                None,
                &what,
            );
        }
        CgroupMount::BindV2 { host_dir, flags } => {
            let src = cstr(host_dir);
            fsutil::mount(
                Some(&src),
                &fd_path(&target),
                None,
                libc::MS_BIND,
                None,
                &what,
            )?;
            let t = fsutil::open(root, dest, libc::O_PATH)
                .map_err(|e| Error::sys("openat2", what, e))?;
            return fsutil::mount(
                None,
                &fd_path(&t),
                None,
                libc::MS_BIND | libc::MS_REMOUNT | flags,
                None,
                &what,
            );
        }
        CgroupMount::Tmpfs { dirs, readonly } => (dirs, *readonly),
    };
    let ro = if readonly { libc::MS_RDONLY } else { 0 };
    fsutil::mount(
        Some(c"tmpfs"),
        &fd_path(&target),
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(c"mode=755"),
        &what,
    )?;
    for (name, host_dir) in dirs {
        let sub = dest.join(name);
        let t = fsutil::ensure(root, &sub, true)?;
        let src = cstr(host_dir);
        let w = format!("{what} ({name})");
        fsutil::mount(Some(&src), &fd_path(&t), None, libc::MS_BIND, None, &w)?;
        let t = fsutil::open(root, &sub, libc::O_PATH).map_err(|e| Error::sys("openat2", &w, e))?;
        let f = libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC
            | ro;
        fsutil::mount(None, &fd_path(&t), None, f, None, &w)?;
    }
    if readonly {
        let t =
            fsutil::open(root, dest, libc::O_PATH).map_err(|e| Error::sys("openat2", what, e))?;
        let f =
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        fsutil::mount(
            Some(c"tmpfs"),
            &fd_path(&t),
            Some(c"tmpfs"),
            f,
            Some(c"mode=755"),
            &format_args!("{what} (ro)"),
        )?;
    }
    Ok(())
}

/// `pivot_root(".", ".")` then a lazy unmount of the old root, which leaves
/// no path to the host filesystem in the container's mount table.
fn pivot(root: RawFd) -> Result<()> {
    // The old root, held so that we can step onto it after pivot_root: which
    // of the two stacked mounts "." means afterwards is not promised by the kernel,
    // and making the *new* root rslave would undo the mounts' own propagation.
    // SAFETY: a NUL-terminated literal path and integer flags; the fd is checked and wrapped below.
    let old = unsafe {
        libc::open(
            c"/".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if old < 0 {
        return Err(crate::error::last("open", "/ (old root)"));
    }
    // SAFETY: `old` was just returned by open (checked >= 0 above) and is owned by nobody else.
    let old = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(old) };
    // SAFETY: fchdir takes only an fd, the rootfs fd the caller holds open.
    if unsafe { libc::fchdir(root) } < 0 {
        return Err(crate::error::last("fchdir", "rootfs"));
    }
    crate::sys::pivot_root(c".", c".").map_err(|e| Error::sys("pivot_root", "rootfs", e))?;
    // SAFETY: fchdir takes only an fd: the old root that `old` owns.
    if unsafe { libc::fchdir(old.as_raw_fd()) } < 0 {
        return Err(crate::error::last("fchdir", "old root"));
    }
    drop(old);
    // The old root is stacked under the new one; make sure unmounting it does not propagate.
    fsutil::mount(
        None,
        c".",
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
        &"old root (rslave)",
    )?;
    // SAFETY: a NUL-terminated literal path and integer flags.
    if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } < 0 {
        return Err(crate::error::last("umount2", "old root"));
    }
    // SAFETY: a NUL-terminated literal path.
    if unsafe { libc::chdir(c"/".as_ptr()) } < 0 {
        return Err(crate::error::last("chdir", "/"));
    }
    Ok(())
}

pub(super) fn is_procfs_fd(fd: RawFd) -> bool {
    const PROC_SUPER_MAGIC: libc::c_long = 0x9fa0;
    // SAFETY: `struct statfs` is plain old data (integers only), so all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live, writable `struct statfs`; the fd is only an integer to the kernel.
    unsafe { libc::fstatfs(fd, &mut st) == 0 && st.f_type as libc::c_long == PROC_SUPER_MAGIC }
}

fn is_procfs(p: &Path) -> bool {
    const PROC_SUPER_MAGIC: libc::c_long = 0x9fa0;
    let c = cstr(p);
    // SAFETY: `struct statfs` is plain old data (integers only), so all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a live NUL-terminated CString and `st` a live, writable `struct statfs`.
    unsafe {
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as libc::c_long == PROC_SUPER_MAGIC
    }
}

/// Refuses to touch a /proc path unless /proc really is procfs: a rootfs that
/// ships its own /proc (dir or symlink) could otherwise point us elsewhere.
fn check_proc(p: &Path, proc_ok: bool, what: &str) -> Result<()> {
    if p.starts_with("/proc") && !proc_ok {
        return Err(Error::unsupported(
            what,
            "/proc is not a procfs mount: add a proc mount at /proc",
        ));
    }
    Ok(())
}

fn mask(p: &Path, proc_ok: bool) -> Result<()> {
    let what = format!("linux.maskedPaths[{}]", p.display());
    check_proc(p, proc_ok, &what)?;
    let fd = match fsutil::open(libc::AT_FDCWD, p, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys("openat2", &what, e)),
    };
    let st = fsutil::fstat(fd.as_raw_fd()).map_err(|e| Error::sys("fstat", &what, e))?;
    if mask_action(st.st_mode & libc::S_IFMT == libc::S_IFDIR) == MaskAction::ReadonlyTmpfs {
        return fsutil::mount(
            Some(c"tmpfs"),
            &fd_path(&fd),
            Some(c"tmpfs"),
            libc::MS_RDONLY,
            None,
            &what,
        );
    }
    let null = open_dev_null()?;
    fsutil::mount(
        Some(&fd_path(&null)),
        &fd_path(&fd),
        None,
        libc::MS_BIND,
        None,
        &what,
    )
}

/// `/dev/null`, verified to be the 1:3 character device (a rootfs could make
/// it a symlink or bind to a writable procfs file).
fn open_dev_null() -> Result<OwnedFd> {
    let fd = fsutil::open(
        libc::AT_FDCWD,
        Path::new("/dev/null"),
        libc::O_PATH | libc::O_NOFOLLOW,
    )
    .map_err(|e| Error::sys("openat2", "/dev/null", e))?;
    let st = fsutil::fstat(fd.as_raw_fd()).map_err(|e| Error::sys("fstat", "/dev/null", e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(Error::unsupported(
            "/dev/null",
            "is not the 1:3 character device; refusing to use it",
        ));
    }
    Ok(fd)
}

fn readonly(p: &Path, proc_ok: bool) -> Result<()> {
    let what = format!("linux.readonlyPaths[{}]", p.display());
    check_proc(p, proc_ok, &what)?;
    let fd = match fsutil::open(libc::AT_FDCWD, p, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys("openat2", &what, e)),
    };
    let fdp = fd_path(&fd);
    fsutil::mount(
        Some(&fdp),
        &fdp,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
        &what,
    )?;
    let fd: OwnedFd = fsutil::open(libc::AT_FDCWD, p, libc::O_PATH | libc::O_NOFOLLOW)
        .map_err(|e| Error::sys("openat2", &what, e))?;
    let flags =
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | fsutil::locked_flags(fd.as_raw_fd());
    fsutil::mount(
        None,
        &fd_path(&fd),
        None,
        flags,
        None,
        &format_args!("{what} (remount ro)"),
    )
}
