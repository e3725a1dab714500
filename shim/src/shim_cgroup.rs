//! `ShimCgroup`: the serving shim joins the cgroup containerd names, as the
//! runc shim does (containerd's TestShimInCgroup). The path is relative to
//! each hierarchy's root; the cgroup is the caller's (it must exist). On a v1
//! or hybrid host it is joined in every hierarchy where it exists, like
//! cgroups.Load + AddProc; on v2 in the one hierarchy.

use std::path::{Component, Path, PathBuf};

/// Mount points of the cgroup hierarchies (v1 and v2) of this mount namespace,
/// one per hierarchy, from runtime-core's mountinfo reader (which unescapes the
/// kernel's octal escapes).
fn hierarchies() -> Result<Vec<PathBuf>, String> {
    runtime_core::cgroups::hierarchy::mounted()
        .map(mount_points)
        .map_err(|e| format!("cgroup hierarchies of /proc/self/mountinfo: {e}"))
}

fn mount_points(h: Vec<runtime_core::cgroups::hierarchy::Hierarchy>) -> Vec<PathBuf> {
    h.into_iter().map(|h| h.mount).collect()
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
    let roots = hierarchies()?;
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
            mount_points(runtime_core::cgroups::hierarchy::parse_mountinfo(info)),
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
