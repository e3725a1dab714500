//! Time namespaces (`linux.namespaces[time]`) and `linux.timeOffsets`.
//!
//! The init `unshare`s the namespace (see
//! [`super::namespaces::Plan::clone_and_unshare`]): that only makes it the
//! namespace of the init's future children, so the offsets can still be
//! written; `execve` then moves the init itself into it.

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// `CLONE_NEWTIME` when this kernel has time namespaces (for `setns` of execs).
pub fn flag_if_supported() -> i32 {
    if std::path::Path::new("/proc/self/ns/time").exists() {
        libc::CLONE_NEWTIME
    } else {
        0
    }
}

/// The text of `/proc/<pid>/timens_offsets` for the spec's offsets.
fn offsets_text(spec: &Spec) -> String {
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref());
    let mut clocks: Vec<_> = offsets.into_iter().flatten().collect();
    clocks.sort_by(|a, b| a.0.cmp(b.0));
    clocks
        .into_iter()
        .map(|(clock, o)| {
            format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect()
}

/// Writes the offsets into the time namespace just unshared (if any).
pub fn write_offsets(spec: &Spec) -> Result<()> {
    let new_time = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none());
    let text = offsets_text(spec);
    if !new_time || text.is_empty() {
        return Ok(());
    }
    std::fs::write("/proc/self/timens_offsets", &text).map_err(|e| {
        Error::Init(format!(
            "linux.timeOffsets: write /proc/self/timens_offsets ({}): {e}",
            text.trim().replace('\n', ", ")
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_file_format() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.1.0",
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "time"}],
                      "timeOffsets": {"monotonic": {"secs": 10}, "boottime": {"secs": -5, "nanosecs": 7}}}
        }))
        .unwrap();
        assert_eq!(offsets_text(&spec), "boottime -5 7\nmonotonic 10 0\n");
    }
}
