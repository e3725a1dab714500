//! containerd's rootfs mounts (`CreateTaskRequest.rootfs`: overlay, bind, …),
//! mounted on `<bundle>/rootfs` in the shim's mount namespace and removed on delete.

use std::ffi::CString;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::mountopts::parse_options;

/// One mount as containerd describes it.
#[derive(Debug, Clone)]
pub struct RootfsMount {
    pub typ: String,
    pub source: String,
    pub options: Vec<String>,
}

/// Mounts `mounts` in order on `target`; on error, unmounts what was mounted.
pub fn mount_all(mounts: &[RootfsMount], target: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            for _ in 0..i {
                let _ = unmount(target);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &RootfsMount, target: &Path) -> Result<()> {
    // A user-namespaced pod's overlay (uidmap=/gidmap=): ID-mapped lowerdirs, detached
    // again when `_lowers` drops after the mount (the overlay keeps its own references).
    let idmapped = crate::rootfs_idmap::prepare(&m.typ, &m.options, target)?;
    let (options, _lowers) = match idmapped {
        Some((o, l)) => (o, Some(l)),
        None => (m.options.clone(), None),
    };
    let opts = parse_options(&options);
    let data = opts.data.join(",");
    // mount(2) takes at most one page of options; overlays with many layers need more.
    if data.len() >= 4096 {
        return Err(Error::unsupported(
            "rootfs mount options",
            format!("{} bytes of {} options exceed one page", data.len(), m.typ),
        ));
    }
    let what = format!("rootfs {} {} on {}", m.typ, m.source, target.display());
    let c = |s: &str| CString::new(s).map_err(|_| Error::Init(format!("NUL in {what}")));
    let (src, tgt, data_c) = (c(&m.source)?, c(&target.to_string_lossy())?, c(&data)?);
    let fstype = if opts.bind { None } else { Some(c(&m.typ)?) };
    let flags = opts.flags;
    // SAFETY: `src`, `tgt` and `data_c` are live NUL-terminated CStrings for the whole call, and
    // the fstype and data pointers are null or point into `fstype` and `data_c`.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                data_c.as_ptr().cast()
            },
        )
    };
    if r < 0 {
        return Err(crate::error::last("mount", what));
    }
    if opts.bind && flags & !(libc::MS_BIND | libc::MS_REC) != 0 {
        // SAFETY: `tgt` is a live NUL-terminated CString; the other pointers are null, which
        // MS_REMOUNT allows.
        let r = unsafe {
            libc::mount(
                std::ptr::null(),
                tgt.as_ptr(),
                std::ptr::null(),
                flags | libc::MS_REMOUNT,
                std::ptr::null(),
            )
        };
        if r < 0 {
            let e = crate::error::last("mount(MS_REMOUNT)", &what);
            let _ = unmount(target);
            return Err(e);
        }
    }
    Ok(())
}

/// Unmounts everything stacked on `target`; not mounted is fine.
pub fn unmount(target: &Path) -> Result<()> {
    let tgt = CString::new(target.to_string_lossy().as_bytes()).unwrap();
    for attempt in 0..50 {
        // SAFETY: `tgt` is a live NUL-terminated CString; flags are integers.
        if unsafe { libc::umount2(tgt.as_ptr(), libc::UMOUNT_NOFOLLOW) } == 0 {
            continue; // something else may be stacked below
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOENT) => return Ok(()),
            Some(libc::EBUSY) if attempt < 49 => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                // Last resort: detach, so the bundle can go even if a file is held open.
                // SAFETY: `tgt` is a live NUL-terminated CString; flags are integers.
                if unsafe { libc::umount2(tgt.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) }
                    == 0
                {
                    continue;
                }
                return Err(Error::sys("umount2", target.display(), e));
            }
        }
    }
    Ok(())
}
