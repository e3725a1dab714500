//! The container's filesystem view: spec mounts, `/dev`, `pivot_root`,
//! masked and read-only paths.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use oci_spec::runtime::{Mount, Spec};

use super::fsutil::{self, cstr, fd_path};
use super::mountattr::IdmapTrees;
use super::namespaces::Plan;
use crate::channel::CgroupDir;
use crate::error::{Error, Result};
use crate::mountopts::{parse_options, MountOpts, RecAttr};

pub fn prepare(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    cgroups: &[CgroupDir],
    plan: &Plan,
    idmap: &mut IdmapTrees,
    before_pivot: &dyn Fn() -> Result<()>,
) -> Result<()> {
    let linux = spec.linux().as_ref();
    // Propagation first: see `propagation` for the steps and why each.
    let propagation =
        super::propagation::plan(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    super::propagation::before_bind(&propagation, rootfs)?;
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

    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mount_one(rootfd, bundle, m, cgroups, plan, idmap.take(i))?;
    }
    super::devices::populate(
        rootfd,
        spec,
        plan.has(oci_spec::runtime::LinuxNamespaceType::User),
    )?;
    // createContainer hooks: the container's namespaces and mounts, the host's paths.
    before_pivot()?;
    pivot(rootfd)?;
    drop(root);

    let proc_ok = is_procfs(Path::new("/proc"));
    if let Some(s) = linux
        .and_then(|l| l.sysctl().as_ref())
        .filter(|s| !s.is_empty())
    {
        if !proc_ok {
            return Err(Error::unsupported(
                "linux.sysctl",
                "needs a proc mount at /proc",
            ));
        }
        super::sysctl::apply(s)?;
    }
    // Read-only first, then masked (runc's order): a path in both ends up masked.
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly(Path::new(p), proc_ok)?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask(Path::new(p), proc_ok)?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let fd = fsutil::open(libc::AT_FDCWD, Path::new("/"), libc::O_PATH)
            .map_err(|e| Error::sys("open", "/", e))?;
        let flags = libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | fsutil::locked_flags(fd.as_raw_fd());
        fsutil::mount(None, c"/", None, flags, None, &"root.readonly remount of /")?;
    }
    super::propagation::after_pivot(&propagation)?;
    Ok(())
}

/// One `mounts[]` entry, then its recursive `r*` attributes over the whole
/// new mount tree (the plain flags of `mount(2)` reach the top mount only).
fn mount_one(
    root: RawFd,
    bundle: &Path,
    m: &Mount,
    cgroups: &[CgroupDir],
    plan: &Plan,
    idmapped: Option<OwnedFd>,
) -> Result<()> {
    mount_entry(root, bundle, m, cgroups, plan, idmapped)?;
    let rec = parse_options(m.options().as_deref().unwrap_or(&[])).rec;
    if rec == RecAttr::default() {
        return Ok(());
    }
    let what = format!("mounts[{}]", m.destination().display());
    let target = fsutil::open(root, m.destination(), libc::O_PATH)
        .map_err(|e| Error::sys("openat2", format!("{what} (recursive options)"), e))?;
    super::mountattr::set_recursive(target.as_raw_fd(), rec, &what)
}

fn mount_entry(
    root: RawFd,
    bundle: &Path,
    m: &Mount,
    cgroups: &[CgroupDir],
    plan: &Plan,
    idmapped: Option<OwnedFd>,
) -> Result<()> {
    let dest = m.destination();
    let what = format!("mounts[{}]", dest.display());
    if !dest.is_absolute() {
        return Err(Error::unsupported(
            &what,
            "destination must be an absolute path",
        ));
    }
    if dest == Path::new("/") {
        return Err(Error::unsupported(
            &what,
            "cannot mount over / (use root.path)",
        ));
    }
    let typ = m.typ().as_deref().unwrap_or("none");
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let data = CString::new(opts.data.join(",")).unwrap();
    let data = (!opts.data.is_empty()).then_some(data.as_c_str());

    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(root, dest, &opts, cgroups, plan, &what);
    }
    if opts.bind || typ == "bind" {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| Error::unsupported(&what, "bind mount without source"))?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            bundle.join(src)
        };
        let meta = std::fs::metadata(&src)
            .map_err(|e| Error::sys("stat", format!("{what} source {}", src.display()), e))?;
        let target = fsutil::ensure(root, dest, meta.is_dir())?;
        if let Some(tree) = idmapped {
            // Made (and ID-mapped) by the helper from the host's view of the source.
            super::mountattr::move_onto(tree, &target, &what)?;
        } else {
            // Open the source without following a final symlink swap; mount from its fd.
            let src_fd =
                std::fs::File::open(&src).map_err(|e| Error::sys("open", src.display(), e));
            let src_c = match &src_fd {
                Ok(f) => CString::new(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap(),
                Err(_) => cstr(&src),
            };
            let rec = opts.flags & libc::MS_REC;
            fsutil::mount(
                Some(&src_c),
                &fd_path(&target),
                None,
                libc::MS_BIND | rec,
                None,
                &what,
            )?;
        }
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC);
        if extra != 0 {
            // The bind itself ignores flags: they need a remount of the new mount.
            let target = fsutil::open(root, dest, libc::O_PATH)
                .map_err(|e| Error::sys("openat2", format!("{what} after bind"), e))?;
            let flags = libc::MS_BIND
                | libc::MS_REMOUNT
                | extra
                | (fsutil::locked_flags(target.as_raw_fd()) & !opts.clear);
            fsutil::mount(
                None,
                &fd_path(&target),
                None,
                flags,
                None,
                &format_args!("{what} (remount)"),
            )?;
        }
        return set_propagation(root, dest, opts.propagation, &what);
    }
    let target = fsutil::ensure(root, dest, true)?;
    let src = CString::new(
        m.source()
            .as_ref()
            .map_or(typ.to_string(), |s| s.display().to_string()),
    )
    .unwrap();
    let fstype = CString::new(typ).unwrap();
    fsutil::mount(
        Some(&src),
        &fd_path(&target),
        Some(&fstype),
        opts.flags,
        data,
        &what,
    )?;
    set_propagation(root, dest, opts.propagation, &what)
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

/// `/sys/fs/cgroup`: with a cgroup namespace a real cgroup2 mount; otherwise
/// (and on v1) a tmpfs with the container's own cgroup directories bound in,
/// so it sees its cgroups and nothing of the host's.
fn mount_cgroup(
    root: RawFd,
    dest: &Path,
    opts: &MountOpts,
    cgroups: &[CgroupDir],
    plan: &Plan,
    what: &str,
) -> Result<()> {
    let v2_only = cgroups.len() == 1 && cgroups[0].name.is_empty();
    let target = fsutil::ensure(root, dest, true)?;
    let flags = opts.flags & !(libc::MS_BIND | libc::MS_REC);
    if v2_only {
        if plan.has(oci_spec::runtime::LinuxNamespaceType::Cgroup) {
            fsutil::mount(
                Some(c"cgroup"),
                &fd_path(&target),
                Some(c"cgroup2"),
                flags,
                None,
                &what,
            )?;
        } else {
            let src = cstr(&cgroups[0].host_dir);
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
            fsutil::mount(
                None,
                &fd_path(&t),
                None,
                libc::MS_BIND | libc::MS_REMOUNT | flags,
                None,
                &what,
            )?;
        }
        return Ok(());
    }
    fsutil::mount(
        Some(c"tmpfs"),
        &fd_path(&target),
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(c"mode=755"),
        &what,
    )?;
    for cg in cgroups {
        let name = cg.name.strip_prefix("name=").unwrap_or(&cg.name);
        let sub = dest.join(name);
        let t = fsutil::ensure(root, &sub, true)?;
        let src = cstr(&cg.host_dir);
        let w = format!("{what} ({name})");
        fsutil::mount(Some(&src), &fd_path(&t), None, libc::MS_BIND, None, &w)?;
        let t = fsutil::open(root, &sub, libc::O_PATH).map_err(|e| Error::sys("openat2", &w, e))?;
        let f = libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC
            | (flags & libc::MS_RDONLY);
        fsutil::mount(None, &fd_path(&t), None, f, None, &w)?;
    }
    if flags & libc::MS_RDONLY != 0 {
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
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
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
