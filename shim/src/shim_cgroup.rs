//! `ShimCgroup`: the serving shim joins the cgroup containerd names, as the
//! runc shim does (containerd's TestShimInCgroup). The path is relative to
//! each hierarchy's root; the cgroup is the caller's (it must exist). On a v1
//! or hybrid host it is joined in every hierarchy where it exists, like
//! cgroups.Load + AddProc; on v2 in the one hierarchy.

use std::path::{Component, Path, PathBuf};

/// Mount points of the cgroup hierarchies (v1 and v2) of this mount namespace.
fn hierarchies() -> std::io::Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse_hierarchies(&info))
}

fn parse_hierarchies(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let point = pre.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| PathBuf::from(point.replace("\\040", " ")))
        })
        .collect()
}

/// The relative path under a hierarchy: no `..`, so it cannot leave it.
fn relative(cgroup: &str) -> Result<PathBuf, String> {
    let mut rel = PathBuf::new();
    for c in Path::new(cgroup).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            _ => {
                return Err(format!(
                    "ShimCgroup {cgroup:?}: a cgroup path relative to the hierarchy roots \
                     (like /pods/shim) may not contain \"..\""
                ))
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(format!("ShimCgroup {cgroup:?} names no cgroup"));
    }
    Ok(rel)
}

/// Moves process `pid` into `cgroup` in every hierarchy that has it.
pub fn join(cgroup: &str, pid: u32) -> Result<(), String> {
    let rel = relative(cgroup)?;
    let roots = hierarchies().map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    let mut joined = 0;
    for root in &roots {
        let dir = root.join(&rel);
        if !dir.is_dir() {
            continue;
        }
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .map_err(|e| format!("ShimCgroup: write {pid} to {}: {e}", procs.display()))?;
        joined += 1;
    }
    if joined == 0 {
        return Err(format!(
            "ShimCgroup {cgroup:?} exists in no cgroup hierarchy ({}): create it first",
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    log::debug!("shim {pid} joined {cgroup} in {joined} hierarchies");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_mountinfo() {
        let info = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
40 23 0:40 / /proc rw - proc proc rw";
        assert_eq!(
            parse_hierarchies(info),
            [
                PathBuf::from("/sys/fs/cgroup/unified"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
            ]
        );
    }

    #[test]
    fn paths_stay_inside_the_hierarchy() {
        assert_eq!(relative("/pods/shim").unwrap(), PathBuf::from("pods/shim"));
        assert_eq!(relative("pods").unwrap(), PathBuf::from("pods"));
        assert!(relative("/pods/../../etc").unwrap_err().contains(".."));
        assert!(relative("/").is_err());
    }
}
