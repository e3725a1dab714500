//! ID-mapped overlay lowerdirs for the rootfs of a user-namespaced pod: containerd 2.x's
//! overlayfs snapshotter adds `uidmap=C:H:N[,...]` and `gidmap=...` to the overlay's
//! options (CRI `hostUsers: false`), which the kernel's overlayfs does not know. The
//! runtime mounts each lowerdir ID-mapped through a user namespace of that mapping
//! (`open_tree` + `mount_setattr(MOUNT_ATTR_IDMAP)`), points the overlay at those, and
//! detaches them once the overlay holds its own references: the image's root-owned files
//! are then owned by the pod's mapped root, and the upper layer is written with host ids.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder};

use crate::error::{Error, Result};
use crate::init::mountattr;

/// The options with `uidmap=`/`gidmap=` taken out, and the mappings if there were any.
pub type Split = (
    Vec<String>,
    Option<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)>,
);

/// containerd's `C:H:N[,C:H:N...]` (container id, host id, length).
pub fn parse_map(opt: &str, text: &str) -> Result<Vec<LinuxIdMapping>> {
    let bad = |why: &str| {
        Error::unsupported(
            "rootfs mount option",
            format!("{opt}={text}: {why} (want containerID:hostID:length[,...])"),
        )
    };
    text.split(',')
        .map(|one| {
            let n: Vec<u32> = one
                .split(':')
                .map(|f| f.parse::<u32>().map_err(|_| bad("not a number")))
                .collect::<Result<_>>()?;
            let [c, h, len] = n[..] else {
                return Err(bad("not three fields"));
            };
            if len == 0 {
                return Err(bad("zero length"));
            }
            LinuxIdMappingBuilder::default()
                .container_id(c)
                .host_id(h)
                .size(len)
                .build()
                .map_err(|e| bad(&e.to_string()))
        })
        .collect()
}

/// Takes `uidmap=`/`gidmap=` out of `options` (a gidmap alone or a uidmap alone maps
/// both, as containerd does when the labels name one).
pub fn split(options: &[String]) -> Result<Split> {
    let (mut uid, mut gid, mut rest) = (None, None, Vec::new());
    for o in options {
        if let Some(v) = o.strip_prefix("uidmap=") {
            uid = Some(parse_map("uidmap", v)?);
        } else if let Some(v) = o.strip_prefix("gidmap=") {
            gid = Some(parse_map("gidmap", v)?);
        } else {
            rest.push(o.clone());
        }
    }
    let maps = match (uid, gid) {
        (None, None) => None,
        (Some(u), None) => Some((u.clone(), u)),
        (None, Some(g)) => Some((g.clone(), g)),
        (Some(u), Some(g)) => Some((u, g)),
    };
    Ok((rest, maps))
}

/// The ID-mapped copies of the lowerdirs, attached on dirs beside the rootfs; detached
/// and removed when dropped (after the overlay is mounted, or on its failure).
#[derive(Debug)]
pub struct Lowers(Vec<PathBuf>);

impl Drop for Lowers {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            if let Ok(c) = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()) {
                // SAFETY: `c` is a live NUL-terminated CString; flags are integers.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
            }
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// For an overlay with `uidmap=`/`gidmap=`: the options to mount instead (lowerdirs
/// replaced by ID-mapped copies, the map options removed) and the copies to drop after
/// the mount. Other mounts: `None`.
pub fn prepare(
    typ: &str,
    options: &[String],
    target: &Path,
) -> Result<Option<(Vec<String>, Lowers)>> {
    let (mut rest, maps) = split(options)?;
    let Some((uid, gid)) = maps else {
        return Ok(None);
    };
    if typ != "overlay" {
        return Err(Error::unsupported(
            "rootfs mount option",
            format!("uidmap/gidmap on a {typ} mount: only overlay rootfs mounts can be ID-mapped"),
        ));
    }
    let what = format!(
        "rootfs overlay on {} (ID-mapped lowerdirs)",
        target.display()
    );
    let Some(i) = rest.iter().position(|o| o.starts_with("lowerdir=")) else {
        return Err(Error::unsupported(
            "rootfs mount option",
            format!("{what}: uidmap/gidmap without a lowerdir="),
        ));
    };
    let ns = mountattr::userns_fd(&uid, &gid, &what)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut lowers = Lowers(Vec::new());
    let mut mapped = Vec::new();
    for (n, src) in rest[i]["lowerdir=".len()..].split(':').enumerate() {
        let tree = mountattr::idmapped_tree(Path::new(src), &ns, &what)?;
        let dir = target.with_file_name(format!(".{name}-idmap-lower-{n}"));
        std::fs::create_dir(&dir).map_err(|e| Error::sys("mkdir", dir.display(), e))?;
        lowers.0.push(dir.clone());
        let at: OwnedFd = std::fs::File::open(&dir)
            .map_err(|e| Error::sys("open", dir.display(), e))?
            .into();
        mountattr::move_onto(tree, &at, &what)?;
        mapped.push(dir.to_string_lossy().into_owned());
    }
    rest[i] = format!("lowerdir={}", mapped.join(":"));
    Ok(Some((rest, lowers)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn maps_are_taken_out_and_parsed() {
        let (rest, maps) = split(&s(&[
            "index=off",
            "uidmap=0:2621440:65536",
            "gidmap=0:2621440:65536,70000:1:1",
            "lowerdir=/a:/b",
        ]))
        .unwrap();
        assert_eq!(rest, s(&["index=off", "lowerdir=/a:/b"]));
        let (u, g) = maps.unwrap();
        assert_eq!(
            (u[0].container_id(), u[0].host_id(), u[0].size()),
            (0, 2621440, 65536)
        );
        assert_eq!(g.len(), 2);
        assert_eq!(
            (g[1].container_id(), g[1].host_id(), g[1].size()),
            (70000, 1, 1)
        );
    }

    #[test]
    fn one_map_maps_both_and_none_is_none() {
        let (_, maps) = split(&s(&["uidmap=0:100:10"])).unwrap();
        let (u, g) = maps.unwrap();
        assert_eq!(u[0].host_id(), g[0].host_id());
        assert!(split(&s(&["ro", "lowerdir=/a"])).unwrap().1.is_none());
    }

    #[test]
    fn bad_maps_are_one_clear_error() {
        for bad in ["uidmap=0:1", "uidmap=a:1:2", "uidmap=0:1:0", "gidmap="] {
            let e = split(&s(&[bad])).unwrap_err().to_string();
            assert!(
                e.contains(bad.split('=').next().unwrap())
                    && e.contains("containerID:hostID:length"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_map_on_anything_but_overlay_is_refused() {
        let e = prepare(
            "bind",
            &s(&["uidmap=0:1:1"]),
            Path::new("/nonexistent/rootfs"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("only overlay"), "{e}");
        assert!(prepare("overlay", &s(&["lowerdir=/a"]), Path::new("/x"))
            .unwrap()
            .is_none());
    }
}
