//! `mount(8)`-style option strings to `mount(2)` flags and data.

/// Parsed `mounts[].options`.
#[derive(Default)]
pub struct MountOpts {
    pub flags: libc::c_ulong,
    pub clear: libc::c_ulong,
    pub propagation: libc::c_ulong,
    pub data: Vec<String>,
    pub bind: bool,
    /// The recursive `r*` attributes (`rro`, `rnosuid`, …), applied with
    /// `mount_setattr(AT_RECURSIVE)` to the mount and every mount below it.
    pub rec: RecAttr,
}

/// `struct mount_attr`'s set and clear masks (`MOUNT_ATTR_*`).
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub struct RecAttr {
    pub set: u64,
    pub clr: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// The atime mode is a 3-bit field, not flags: changing it takes the whole
/// field in `attr_clr` (mount_setattr(2)).
pub const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x10_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x20_0000;

/// The recursive attribute an `r*` option names (runc's list) and whether it
/// sets (`true`) or clears the flag; atime modes are handled apart.
fn rec_flag(opt: &str) -> Option<(u64, bool)> {
    Some(match opt {
        "rro" => (MOUNT_ATTR_RDONLY, true),
        "rrw" => (MOUNT_ATTR_RDONLY, false),
        "rnosuid" => (MOUNT_ATTR_NOSUID, true),
        "rsuid" => (MOUNT_ATTR_NOSUID, false),
        "rnodev" => (MOUNT_ATTR_NODEV, true),
        "rdev" => (MOUNT_ATTR_NODEV, false),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, true),
        "rexec" => (MOUNT_ATTR_NOEXEC, false),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, true),
        "rdiratime" => (MOUNT_ATTR_NODIRATIME, false),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, true),
        "rsymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, false),
        _ => return None,
    })
}

/// The atime mode an `r*atime` option selects. The negative forms give the
/// kernel's default, relatime, as their `mount(2)` counterparts do.
fn rec_atime(opt: &str) -> Option<u64> {
    Some(match opt {
        "rnoatime" => MOUNT_ATTR_NOATIME,
        "rstrictatime" => MOUNT_ATTR_STRICTATIME,
        "rrelatime" | "ratime" | "rnorelatime" | "rnostrictatime" => MOUNT_ATTR_RELATIME,
        _ => return None,
    })
}

/// Every recursive option name [`parse_options`] understands: for the
/// features document's `mountOptions` (written in features.rs).
pub const RECURSIVE_OPTIONS: &[&str] = &[
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rnoatime",
    "ratime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
];

pub fn parse_options(options: &[String]) -> MountOpts {
    let mut o = MountOpts::default();
    for opt in options {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => {
                o.bind = true;
                (libc::MS_BIND, 0)
            }
            "rbind" => {
                o.bind = true;
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation |= propagation_flag(opt).unwrap_or(0);
                (0, 0)
            }
            r if rec_flag(r).is_some() => {
                let (flag, set) = rec_flag(r).unwrap_or_default();
                if set {
                    o.rec.set |= flag;
                    o.rec.clr &= !flag;
                } else {
                    o.rec.clr |= flag;
                    o.rec.set &= !flag;
                }
                (0, 0)
            }
            r if rec_atime(r).is_some() => {
                // The last atime option wins; the field is replaced whole.
                o.rec.set = (o.rec.set & !MOUNT_ATTR_ATIME_MASK) | rec_atime(r).unwrap_or(0);
                o.rec.clr |= MOUNT_ATTR_ATIME_MASK;
                (0, 0)
            }
            _ => {
                o.data.push(opt.clone());
                (0, 0)
            }
        };
        o.flags = (o.flags | set) & !clear;
        o.clear |= clear;
    }
    o
}

pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    let (rec, base) = match name.strip_prefix('r') {
        Some(b) if b != "o" => (libc::MS_REC, b),
        _ => (0, name),
    };
    let f = match base {
        "private" => libc::MS_PRIVATE,
        "shared" => libc::MS_SHARED,
        "slave" => libc::MS_SLAVE,
        "unbindable" => libc::MS_UNBINDABLE,
        _ => return None,
    };
    Some(f | rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> MountOpts {
        parse_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn recursive_attributes() {
        let o = opts(&["rbind", "rro", "rnosuid", "rnodev", "nosymfollow-not-ours"]);
        assert_eq!(
            o.rec,
            RecAttr {
                set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                clr: 0
            }
        );
        assert!(o.bind && o.flags & libc::MS_REC != 0 && o.flags & libc::MS_RDONLY == 0);
        // Not passed to the filesystem as data; unknown options still are.
        assert_eq!(o.data, vec!["nosymfollow-not-ours".to_string()]);
        // The last of a pair wins.
        let o = opts(&["rro", "rrw", "rexec"]);
        assert_eq!(
            o.rec,
            RecAttr {
                set: 0,
                clr: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC
            }
        );
        // atime: a mode, with the whole field cleared, the last one winning.
        let o = opts(&["rnoatime", "rstrictatime"]);
        assert_eq!(o.rec.set, MOUNT_ATTR_STRICTATIME);
        assert_eq!(o.rec.clr, MOUNT_ATTR_ATIME_MASK);
        let o = opts(&["rnoatime", "ratime"]);
        assert_eq!(o.rec.set, MOUNT_ATTR_RELATIME);
        // Propagation and plain flags are untouched.
        let o = opts(&["rprivate", "ro"]);
        assert_eq!(o.rec, RecAttr::default());
        assert_eq!(o.propagation, libc::MS_PRIVATE | libc::MS_REC);
        for name in RECURSIVE_OPTIONS {
            assert!(opts(&[name]).data.is_empty(), "{name}");
        }
    }
}
