//! Checkpoint and restore (CRIU).
//!
//! Where `criu check` passes (the cgroup v2 guest: kernel 6.1, CRIU 3.17),
//! Checkpoint dumps the container through runtime-core's checkpoint module
//! (`criu dump`, runc's image layout). Where it fails, Checkpoint and restore
//! answer Unimplemented with what `criu check` said: the CRIU this machine
//! can have (Debian bookworm's 3.17) cannot checkpoint any process on kernels
//! 6.13+, which split the vDSO's data pages into `[vvar]` and `[vvar_vclock]`
//! (CRIU before 4.1 stops at start-up, "Unexpected rt vDSO area bounds",
//! checkpoint-restore/criu#2532).
//!
//! Restore is a Create with `checkpoint` set (containerd unpacks a
//! checkpoint image there, `ctr container restore --live`), or with the
//! runtime option `CriuImagePath`: runtime-core's restore (`criu restore`)
//! brings the tree back at Create, stopped, and Start continues it; Wait,
//! Kill, Delete and the exit event are those of any init.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use containerd_shim_protos::api::CreateTaskRequest;
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

/// The message for a Checkpoint or restore of container `id` where `criu
/// check` fails (see [`criu_works`]).
pub fn unavailable(what: &str, id: &str) -> String {
    match criu_verdict() {
        Err(why) => format!(
            "{what} of container {id}: checkpoint/restore is not implemented by \
             containerd-shim-rust-v1 on this host: {why}"
        ),
        Ok(()) => format!("{what} of container {id}: criu check passes here"),
    }
}

/// Where a restore reads its image and writes its log.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreFrom {
    pub image_dir: PathBuf,
    pub work_dir: PathBuf,
}

/// Whether containerd's Create is a restore, and from where: the request's
/// `checkpoint`, else the runtime option `CriuImagePath` (as the runc shim
/// reads them); the work directory is `CriuWorkPath` or `BUNDLE/criu-work`.
/// Refuses by name what a restore here cannot honour.
pub fn restore_from(
    bundle: &Path,
    req: &CreateTaskRequest,
    opts: &crate::options::Options,
) -> Result<Option<RestoreFrom>, String> {
    let image = if req.checkpoint.is_empty() {
        &opts.criu_image_path
    } else {
        &req.checkpoint
    };
    if !req.parent_checkpoint.is_empty() {
        return Err(format!(
            "restore: parent_checkpoint {:?} is not supported: CRIU follows the image's \
             own `parent` link to its pre-dumps (runc's restore takes no parent either); \
             leave it empty",
            req.parent_checkpoint
        ));
    }
    if image.is_empty() {
        return Ok(None);
    }
    if req.terminal {
        return Err(
            "restore with a terminal is not supported: the restored process's pty \
                    comes back only over runc's console socket, which containerd does not \
                    pass on restore; checkpoint and restore the task without a terminal \
                    (or use io.containerd.runc.v2)"
                .into(),
        );
    }
    let work_dir = if opts.criu_work_path.is_empty() {
        bundle.join("criu-work")
    } else {
        PathBuf::from(&opts.criu_work_path)
    };
    Ok(Some(RestoreFrom {
        image_dir: image.into(),
        work_dir,
    }))
}

/// Restores container `req.id` from `from` (on a blocking thread, with the
/// reaper gate held by the caller); our own work directory goes afterwards.
pub fn restore(
    req: &CreateTaskRequest,
    from: &RestoreFrom,
    stdio: runtime_core::Stdio,
) -> runtime_core::Result<runtime_core::Container> {
    let bundle = Path::new(&req.bundle);
    let res = runtime_core::checkpoint::restore(runtime_core::checkpoint::RestoreOpts {
        id: &req.id,
        bundle,
        stdio,
        criu: PathBuf::new(),
        image_dir: from.image_dir.clone(),
        work_dir: from.work_dir.clone(),
    });
    if from.work_dir == bundle.join("criu-work") {
        let _ = std::fs::remove_dir_all(&from.work_dir);
    }
    res
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

    fn create(checkpoint: &str) -> CreateTaskRequest {
        CreateTaskRequest {
            id: "c1".into(),
            bundle: "/b".into(),
            checkpoint: checkpoint.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_create_is_a_restore_from_checkpoint_or_criu_image_path() {
        let none = crate::options::Options::default();
        assert_eq!(restore_from(Path::new("/b"), &create(""), &none), Ok(None));
        let r = restore_from(Path::new("/b"), &create("/ck"), &none).unwrap();
        assert_eq!(
            r,
            Some(RestoreFrom {
                image_dir: "/ck".into(),
                work_dir: "/b/criu-work".into(),
            })
        );
        let opts = crate::options::Options {
            criu_image_path: "/opt-img".into(),
            criu_work_path: "/w".into(),
            ..Default::default()
        };
        let r = restore_from(Path::new("/b"), &create(""), &opts)
            .unwrap()
            .unwrap();
        assert_eq!(r.image_dir, Path::new("/opt-img"));
        assert_eq!(r.work_dir, Path::new("/w"));
        // The request's checkpoint wins over the option (containerd filled it from there).
        let r = restore_from(Path::new("/b"), &create("/ck"), &opts)
            .unwrap()
            .unwrap();
        assert_eq!(r.image_dir, Path::new("/ck"));
        // A work path alone restores nothing.
        let work_only = crate::options::Options {
            criu_work_path: "/w".into(),
            ..Default::default()
        };
        assert_eq!(
            restore_from(Path::new("/b"), &create(""), &work_only),
            Ok(None)
        );
    }

    #[test]
    fn restore_refuses_parent_checkpoint_and_terminal_by_name() {
        let none = crate::options::Options::default();
        let mut req = create("/ck");
        req.parent_checkpoint = "/parent".into();
        let e = restore_from(Path::new("/b"), &req, &none).unwrap_err();
        assert!(
            e.contains("parent_checkpoint") && e.contains("/parent"),
            "{e}"
        );
        let mut req = create("/ck");
        req.terminal = true;
        let e = restore_from(Path::new("/b"), &req, &none).unwrap_err();
        assert!(e.contains("terminal") && e.contains("runc.v2"), "{e}");
        // Not a restore: a terminal is fine, a parent checkpoint is still refused.
        let mut req = create("");
        req.terminal = true;
        assert_eq!(restore_from(Path::new("/b"), &req, &none), Ok(None));
        req.parent_checkpoint = "/parent".into();
        assert!(restore_from(Path::new("/b"), &req, &none).is_err());
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
