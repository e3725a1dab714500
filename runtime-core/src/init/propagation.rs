//! `linux.rootfsPropagation`: the propagation of the container's mounts
//! relative to the host's, in three steps (the order runc's prepareRoot and
//! pivotRoot use, so that the same bundle gives the same mount table):
//!
//! 1. Before any mount: `/` gets the requested value (`rslave` when unset),
//!    recursively for the `r*` values. That decides what each copy of a host
//!    mount in our new mount namespace still exchanges with the host: a
//!    Kubernetes Bidirectional volume (`rshared`) stays in the host's peer
//!    group, so a mount made under it in the container appears on the host.
//!    The unbindable values are the exception: an unbindable rootfs could
//!    not be bound onto itself, so set-up runs with the private equivalent
//!    (unbindable mounts are private ones that also refuse binds) and the
//!    unbindable flag comes in step 3.
//! 2. The mount that holds the rootfs, if it is shared, becomes private:
//!    pivot_root refuses (EINVAL) a new root whose parent mount is shared,
//!    and the rootfs bind and every set-up mount below it must not propagate
//!    back into the host's peers.
//! 3. After pivot_root, the value applies to the new `/` itself (shared: a
//!    new peer group inside the container; unbindable: no bind of it; and
//!    `runbindable` recursively, as asked).

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::fsutil;
use crate::error::{Error, Result};
use crate::mountopts::propagation_flag;

/// The propagation flags of each step for one rootfsPropagation value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// For `/` before any mount (step 1).
    pub setup: libc::c_ulong,
    /// For the new `/` after pivot_root (step 3), when the spec asks one.
    pub after_pivot: Option<libc::c_ulong>,
}

/// The plan for `linux.rootfsPropagation` (`None` or empty: rslave, as runc).
pub fn plan(value: Option<&str>) -> Result<Plan> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(Plan {
            setup: libc::MS_SLAVE | libc::MS_REC,
            after_pivot: None,
        });
    };
    let flag = propagation_flag(v).ok_or_else(|| {
        Error::unsupported(
            "linux.rootfsPropagation",
            format!("{v:?} is not one of [r]private, [r]shared, [r]slave, [r]unbindable"),
        )
    })?;
    let rec = flag & libc::MS_REC;
    let setup = if flag & libc::MS_UNBINDABLE != 0 {
        libc::MS_PRIVATE | rec
    } else {
        flag
    };
    // Only runbindable reaches below `/` after the pivot: the other values
    // did their recursive part in step 1, and the mounts' own propagation
    // options (a volume's rshared, ...) must stay as the spec set them.
    let after = if flag & libc::MS_UNBINDABLE != 0 {
        flag
    } else {
        flag & !libc::MS_REC
    };
    Ok(Plan {
        setup,
        after_pivot: Some(after),
    })
}

/// Steps 1 and 2, before the rootfs is bound onto itself.
pub fn before_bind(plan: &Plan, rootfs: &Path) -> Result<()> {
    fsutil::mount(
        None,
        c"/",
        None,
        plan.setup,
        None,
        &"/ (linux.rootfsPropagation, before set-up)",
    )?;
    let dir = std::fs::File::open(rootfs).map_err(|e| Error::sys("open", rootfs.display(), e))?;
    let fdinfo = format!("/proc/self/fdinfo/{}", dir.as_raw_fd());
    let info = std::fs::read_to_string(&fdinfo).map_err(|e| Error::sys("read", &fdinfo, e))?;
    let mnt_id = info
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| Error::Protocol(format!("no mnt_id in {fdinfo}")))?;
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::sys("read", "/proc/self/mountinfo", e))?;
    let Some(parent) = mount_of(&table, mnt_id) else {
        return Err(Error::Protocol(format!(
            "mount {mnt_id} of rootfs {} is not in /proc/self/mountinfo",
            rootfs.display()
        )));
    };
    if parent.shared {
        let c = CString::new(parent.mount_point.as_os_str().as_bytes()).expect("no NUL");
        fsutil::mount(
            None,
            &c,
            None,
            libc::MS_PRIVATE,
            None,
            &format_args!(
                "{} (the rootfs's parent mount, private for pivot_root)",
                parent.mount_point.display()
            ),
        )?;
    }
    Ok(())
}

/// Step 3, with `/` the container's root.
pub fn after_pivot(plan: &Plan) -> Result<()> {
    match plan.after_pivot {
        Some(flags) => fsutil::mount(None, c"/", None, flags, None, &"linux.rootfsPropagation"),
        None => Ok(()),
    }
}

/// One line of `/proc/self/mountinfo`, as far as propagation needs it.
#[derive(Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    /// In a peer group (`shared:N` among the optional fields).
    pub shared: bool,
}

/// The entry of mount `id` in a mountinfo table (proc(5)): `ID PARENT
/// MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER`.
pub fn mount_of(table: &str, id: u64) -> Option<MountEntry> {
    table.lines().find_map(|line| {
        let mut f = line.split(' ');
        if f.next()?.parse::<u64>().ok()? != id {
            return None;
        }
        let mount_point = unescape(f.nth(3)?);
        let _options = f.next()?;
        let shared = f
            .take_while(|x| *x != "-")
            .any(|x| x.starts_with("shared:"));
        Some(MountEntry {
            mount_point,
            shared,
        })
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: libc::c_ulong = libc::MS_REC;

    #[test]
    fn every_value_has_a_plan() {
        let p = |v| plan(v).unwrap();
        assert_eq!(p(None).setup, libc::MS_SLAVE | R);
        assert_eq!(p(Some("")).after_pivot, None);
        assert_eq!(p(Some("rslave")).setup, libc::MS_SLAVE | R);
        assert_eq!(p(Some("rslave")).after_pivot, Some(libc::MS_SLAVE));
        // Bidirectional volumes need the host's peer groups kept through set-up.
        assert_eq!(p(Some("rshared")).setup, libc::MS_SHARED | R);
        assert_eq!(p(Some("rshared")).after_pivot, Some(libc::MS_SHARED));
        assert_eq!(p(Some("shared")).setup, libc::MS_SHARED);
        assert_eq!(p(Some("rprivate")).setup, libc::MS_PRIVATE | R);
        assert_eq!(p(Some("private")).after_pivot, Some(libc::MS_PRIVATE));
        assert_eq!(p(Some("slave")).setup, libc::MS_SLAVE);
        // Unbindable only once the rootfs is bound and pivoted.
        assert_eq!(p(Some("unbindable")).setup, libc::MS_PRIVATE);
        assert_eq!(p(Some("unbindable")).after_pivot, Some(libc::MS_UNBINDABLE));
        assert_eq!(p(Some("runbindable")).setup, libc::MS_PRIVATE | R);
        assert_eq!(
            p(Some("runbindable")).after_pivot,
            Some(libc::MS_UNBINDABLE | R)
        );
        let e = plan(Some("rro")).unwrap_err().to_string();
        assert!(e.contains("linux.rootfsPropagation"), "{e}");
        assert!(plan(Some("bogus")).is_err());
    }

    #[test]
    fn mountinfo_lines() {
        let t = "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                 80 27 0:40 / /run/a\\040b rw master:3 - tmpfs t rw\n\
                 81 27 0:41 / /x rw shared:7 master:2 - tmpfs t rw\n\
                 82 27 0:42 / /y rw - tmpfs shared:9 rw";
        assert_eq!(
            mount_of(t, 27),
            Some(MountEntry {
                mount_point: "/".into(),
                shared: true
            })
        );
        let e = mount_of(t, 80).unwrap();
        assert_eq!(e.mount_point, Path::new("/run/a b"));
        assert!(!e.shared);
        assert!(mount_of(t, 81).unwrap().shared);
        // After the separator nothing is an optional field.
        assert!(!mount_of(t, 82).unwrap().shared);
        assert_eq!(mount_of(t, 99), None);
        assert_eq!(unescape("a\\011b\\134c\\"), Path::new("a\tb\\c\\"));
    }
}
