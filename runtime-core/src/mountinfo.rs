//! `/proc/<pid>/mountinfo`, parsed as the kernel writes it.
//!
//! The kernel escapes space, tab, newline and backslash in paths as octal
//! (`\040`, `\011`, `\012`, `\134`: `show_mountinfo` → `seq_path`/`mangle`);
//! a parser that splits on spaces without undoing that misreads every mount
//! point with a space in it. The procfs root is a parameter so the decisions
//! built on this (which cgroup hierarchies exist, where they are mounted) can
//! be tested against a file in a temporary directory, without root.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One line of mountinfo (see proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u32,
    pub parent: u32,
    /// `major:minor` of the filesystem.
    pub dev: String,
    /// The root of the mount within its filesystem.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,...`).
    pub options: String,
    /// Optional fields: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options.
    pub super_options: String,
}

/// Undoes the kernel's octal escapes (`\ooo`) in one field.
pub fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one line; `None` for a line that is not of mountinfo's shape.
pub fn parse_line(line: &str) -> Option<Mount> {
    // "id parent maj:min root mountpoint opts [optional...] - fstype source superopts"
    let (pre, post) = line.split_once(" - ")?;
    let mut pre = pre.split(' ');
    let id = pre.next()?.parse().ok()?;
    let parent = pre.next()?.parse().ok()?;
    let dev = pre.next()?.to_string();
    let root = PathBuf::from(unescape(pre.next()?));
    let mount_point = PathBuf::from(unescape(pre.next()?));
    let options = pre.next()?.to_string();
    let optional = pre.filter(|f| !f.is_empty()).map(String::from).collect();
    let mut post = post.split(' ');
    let fstype = unescape(post.next()?);
    let source = unescape(post.next().unwrap_or_default());
    let super_options = post.next().unwrap_or_default().to_string();
    Some(Mount {
        id,
        parent,
        dev,
        root,
        mount_point,
        options,
        optional,
        fstype,
        source,
        super_options,
    })
}

/// Every mount of `text` (a whole mountinfo file), skipping malformed lines.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// The mounts seen by process `pid` (`"self"` for this one) under the procfs
/// mounted at `proc_root` (`/proc` on a real host; a temporary tree in tests).
pub fn read(proc_root: &Path, pid: &str) -> Result<Vec<Mount>> {
    let path = proc_root.join(pid).join("mountinfo");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::sys("read", path.display(), e))?;
    Ok(parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
29 22 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
30 22 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
101 29 8:1 /data\\040dir /mnt/with\\040space\\011tab rw,relatime shared:40 master:2 - ext4 /dev/sda\\1341 rw
102 29 8:1 / /mnt/new\\012line rw - ext4 /dev/sda1 rw
103 29 0:50 / /mnt/private rw - tmpfs tmpfs rw
";

    #[test]
    fn unescapes_the_four_kernel_escapes() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("a\\011b"), "a\tb");
        assert_eq!(unescape("a\\012b"), "a\nb");
        assert_eq!(unescape("a\\134b"), "a\\b");
        // Not an escape: left as it is.
        assert_eq!(unescape("a\\9b\\"), "a\\9b\\");
        assert_eq!(unescape("end\\04"), "end\\04");
    }

    #[test]
    fn parses_fields_and_optional_tags() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 6);
        assert_eq!(m[1].fstype, "cgroup2");
        assert_eq!(m[1].mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(m[2].super_options, "rw,memory");
        assert_eq!(m[3].root, Path::new("/data dir"));
        assert_eq!(m[3].mount_point, Path::new("/mnt/with space\ttab"));
        assert_eq!(m[3].optional, vec!["shared:40", "master:2"]);
        assert_eq!(m[3].source, "/dev/sda\\1");
        assert_eq!(m[4].mount_point, Path::new("/mnt/new\nline"));
        assert!(m[5].optional.is_empty());
        assert_eq!((m[5].id, m[5].parent), (103, 29));
    }

    #[test]
    fn skips_malformed_lines() {
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("x 1 0:1 / /a rw - tmpfs t rw").is_none());
        assert_eq!(
            parse("garbage\n22 1 0:21 / /proc rw - proc proc rw\n").len(),
            1
        );
    }

    #[test]
    fn reads_from_an_injected_proc_root() {
        let dir = std::env::temp_dir().join(format!("rshim-mountinfo-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("self")).unwrap();
        std::fs::write(dir.join("self/mountinfo"), SAMPLE).unwrap();
        let m = read(&dir, "self").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(m.len(), 6);
        let err = read(&dir, "self").unwrap_err().to_string();
        assert!(err.contains("mountinfo"), "{err}");
    }
}
