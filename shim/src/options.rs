//! The runtime options containerd hands the shim: on `start`'s stdin (and
//! `-info`'s), and in CreateTask's `options`, as a protobuf `Any` of either
//! - `containerd.runc.v1.Options`, the runc shim's own type (a client that
//!   sets runc options as task options, e.g. Go clients with `WithRuntime`), or
//! - `runtimeoptions.v1.Options`, what containerd's CRI sends for any runtime
//!   type other than runc's: the runtime's `options` TOML table as
//!   `config_body` (containerd 1.7 and 2.x), or a file named by `config_path`
//!   (`ConfigPath = ...` in that table; also `ctr run --runtime-config-path`).
//!
//! The keys are the runc shim's (`SystemdCgroup`, `ShimCgroup`, `IoUid`...):
//! a `[...runtimes.rust.options]` table reads as a `runc` one does. Each is
//! applied or refused by name ([`Options::refusals`]); an unknown TOML key is
//! refused too, so a typo never passes silently.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{CodedInputStream, Message};
use containerd_shim_protos::shim::oci::Options as RuncOptions;

pub const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
pub const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";
/// The legacy linux runtime's task options, which ctr 1.7 sends for
/// `--uidmap` (IoUid/IoGid for the remapped root).
pub const LINUX_CREATE_OPTIONS: &str = "containerd.linux.runc.CreateOptions";

/// What the options say, in the runc shim's terms.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Options {
    /// The cgroup (relative to each hierarchy's root) the shim process joins.
    pub shim_cgroup: String,
    /// Owner of the pipes the shim makes for a container's stdio.
    pub io_uid: u32,
    pub io_gid: u32,
    /// The systemd cgroup driver (`slice:prefix:name` cgroup paths).
    pub systemd_cgroup: bool,
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
    pub root: String,
    pub binary_name: String,
    pub criu_path: String,
    pub criu_image_path: String,
    pub criu_work_path: String,
    pub task_api_address: String,
}

/// The message name of an `Any`'s type URL (containerd writes the bare name;
/// a `type.googleapis.com/` prefix is accepted too).
fn message_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}

impl Options {
    /// Decodes containerd's `Any`; an empty one means no options.
    pub fn from_any(any: &Any) -> Result<Options, String> {
        if any.type_url.is_empty() && any.value.is_empty() {
            return Ok(Options::default());
        }
        match message_name(&any.type_url) {
            RUNC_OPTIONS => {
                let o = RuncOptions::parse_from_bytes(&any.value)
                    .map_err(|e| format!("runtime options {RUNC_OPTIONS}: {e}"))?;
                Ok(Options {
                    shim_cgroup: o.shim_cgroup,
                    io_uid: o.io_uid,
                    io_gid: o.io_gid,
                    systemd_cgroup: o.systemd_cgroup,
                    no_pivot_root: o.no_pivot_root,
                    no_new_keyring: o.no_new_keyring,
                    root: o.root,
                    binary_name: o.binary_name,
                    criu_path: String::new(),
                    criu_image_path: o.criu_image_path,
                    criu_work_path: o.criu_work_path,
                    task_api_address: o.task_api_address,
                })
            }
            RUNTIME_OPTIONS => {
                let (path, body) = runtime_options_fields(&any.value)
                    .map_err(|e| format!("runtime options {RUNTIME_OPTIONS}: {e}"))?;
                if !path.is_empty() {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("runtime options ConfigPath {path}: {e}"))?;
                    return Options::from_toml(&text)
                        .map_err(|e| format!("runtime options ConfigPath {path}: {e}"));
                }
                let text = String::from_utf8(body)
                    .map_err(|_| "runtime options config_body is not UTF-8".to_string())?;
                Options::from_toml(&text).map_err(|e| format!("runtime options: {e}"))
            }
            LINUX_CREATE_OPTIONS => linux_create_options(&any.value)
                .map_err(|e| format!("runtime options {LINUX_CREATE_OPTIONS}: {e}")),
            other => Err(format!(
                "runtime options of type {other:?} are not understood: \
                 {RUNC_OPTIONS}, {LINUX_CREATE_OPTIONS} or {RUNTIME_OPTIONS} (the CRI \
                 runtime's options table) are"
            )),
        }
    }

    /// Decodes protobuf bytes of an `Any` (what `start` and `-info` read).
    pub fn from_any_bytes(bytes: &[u8]) -> Result<(Options, Option<Any>), String> {
        if bytes.is_empty() {
            return Ok((Options::default(), None));
        }
        let any = Any::parse_from_bytes(bytes)
            .map_err(|e| format!("runtime options on stdin are not a protobuf Any: {e}"))?;
        Ok((Options::from_any(&any)?, Some(any)))
    }

    /// The runtime's `options` TOML table, with the runc shim's key names.
    pub fn from_toml(text: &str) -> Result<Options, String> {
        let table: toml::Table = text.parse().map_err(|e| format!("TOML: {e}"))?;
        Options::from_table(&table)
    }

    /// The same, from an already parsed table.
    pub fn from_table(table: &toml::Table) -> Result<Options, String> {
        let mut o = Options::default();
        for (key, value) in table {
            let s = || {
                value
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{key} must be a string"))
            };
            let b = || {
                value
                    .as_bool()
                    .ok_or_else(|| format!("{key} must be true or false"))
            };
            let n = || {
                value
                    .as_integer()
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(|| format!("{key} must be a number from 0 to 4294967295"))
            };
            match key.as_str() {
                "ShimCgroup" => o.shim_cgroup = s()?,
                "IoUid" => o.io_uid = n()?,
                "IoGid" => o.io_gid = n()?,
                "SystemdCgroup" => o.systemd_cgroup = b()?,
                "NoPivotRoot" => o.no_pivot_root = b()?,
                "NoNewKeyring" => o.no_new_keyring = b()?,
                "Root" => o.root = s()?,
                "BinaryName" => o.binary_name = s()?,
                "CriuPath" => o.criu_path = s()?,
                "CriuImagePath" => o.criu_image_path = s()?,
                "CriuWorkPath" => o.criu_work_path = s()?,
                "TaskApiAddress" => o.task_api_address = s()?,
                // containerd's own keys of runtimeoptions.v1.Options.
                "TypeUrl" | "ConfigPath" => {}
                other => {
                    return Err(format!(
                        "unknown runtime option {other:?}; known: ShimCgroup, IoUid, IoGid, \
                         SystemdCgroup, NoPivotRoot, NoNewKeyring, Root, BinaryName, CriuPath, \
                         CriuImagePath, CriuWorkPath"
                    ))
                }
            }
        }
        Ok(o)
    }

    /// Options this shim cannot honour, each named with why and what to do.
    /// `SystemdCgroup` is checked where the create path would use it.
    pub fn refusals(&self) -> Vec<String> {
        let mut r = Vec::new();
        let mut refuse = |set: bool, name: &str, why: &str| {
            if set {
                r.push(format!("runtime option {name} is not supported: {why}"));
            }
        };
        refuse(
            self.no_pivot_root,
            "NoPivotRoot",
            "the rootfs is always entered with pivot_root (a rootfs on a ramfs cannot be \
             pivoted: put it on tmpfs or overlayfs); remove NoPivotRoot",
        );
        refuse(
            self.no_new_keyring,
            "NoNewKeyring",
            "every container gets its own session keyring, which keeps the host's keys \
             out of it; remove NoNewKeyring",
        );
        refuse(
            !self.root.is_empty(),
            "Root",
            "it is runc's state directory; this shim runs no runc and keeps its state in \
             the bundle; remove Root",
        );
        refuse(
            !self.binary_name.is_empty(),
            "BinaryName",
            "this shim runs containers itself, not through a runc-compatible binary; \
             use runtime_type io.containerd.runc.v2 to run one",
        );
        // CriuImagePath and CriuWorkPath are a restore's (crate::checkpoint::restore_from).
        refuse(
            !self.criu_path.is_empty(),
            "CriuPath",
            "checkpoint and restore run `criu` from the shim's PATH (containerd 2.0 \
             dropped this option too); remove CriuPath",
        );
        refuse(
            !self.task_api_address.is_empty(),
            "TaskApiAddress",
            "the shim serves its Task API on the socket it announces from start only",
        );
        r
    }
}

/// `containerd.linux.runc.CreateOptions`, field by field (not among the
/// generated types): no_pivot_root 1, no_new_keyring 8, shim_cgroup 9,
/// io_uid 10, io_gid 11, criu_work_path 12, criu_image_path 13; the others
/// are checkpoint/restore settings that apply to no create.
fn linux_create_options(bytes: &[u8]) -> Result<Options, String> {
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut o = Options::default();
    let e = |e: containerd_shim_protos::protobuf::Error| e.to_string();
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(e)? {
        match (tag >> 3, tag & 7) {
            (1, 0) => o.no_pivot_root = input.read_bool().map_err(e)?,
            (8, 0) => o.no_new_keyring = input.read_bool().map_err(e)?,
            (9, 2) => o.shim_cgroup = input.read_string().map_err(e)?,
            (10, 0) => o.io_uid = input.read_uint32().map_err(e)?,
            (11, 0) => o.io_gid = input.read_uint32().map_err(e)?,
            (12, 2) => o.criu_work_path = input.read_string().map_err(e)?,
            (13, 2) => o.criu_image_path = input.read_string().map_err(e)?,
            (_, wire) => {
                let wire = containerd_shim_protos::protobuf::rt::WireType::new(wire)
                    .ok_or_else(|| format!("bad wire type {wire}"))?;
                input.skip_field(wire).map_err(e)?;
            }
        }
    }
    Ok(o)
}

/// `config_path` (2) and `config_body` (3) of a `runtimeoptions.v1.Options`
/// (`type_url` (1) is informational), read field by field: the type is not
/// among containerd-shim-protos' generated ones.
fn runtime_options_fields(bytes: &[u8]) -> Result<(String, Vec<u8>), String> {
    let mut input = CodedInputStream::from_bytes(bytes);
    let (mut path, mut body) = (String::new(), Vec::new());
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(|e| e.to_string())? {
        match (tag >> 3, tag & 7) {
            (1, 2) => {
                input.read_string().map_err(|e| e.to_string())?;
            }
            (2, 2) => path = input.read_string().map_err(|e| e.to_string())?,
            (3, 2) => body = input.read_bytes().map_err(|e| e.to_string())?,
            (_, wire) => {
                let wire = containerd_shim_protos::protobuf::rt::WireType::new(wire)
                    .ok_or_else(|| format!("bad wire type {wire}"))?;
                input.skip_field(wire).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok((path, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::CodedOutputStream;

    fn runtime_options(path: &str, body: &str) -> Any {
        let mut v = Vec::new();
        {
            let mut out = CodedOutputStream::vec(&mut v);
            out.write_string(1, "").unwrap();
            if !path.is_empty() {
                out.write_string(2, path).unwrap();
            }
            out.write_bytes(3, body.as_bytes()).unwrap();
            out.flush().unwrap();
        }
        Any {
            type_url: RUNTIME_OPTIONS.into(),
            value: v,
            ..Default::default()
        }
    }

    #[test]
    fn runc_options_type() {
        let o = RuncOptions {
            shim_cgroup: "/pods/a".into(),
            io_uid: 7,
            io_gid: 8,
            systemd_cgroup: true,
            ..Default::default()
        };
        let any = Any {
            type_url: RUNC_OPTIONS.into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let got = Options::from_any(&any).unwrap();
        assert_eq!(
            (got.shim_cgroup.as_str(), got.io_uid, got.io_gid),
            ("/pods/a", 7, 8)
        );
        assert!(got.systemd_cgroup);
        assert!(got.refusals().is_empty());
    }

    #[test]
    fn cri_config_body() {
        let any = runtime_options(
            "",
            "ShimCgroup = \"/x\"\nIoUid = 1000\nSystemdCgroup = false\n",
        );
        let got = Options::from_any(&any).unwrap();
        assert_eq!((got.shim_cgroup.as_str(), got.io_uid), ("/x", 1000));
    }

    #[test]
    fn config_path_file() {
        let p = std::env::temp_dir().join(format!("rshim-opts-{}.toml", std::process::id()));
        std::fs::write(&p, "IoGid = 5\n").unwrap();
        let got = Options::from_any(&runtime_options(p.to_str().unwrap(), "")).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(got.io_gid, 5);
    }

    #[test]
    fn unknown_key_and_bad_type_are_named() {
        let e = Options::from_toml("SystemdCgroups = true").unwrap_err();
        assert!(e.contains("SystemdCgroups"), "{e}");
        let e = Options::from_toml("IoUid = -1").unwrap_err();
        assert!(e.contains("IoUid"), "{e}");
        let e = Options::from_any(&Any {
            type_url: "example.Other".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("example.Other"), "{e}");
    }

    #[test]
    fn each_refusal_names_its_option() {
        let o = Options::from_toml(
            "NoPivotRoot = true\nNoNewKeyring = true\nRoot = \"/r\"\nBinaryName = \"crun\"\n\
             CriuPath = \"/c\"\nCriuImagePath = \"/i\"\nCriuWorkPath = \"/w\"",
        )
        .unwrap();
        let r = o.refusals().join("\n");
        for name in [
            "NoPivotRoot",
            "NoNewKeyring",
            "Root",
            "BinaryName",
            "CriuPath",
        ] {
            assert!(r.contains(&format!("option {name} ")), "{name} in {r}");
        }
        // A restore's image and work paths are taken (see checkpoint::restore_from).
        assert!(
            !r.contains("CriuImagePath") && !r.contains("CriuWorkPath"),
            "{r}"
        );
        assert!(Options::default().refusals().is_empty());
    }

    #[test]
    fn linux_create_options_of_ctr_17() {
        let mut v = Vec::new();
        {
            let mut out = CodedOutputStream::vec(&mut v);
            out.write_bool(4, true).unwrap(); // terminal: checkpoint only
            out.write_uint32(10, 100000).unwrap();
            out.write_uint32(11, 100001).unwrap();
            out.flush().unwrap();
        }
        let got = Options::from_any(&Any {
            type_url: LINUX_CREATE_OPTIONS.into(),
            value: v,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((got.io_uid, got.io_gid), (100000, 100001));
        assert!(got.refusals().is_empty());
    }

    #[test]
    fn empty_stdin_is_no_options() {
        let (o, any) = Options::from_any_bytes(&[]).unwrap();
        assert_eq!(o, Options::default());
        assert!(any.is_none());
    }
}
