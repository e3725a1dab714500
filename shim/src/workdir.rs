//! The shim's per-container work directory, `<bundle>/rshim`.
//!
//! It holds what `delete` needs after the shim itself died (the init pid).
//! Like containerd's bundles it is created so that the container's root can
//! traverse it when the spec maps a user namespace (group = host GID of
//! container GID 0, mode 0710), and removed by renaming it to a hidden name
//! first: a half-removed directory is never mistaken for a live one.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

pub const NAME: &str = "rshim";

pub fn path(bundle: &Path) -> PathBuf {
    bundle.join(NAME)
}

/// Host GID that container GID 0 maps to, when the spec has a user namespace.
pub fn remapped_root_gid(spec: &Spec) -> Option<u32> {
    let linux = spec.linux().as_ref()?;
    let userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User);
    if !userns {
        return None;
    }
    linux
        .gid_mappings()
        .iter()
        .flatten()
        .find(|m| m.container_id() == 0)
        .map(|m| m.host_id())
}

pub fn create(bundle: &Path, spec: &Spec) -> std::io::Result<PathBuf> {
    let dir = path(bundle);
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    if let Some(gid) = remapped_root_gid(spec) {
        std::os::unix::fs::chown(&dir, Some(0), Some(gid))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o710))?;
    }
    Ok(dir)
}

/// Rename-then-remove; a missing directory is not an error.
pub fn remove(bundle: &Path) -> std::io::Result<()> {
    let dir = path(bundle);
    let hidden = bundle.join(format!(".{NAME}.deleting.{}", std::process::id()));
    match fs::rename(&dir, &hidden) {
        Ok(()) => fs::remove_dir_all(&hidden),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rshim-wd-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn plain_spec_gets_0700() {
        let b = tmp("plain");
        let d = create(&b, &spec(r#"{"ociVersion":"1.0.2","linux":{}}"#)).unwrap();
        let m = fs::metadata(&d).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o700);
        remove(&b).unwrap();
        assert!(!d.exists());
        assert_eq!(
            fs::read_dir(&b).unwrap().count(),
            0,
            "nothing hidden left behind"
        );
        fs::remove_dir(&b).unwrap();
    }

    #[test]
    fn userns_spec_gets_remapped_gid_0710() {
        // Needs root (chown); CI runs as root.
        let b = tmp("userns");
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"user"}],
            "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
            "gidMappings":[{"containerID":0,"hostID":200000,"size":65536}]}}"#,
        );
        assert_eq!(remapped_root_gid(&s), Some(200000));
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // Straight to fd 2, past libtest's capture: the skip is seen by name.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: workdir::tests::userns_spec_gets_remapped_gid_0710 needs root\n",
            );
            fs::remove_dir(&b).unwrap();
            return;
        }
        let d = create(&b, &s).unwrap();
        let m = fs::metadata(&d).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o710, 0, 200000));
        remove(&b).unwrap();
        fs::remove_dir(&b).unwrap();
    }
}
