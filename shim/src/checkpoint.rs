//! Checkpoint and restore (CRIU).
//!
//! Where `criu check` passes (the cgroup v2 guest: kernel 6.1, CRIU 3.17),
//! Checkpoint dumps the container through runtime-core's checkpoint module
//! (`criu dump`, runc's image layout). Where it fails, Checkpoint and restore
//! answer Unimplemented with what `criu check` said: the CRIU this machine
//! can have (Debian bookworm's 3.17) cannot checkpoint any process on kernels
//! 6.13+, which split the vDSO's data pages into `[vvar]` and `[vvar_vclock]`
//! (CRIU before 4.1 stops at start-up, "Unexpected rt vDSO area bounds",
//! checkpoint-restore/criu#2532). Restore (Create with a checkpoint) is not
//! implemented yet, on any host, and says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message as _;
use containerd_shim_protos::shim::oci::CheckpointOptions;
use runtime_core::checkpoint::DumpOpts;
use ttrpc::Code;

/// The cause in a failed `criu check`'s output: its first error line (the later ones
/// are consequences), else its last line.
pub fn criu_check_cause(o: &std::process::Output) -> String {
    let all = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    all.lines()
        .find(|l| l.contains("Error"))
        .or_else(|| all.lines().last())
        .unwrap_or("no output")
        .trim()
        .to_string()
}

/// Why checkpoint/restore is unavailable here (`Ok` when `criu check`
/// passes), probed once.
fn criu_verdict() -> &'static Result<(), String> {
    static VERDICT: OnceLock<Result<(), String>> = OnceLock::new();
    VERDICT.get_or_init(|| {
        // criu is our child: the orphan reaper must leave its status to us.
        let _gate = crate::reaper::spawning();
        let out = Command::new("criu")
            .arg("check")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output();
        match out {
            Err(e) => Err(format!(
                "criu is not usable ({e}; Debian: apt-get install criu)"
            )),
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "CRIU cannot run on this kernel: `criu check` fails with {:?} \
                 (a CRIU with vvar_vclock support, 4.1 or later, is needed)",
                criu_check_cause(&o)
            )),
        }
    })
}

/// The message for a restore into container `id`, or for a Checkpoint
/// where `criu check` fails.
pub fn unavailable(what: &str, id: &str) -> String {
    match criu_verdict() {
        Err(why) => format!(
            "{what} of container {id}: checkpoint/restore is not implemented by \
             containerd-shim-rust-v1 on this host: {why}"
        ),
        Ok(()) => format!(
            "{what} of container {id}: restore from a checkpoint is not implemented by \
             containerd-shim-rust-v1 yet (criu check passes here, and Checkpoint works); \
             use runtime io.containerd.runc.v2 to restore"
        ),
    }
}

/// `criu check` passes on this host.
pub fn criu_works() -> bool {
    criu_verdict().is_ok()
}

pub const CHECKPOINT_OPTIONS: &str = "containerd.runc.v1.CheckpointOptions";

/// runtime-core's dump options from containerd's request: the image goes to
/// `path` (containerd's choice, or the `image_path` option when the client
/// gave one); the work directory is `work_path` or `BUNDLE/criu-work`.
pub fn dump_opts(bundle: &Path, path: &str, options: Option<&Any>) -> Result<DumpOpts, String> {
    let o = match options {
        Some(a) if !(a.type_url.is_empty() && a.value.is_empty()) => {
            let name = a.type_url.rsplit('/').next().unwrap_or(&a.type_url);
            if name != CHECKPOINT_OPTIONS {
                return Err(format!(
                    "checkpoint options of type {:?}: expected {CHECKPOINT_OPTIONS}",
                    a.type_url
                ));
            }
            CheckpointOptions::parse_from_bytes(&a.value)
                .map_err(|e| format!("checkpoint options {CHECKPOINT_OPTIONS}: {e}"))?
        }
        _ => CheckpointOptions::new(),
    };
    let image = if path.is_empty() { &o.image_path } else { path };
    if image.is_empty() {
        return Err("checkpoint: no image path (neither the request's path nor \
                    the image_path option is set)"
            .into());
    }
    let work = if o.work_path.is_empty() {
        bundle.join("criu-work")
    } else {
        PathBuf::from(&o.work_path)
    };
    Ok(DumpOpts {
        criu: PathBuf::new(),
        image_dir: image.into(),
        work_dir: work,
        leave_running: !o.exit,
        tcp_established: o.open_tcp,
        ext_unix_sk: o.external_unix_sockets,
        shell_job: o.terminal,
        file_locks: o.file_locks,
        empty_ns: o.empty_namespaces,
        cgroups_mode: o.cgroups_mode,
        freeze_cgroup: None,
    })
}

/// Checkpoint of container `c` (on a blocking thread): Unimplemented where
/// `criu check` fails, else the dump; with `exit` CRIU kills the tree and
/// the init's waiter publishes its exit as for any other.
pub fn checkpoint(
    c: &crate::container::Container,
    path: &str,
    options: Option<&Any>,
) -> Result<(), (Code, String)> {
    if !criu_works() {
        return Err((Code::UNIMPLEMENTED, unavailable("Checkpoint", &c.id)));
    }
    let opts = dump_opts(&c.bundle, path, options)
        .map_err(|e| (Code::INVALID_ARGUMENT, format!("container {}: {e}", c.id)))?;
    let core = c.core().ok_or_else(|| {
        (
            Code::FAILED_PRECONDITION,
            format!("checkpoint of container {}: it is deleted", c.id),
        )
    })?;
    let own_work = opts.work_dir == c.bundle.join("criu-work");
    let res = {
        // criu is our child: the orphan reaper must leave its status to us.
        let _gate = crate::reaper::spawning();
        runtime_core::checkpoint::dump(&core, &opts)
    };
    match res {
        Ok(()) => {
            if own_work {
                let _ = std::fs::remove_dir_all(&opts.work_dir);
            }
            Ok(())
        }
        Err(e) => Err((
            Code::INTERNAL,
            format!("checkpoint of container {}: {e}", c.id),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::Message;

    fn any(o: &CheckpointOptions) -> Any {
        Any {
            type_url: CHECKPOINT_OPTIONS.into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn containerd_checkpoint_options_become_dump_options() {
        let mut o = CheckpointOptions::new();
        o.exit = true;
        o.open_tcp = true;
        o.terminal = true;
        o.cgroups_mode = "full".into();
        o.work_path = "/w".into();
        let d = dump_opts(Path::new("/b"), "/img", Some(&any(&o))).unwrap();
        assert_eq!(d.image_dir, Path::new("/img"));
        assert_eq!(d.work_dir, Path::new("/w"));
        assert!(!d.leave_running && d.tcp_established && d.shell_job);
        assert!(!d.ext_unix_sk && !d.file_locks);
        assert_eq!(d.cgroups_mode, "full");
        // No options: leave running, work dir in the bundle.
        let d = dump_opts(Path::new("/b"), "/img", None).unwrap();
        assert!(d.leave_running);
        assert_eq!(d.work_dir, Path::new("/b/criu-work"));
        // The image_path option when containerd's path is empty.
        o.image_path = "/opt-img".into();
        let d = dump_opts(Path::new("/b"), "", Some(&any(&o))).unwrap();
        assert_eq!(d.image_dir, Path::new("/opt-img"));
    }

    #[test]
    fn bad_checkpoint_options_are_named() {
        let e = dump_opts(Path::new("/b"), "", None).unwrap_err();
        assert!(e.contains("no image path"), "{e}");
        let a = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![],
            ..Default::default()
        };
        let e = dump_opts(Path::new("/b"), "/i", Some(&a)).unwrap_err();
        assert!(
            e.contains("containerd.runc.v1.Options") && e.contains(CHECKPOINT_OPTIONS),
            "{e}"
        );
    }
}
