//! Hostile input through containerd (ctr, and the Task API as containerd
//! drives it): what a broken or malicious client sends must get one clear
//! error or work, never wedge the shim, and leave nothing behind. Needs root
//! and scripts/test's private containerd.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `ctr ARGS` that must answer within `secs`: a hang is a wedged shim.
fn run_within(secs: u64, args: &[&str]) -> Output {
    let mut child = ctr(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ctr {} hung for {secs} s", args[..2].join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// This test's own directory under /tmp (removed at the end of the test).
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rshim-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `ctr oci spec` edited by `edit`, with the test rootfs (read-only: it is
/// shared) and containerd's cgroup path, written to `dir/config.json`, for
/// `ctr run --config`.
fn config(dir: &Path, id: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let o = run(&["oci", "spec"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["root"] = serde_json::json!({"path": rootfs(), "readonly": true});
    v["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{id}", ns()));
    v["process"]["args"] = serde_json::json!(["/bin/true"]);
    edit(&mut v);
    let p = dir.join("config.json");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    p
}

/// `ctr run --rm --config` that must fail with `want` in its error and
/// leave nothing: no task, container, shim, bundle, cgroup or mount.
fn refused_at_create(id: &str, cfg: &Path, want: &str) {
    let o = run_within(
        60,
        &[
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
            "--config",
            cfg.to_str().unwrap(),
            id,
        ],
    );
    assert!(!o.status.success(), "{id} ran");
    let err = text(&o.stderr);
    assert!(err.contains(want), "{id}: {want:?} not in: {err}");
    assert_eq!(err.lines().count(), 1, "{id}: not one error: {err}");
    // ctr leaves the container record of a failed task create.
    let _ = run(&["c", "rm", id]);
    assert_eq!(task_status(id), None);
    assert_no_leftovers(id);
}

#[test]
fn exec_with_one_and_a_half_mebibytes_of_args_then_every_call_still_answers() {
    needs_root!();
    let id = "bigexec";
    run_detached(id, &[], &["sleep", "1000"]);
    let filler = "a".repeat(1023);
    let mut args = vec![
        "task",
        "exec",
        "--exec-id",
        "big",
        id,
        "sh",
        "-c",
        "echo $#",
        "x",
    ];
    args.extend(std::iter::repeat_n(filler.as_str(), 1536));
    let o = run_within(60, &args);
    assert_eq!(text(&o.stdout), "1536\n", "{}", text(&o.stderr));
    let o = run_within(
        30,
        &["task", "exec", "--exec-id", "small", id, "echo", "hi"],
    );
    assert_eq!(text(&o.stdout), "hi\n", "{}", text(&o.stderr));
    assert!(run_within(30, &["task", "kill", "-s", "KILL", id])
        .status
        .success());
    wait_for("task stopped", Duration::from_secs(20), || {
        task_status(id).as_deref() == Some("STOPPED")
    });
    assert!(run_within(30, &["task", "rm", id]).status.success());
    assert!(run(&["c", "rm", id]).status.success());
    assert_no_leftovers(id);
}

#[test]
fn init_args_over_the_execve_limit_are_one_error_at_create() {
    needs_root!();
    let dir = scratch("bigargs");
    let cfg = config(&dir, "bigargs", |v| {
        let mut args = vec!["/bin/sh".to_string(), "-c".into(), "echo $#".into()];
        args.extend(std::iter::repeat_n("a".repeat(1023), 4096));
        v["process"]["args"] = serde_json::json!(args);
    });
    refused_at_create("bigargs", &cfg, "process.args/env");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ids_of_minus_one_are_refused_for_the_init() {
    needs_root!();
    let dir = scratch("uid");
    for (id, field, user) in [
        (
            "uidm1",
            "process.user.uid",
            serde_json::json!({"uid": 4294967295u32, "gid": 0}),
        ),
        (
            "gidm1",
            "process.user.gid",
            serde_json::json!({"uid": 0, "gid": 4294967295u32}),
        ),
        (
            "agidm1",
            "process.user.additionalGids[1]",
            serde_json::json!({"uid": 0, "gid": 0, "additionalGids": [1, 4294967295u32]}),
        ),
    ] {
        let cfg = config(&dir, id, |v| v["process"]["user"] = user);
        refused_at_create(id, &cfg, field);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ids_of_minus_one_are_refused_for_an_exec() {
    needs_root!();
    use containerd_shim_protos::api::{ExecProcessRequest, StartRequest};
    use containerd_shim_protos::protobuf::MessageField;

    let id = "uidexec";
    run_detached(id, &[], &["sleep", "1000"]);
    let before = run(&["task", "ps", id]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (exec_id, field, uid, gid) in [
        ("u", "exec process.user.uid", u32::MAX, 0),
        ("g", "exec process.user.gid", 0, u32::MAX),
    ] {
        let mut spec = exec_spec(id, &["id"]);
        let mut p: serde_json::Value = serde_json::from_slice(&spec.value).unwrap();
        p["user"] = serde_json::json!({"uid": uid, "gid": gid});
        spec.value = serde_json::to_vec(&p).unwrap();
        let e = rt.block_on(async {
            let client = task_client(id).await;
            let exec = ExecProcessRequest {
                id: id.into(),
                exec_id: exec_id.into(),
                spec: MessageField::some(spec),
                ..Default::default()
            };
            // Refused at Exec already; a Start of it then finds no exec.
            let refused = client.exec(deadline(), &exec).await.unwrap_err();
            let start = StartRequest {
                id: id.into(),
                exec_id: exec_id.into(),
                ..Default::default()
            };
            assert!(client.start(deadline(), &start).await.is_err());
            refused
        });
        match e {
            ttrpc::Error::RpcStatus(s) => {
                assert_eq!(s.code(), ttrpc::Code::INVALID_ARGUMENT, "{s:?}");
                assert!(s.message().contains(field), "{s:?}");
            }
            other => panic!("exec {exec_id}: {other}"),
        }
    }
    // Nothing ran: the container's processes are the init alone.
    assert_eq!(text(&run(&["task", "ps", id]).stdout), text(&before.stdout));
    assert!(run(&["task", "kill", "-s", "KILL", id]).status.success());
    wait_for("task stopped", Duration::from_secs(20), || {
        task_status(id).as_deref() == Some("STOPPED")
    });
    assert!(run(&["task", "rm", id]).status.success());
    assert!(run(&["c", "rm", id]).status.success());
    assert_no_leftovers(id);
}

#[test]
fn a_failed_start_leaves_a_stopped_task_that_deletes_cleanly() {
    needs_root!();
    // Executable but not a program: execve fails (ENOEXEC) only at Start.
    let dir = scratch("badexe");
    let bad = dir.join("notelf");
    std::fs::write(&bad, b"\x7fELF but not really\n").unwrap();
    std::fs::set_permissions(&bad, PermissionsExt::from_mode(0o755)).unwrap();
    let mount = format!(
        "type=bind,src={},dst=/notelf,options=rbind:ro",
        bad.display()
    );
    // In a loop: the race it guards against (the Start reply before the
    // init's exit is recorded) showed in about one run of five.
    for i in 0..10 {
        let id = format!("badstart{i}");
        let o = run_within(
            60,
            &[
                "run",
                "--rm",
                "--runtime",
                RUNTIME,
                "--mount",
                &mount,
                IMAGE,
                &id,
                "/notelf",
            ],
        );
        assert!(!o.status.success(), "{id} started");
        let err = text(&o.stderr);
        assert!(
            err.contains("/notelf") && err.contains("Exec format error"),
            "{id}: {err}"
        );
        // ctr --rm deleted the task and the container: nothing is left.
        assert_eq!(task_status(&id), None, "{id}: task left");
        let cs = text(&run(&["c", "ls", "-q"]).stdout);
        assert!(!cs.lines().any(|l| l == id), "{id}: container left");
        assert_no_leftovers(&id);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Peer group of the mount at `mount_point` in a mountinfo table, if shared.
fn peer_group(mountinfo: &str, mount_point: &str) -> Option<String> {
    let line = mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(mount_point))?;
    line.split(' ')
        .take_while(|f| *f != "-")
        .find_map(|f| f.strip_prefix("shared:").map(String::from))
}

fn is_mount(mount_point: &Path) -> bool {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = mount_point.to_str().unwrap();
    mi.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

/// Unmounts (recursively) a test's own host mount, also when the test fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg(&self.0).status();
    }
}

fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// A volume from a shared host mount, under each rootfsPropagation value:
/// the container starts, and a mount made in the container under the volume
/// reaches the host (and one made on the host reaches the container) exactly
/// where runc 1.1.5 propagates it; runbindable, which runc cannot start,
/// propagates nothing. `rshared` is Kubernetes' Bidirectional: the volume is
/// in the host mount's own peer group.
#[test]
fn every_rootfs_propagation_value_runs_and_propagates_as_runc() {
    needs_root!();
    // value, container -> host, host -> container
    let cases = [
        ("", false, true),
        ("rslave", false, true),
        ("rshared", true, true),
        ("rprivate", false, false),
        ("runbindable", false, false),
        // Non-recursive: `/` alone; the volume keeps the host's propagation.
        ("slave", true, true),
        ("shared", true, true),
        ("private", true, true),
        ("unbindable", true, true),
    ];
    let dir = scratch("prop");
    for (value, to_host, to_container) in cases {
        let name = if value.is_empty() { "default" } else { value };
        let id = format!("prop-{name}");
        let h = dir.join(name);
        std::fs::create_dir_all(&h).unwrap();
        sh(&format!(
            "mount -t tmpfs vol-{name} {0} && mount --make-shared {0} && mkdir {0}/fromc {0}/fromh",
            h.display()
        ));
        let mounted = Mounted(h.clone());
        let vol = format!("type=bind,src={},dst=/vol,options=rbind", h.display());
        let mut opts = vec!["--cap-add", "CAP_SYS_ADMIN", "--mount", &vol];
        if !value.is_empty() {
            opts.extend(["--rootfs-propagation", value]);
        }
        let script = "mount -t tmpfs fromc /vol/fromc && touch /vol/ready; exec sleep 1000";
        run_detached(&id, &opts, &["sh", "-c", script]);
        wait_for("the container's mount", Duration::from_secs(10), || {
            h.join("ready").exists()
        });
        sh(&format!("mount -t tmpfs fromh {}/fromh", h.display()));
        // Propagation is synchronous: the copies exist once mount(2) returned.
        let inside = run(&[
            "task",
            "exec",
            "--exec-id",
            "mi",
            &id,
            "cat",
            "/proc/self/mountinfo",
        ]);
        let inside = text(&inside.stdout);
        let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(
            is_mount(&h.join("fromc")),
            to_host,
            "{name}: container -> host"
        );
        assert_eq!(
            inside.contains(" /vol/fromh "),
            to_container,
            "{name}: host -> container:\n{inside}"
        );
        if value == "rshared" {
            let hp = peer_group(&host, h.to_str().unwrap());
            assert!(hp.is_some(), "the host volume is not shared");
            assert_eq!(
                peer_group(&inside, "/vol"),
                hp,
                "rshared: not the host's peer group:\n{inside}"
            );
        }
        assert!(run(&["task", "kill", "-s", "KILL", &id]).status.success());
        wait_for("task stopped", Duration::from_secs(20), || {
            task_status(&id).as_deref() == Some("STOPPED")
        });
        assert!(run(&["task", "rm", &id]).status.success());
        assert!(run(&["c", "rm", &id]).status.success());
        assert_no_leftovers(&id);
        drop(mounted);
        assert!(!is_mount(&h), "{name}: volume still mounted");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
