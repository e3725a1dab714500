//! `mount(8)`-style option strings to `mount(2)` flags and data.

/// Parsed `mounts[].options`.
#[derive(Default)]
pub struct MountOpts {
    pub flags: libc::c_ulong,
    pub clear: libc::c_ulong,
    pub propagation: libc::c_ulong,
    pub data: Vec<String>,
    pub bind: bool,
}

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
