//! Where the cgroup hierarchies are (from `/proc/self/mountinfo`) and how a
//! container's cgroup path maps into each of them.

use std::path::{Component, Path, PathBuf};

use crate::error::Result;

/// One mounted hierarchy: its mount point and the name it gets in a container.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// `memory`, `cpu,cpuacct`, `name=systemd`, or `` for the v2 (unified) tree.
    pub name: String,
    pub v2: bool,
}

impl Hierarchy {
    /// True for the v1 hierarchy that carries `controller`.
    pub fn has(&self, controller: &str) -> bool {
        !self.v2 && self.name.split(',').any(|c| c == controller)
    }
}

/// The hierarchies mounted on this host, each once.
pub fn mounted() -> Result<Vec<Hierarchy>> {
    Ok(from_mounts(crate::mountinfo::read(
        Path::new("/proc"),
        "self",
    )?))
}

/// The hierarchies of a mount table's text (`/proc/PID/mountinfo`).
pub fn parse_mountinfo(info: &str) -> Vec<Hierarchy> {
    from_mounts(crate::mountinfo::parse(info))
}

fn from_mounts(mounts: Vec<crate::mountinfo::Mount>) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for m in mounts {
        match m.fstype.as_str() {
            "cgroup2" => out.push(Hierarchy {
                mount: m.mount_point,
                name: String::new(),
                v2: true,
            }),
            "cgroup" => {
                let name: Vec<&str> = m
                    .super_options
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro" | "clone_children" | "noprefix" | "xattr")
                            && !o.starts_with("release_agent")
                    })
                    .collect();
                out.push(Hierarchy {
                    mount: m.mount_point,
                    name: name.join(","),
                    v2: false,
                });
            }
            _ => {}
        }
    }
    // A hierarchy can be mounted twice; keep the first mount point of each.
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| seen.insert((h.name.clone(), h.v2)));
    out
}

/// `linux.cgroupsPath` made relative to a hierarchy root, resolved lexically
/// the way runc does (securejoin-style): `.` is dropped and `..` removes the
/// previous component but never climbs above the root, so `/../../etc` is
/// `etc` under each hierarchy and nothing outside the cgroup mounts is ever
/// named.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot_cannot_climb_above_the_root() {
        for (given, want) in [
            ("/a/b", "a/b"),
            ("a/./b/", "a/b"),
            ("/../../../tmp/escape", "tmp/escape"),
            ("../x", "x"),
            ("/a/../../b/../c", "c"),
            ("/a/b/..", "a"),
            ("/..", ""),
            ("//a//b", "a/b"),
        ] {
            assert_eq!(clean(Path::new(given)), Path::new(want), "{given}");
        }
    }

    #[test]
    fn mountinfo() {
        let info = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw shared:9 - cgroup cgroup rw,memory
30 25 0:26 / /mnt/memory-again rw - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset,clone_children
";
        let h = parse_mountinfo(info);
        let names: Vec<(&str, bool)> = h.iter().map(|h| (h.name.as_str(), h.v2)).collect();
        assert_eq!(
            names,
            [
                ("", true),
                ("name=systemd", false),
                ("cpu,cpuacct", false),
                ("memory", false),
                ("cpuset", false)
            ]
        );
        assert_eq!(h[3].mount, Path::new("/sys/fs/cgroup/memory"));
        assert!(h[2].has("cpuacct") && !h[0].has("cpuacct"));
    }
}
