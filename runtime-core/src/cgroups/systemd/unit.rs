//! The systemd form of `linux.cgroupsPath`, `slice:prefix:name`, as runc
//! reads it: which unit the container gets, in which slice, and where that
//! unit's cgroup is in the hierarchy.

use std::path::PathBuf;

use crate::error::{Error, Result};

const SLICE: &str = ".slice";
const SCOPE: &str = ".scope";

/// A container's systemd unit: a transient scope in a slice (the usual
/// case), or a transient slice when the name part ends in `.slice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// `system.slice`, `kubepods-besteffort-pod<uid>.slice`, …
    pub slice: String,
    /// `cri-containerd-<id>.scope`, or the name itself for a slice.
    pub name: String,
    /// The unit's cgroup, relative to the hierarchy root
    /// (`kubepods.slice/kubepods-besteffort.slice/…/cri-containerd-<id>.scope`).
    pub cgroup: PathBuf,
}

impl Unit {
    pub fn is_slice(&self) -> bool {
        self.name.ends_with(SLICE)
    }
}

fn bad(path: &str, why: impl std::fmt::Display) -> Error {
    Error::unsupported(
        "linux.cgroupsPath",
        format!("{path:?} is not a valid systemd cgroup path \"slice:prefix:name\": {why}"),
    )
}

/// True when `cgroupsPath` is written in the systemd driver's form.
/// A cgroupfs path never contains `:` (runc's rule: with `--systemd-cgroup`
/// the path must have exactly this form, without it must not).
pub fn is_systemd_form(path: &str) -> bool {
    path.contains(':')
}

/// Parses `slice:prefix:name` (runc's specconv). An empty slice is
/// `system.slice`, as in runc; an empty prefix gives `name.scope`.
pub fn parse(path: &str) -> Result<Unit> {
    let parts: Vec<&str> = path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(bad(path, "expected exactly three parts separated by ':'"));
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    if name.is_empty() {
        return Err(bad(path, "the name part is empty"));
    }
    check_unit_chars(path, prefix, "prefix")?;
    check_unit_chars(path, name, "name")?;
    let slice_dir = expand_slice(slice).map_err(|why| bad(path, why))?;
    if name.ends_with(SLICE) {
        // A slice's parent is given by its name (`a-b.slice` is in `a.slice`):
        // it must be the slice named first, or systemd would put it elsewhere.
        let own = expand_slice(name).map_err(|why| bad(path, why))?;
        let parent = own.parent().map(PathBuf::from).unwrap_or_default();
        if parent != slice_dir {
            return Err(bad(
                path,
                format!(
                    "slice {name} would be created under {} by systemd, not in {slice}: name it {}-….slice",
                    if parent.as_os_str().is_empty() { "-.slice".to_string() } else { parent.display().to_string() },
                    slice.trim_end_matches(SLICE)
                ),
            ));
        }
        if !prefix.is_empty() {
            return Err(bad(
                path,
                "a name ending in .slice makes the container a slice, which takes no prefix",
            ));
        }
        return Ok(Unit {
            slice: slice.to_string(),
            name: name.to_string(),
            cgroup: own,
        });
    }
    let unit = if prefix.is_empty() {
        format!("{name}{SCOPE}")
    } else {
        format!("{prefix}-{name}{SCOPE}")
    };
    Ok(Unit {
        slice: slice.to_string(),
        cgroup: slice_dir.join(&unit),
        name: unit,
    })
}

/// systemd's unit-name alphabet (`unit_name_is_valid`): ASCII letters and
/// digits and `:-_.\`. A `/` would also escape the slice's directory.
fn check_unit_chars(path: &str, part: &str, what: &str) -> Result<()> {
    if let Some(c) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '\\')))
    {
        return Err(bad(
            path,
            format!("the {what} {part:?} has {c:?}, which systemd does not allow in a unit name"),
        ));
    }
    Ok(())
}

/// Where systemd puts a slice's cgroup, relative to the hierarchy root:
/// each `-` opens a nested slice (`a-b-c.slice` is `a.slice/a-b.slice/a-b-c.slice`),
/// and `-.slice` is the root. Errors are systemd's rules for slice names.
pub fn expand_slice(slice: &str) -> std::result::Result<PathBuf, String> {
    let Some(stem) = slice.strip_suffix(SLICE) else {
        return Err(format!("slice {slice:?} does not end in \".slice\""));
    };
    if stem == "-" {
        return Ok(PathBuf::new());
    }
    if stem.is_empty() {
        return Err(format!("slice {slice:?} has an empty name"));
    }
    if let Some(c) = stem
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '\\')))
    {
        return Err(format!(
            "slice {slice:?} has {c:?}, which systemd does not allow in a unit name"
        ));
    }
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        // `a--b.slice`, `-a.slice` and `a-.slice` name no parent systemd could make.
        if part.is_empty() {
            return Err(format!(
                "slice {slice:?} has an empty part between '-' (systemd refuses it)"
            ));
        }
        path.push(format!("{prefix}{part}{SLICE}"));
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_nested_slices() {
        assert_eq!(
            expand_slice("kubepods-burstable-pod1.slice").unwrap(),
            PathBuf::from("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice")
        );
        assert_eq!(
            expand_slice("system.slice").unwrap(),
            PathBuf::from("system.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::new());
    }

    #[test]
    fn refuses_bad_slices() {
        for s in [
            "system",
            ".slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "../x.slice",
            "a b.slice",
        ] {
            assert!(expand_slice(s).is_err(), "{s}");
        }
    }

    #[test]
    fn scope_names() {
        let u = parse("system.slice:rshim:c1").unwrap();
        assert_eq!(u.name, "rshim-c1.scope");
        assert_eq!(u.slice, "system.slice");
        assert_eq!(u.cgroup, PathBuf::from("system.slice/rshim-c1.scope"));
        assert!(!u.is_slice());

        let u = parse("kubepods-besteffort-pod7.slice:cri-containerd:abc").unwrap();
        assert_eq!(u.name, "cri-containerd-abc.scope");
        assert_eq!(
            u.cgroup,
            PathBuf::from(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7.slice/cri-containerd-abc.scope"
            )
        );

        assert_eq!(parse("system.slice::c1").unwrap().name, "c1.scope");
        assert_eq!(parse(":rshim:c1").unwrap().slice, "system.slice");
    }

    #[test]
    fn slice_names() {
        let u = parse("kubepods.slice::kubepods-pod1.slice").unwrap();
        assert!(u.is_slice());
        assert_eq!(u.name, "kubepods-pod1.slice");
        assert_eq!(
            u.cgroup,
            PathBuf::from("kubepods.slice/kubepods-pod1.slice")
        );
        // systemd would put other.slice in -.slice, not in kubepods.slice.
        let e = parse("kubepods.slice::other.slice")
            .unwrap_err()
            .to_string();
        assert!(e.contains("-.slice") && e.contains("kubepods-"), "{e}");
        assert!(parse("kubepods.slice:p:kubepods-x.slice").is_err());
    }

    #[test]
    fn refuses_bad_paths() {
        for p in [
            "system.slice:rshim",
            "a:b:c:d",
            "system.slice:rshim:",
            "system:rshim:c1",
            "sys--tem.slice:rshim:c1",
            "system.slice:rs/him:c1",
            "system.slice:rshim:../c1",
            "system.slice:rshim:c 1",
        ] {
            let e = parse(p).unwrap_err().to_string();
            assert!(e.contains("linux.cgroupsPath") && e.contains(p), "{p}: {e}");
        }
    }

    #[test]
    fn form_detection() {
        assert!(is_systemd_form("system.slice:rshim:c1"));
        assert!(!is_systemd_form("/rshim-test/c1"));
    }
}
