//! Checkpoint (CRIU) through containerd and `ctr task checkpoint`, for our
//! runtime and for runc's shim beside it. Two branches, chosen by `criu
//! check` and printed:
//! - it fails (this host: kernel 6.18, CRIU 3.17): Checkpoint and restore
//!   answer Unimplemented, naming `criu check`'s error;
//! - it passes (the cgroup v2 guest, kernel 6.1): a counting container is
//!   checkpointed leaving it running (it goes on counting, same pid) and
//!   then with `--exit` (it stops); both images have runc's layout.
//!
//! And restore (Create with a checkpoint): where `criu check` fails it
//! answers Unimplemented; where it passes, a container holding state (a
//! random token and a counter in a shell's variables, a background sleep)
//! is checkpointed into an image (`ctr container checkpoint --task`),
//! deleted, and restored from it (`ctr container restore --live`): inside,
//! the same token, the counter going on from where it was, the same pids;
//! then Wait, Kill and Delete, nothing left. The same with runc's shim; and
//! a restore from a broken image fails naming CRIU's log, leaving nothing.
//!
//! Needs root and the private containerd of `scripts/test`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// The first error `criu check` reports on this host (its cause).
fn criu_check_error() -> Option<String> {
    let o = std::process::Command::new("criu")
        .arg("check")
        .output()
        .expect("run criu check (Debian: apt-get install criu)");
    if o.status.success() {
        return None;
    }
    let all = text(&o.stderr) + &text(&o.stdout);
    Some(
        all.lines()
            .find(|l| l.contains("Error"))
            .unwrap_or("no output")
            .trim()
            .to_string(),
    )
}

fn start_counter(runtime: &str, id: &str) {
    let script = "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.05; done";
    let o = run(&[
        "run",
        "-d",
        "--runtime",
        runtime,
        IMAGE,
        id,
        "sh",
        "-c",
        script,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_for("task running", Duration::from_secs(60), || {
        task_status(id).as_deref() == Some("RUNNING")
    });
    wait_for("counter", Duration::from_secs(30), || counter(id).is_some());
}

/// The counter, read from inside the container.
fn counter(id: &str) -> Option<u64> {
    let o = run(&["task", "exec", "--exec-id", "rd", id, "cat", "/tmp/counter"]);
    text(&o.stdout).trim().parse().ok()
}

/// The init's host pid (`ctr task ls`) and pid 1's command line inside.
fn init_identity(id: &str) -> String {
    let ls = text(&run(&["task", "ls"]).stdout);
    let host = ls
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_string();
    let o = run(&[
        "task",
        "exec",
        "--exec-id",
        "pid",
        id,
        "cat",
        "/proc/1/cmdline",
    ]);
    format!("{host} {}", text(&o.stdout).replace('\0', " "))
}

fn criu_processes() -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "criu") {
            v.push(pid);
        }
    }
    v
}

/// The image files (kinds, without the pid or mount-id suffix) of a dump: `core-N`,
/// and `tmpfs-dev-N.tar.gz` for a tmpfs's contents (CRIU names those by mount id,
/// which differs from dump to dump).
fn layout(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .map(|n| {
            let (stem, ext) = match n.strip_suffix(".tar.gz.img") {
                Some(s) => (s, ".tar.gz"),
                None => (n.trim_end_matches(".img"), ""),
            };
            match stem.rsplit_once('-') {
                Some((k, d)) if d.chars().all(|c| c.is_ascii_digit()) => format!("{k}-N{ext}"),
                _ => n.clone(),
            }
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Leave-running then exit checkpoints of a counter under `runtime`; the
/// image layouts.
fn checkpoint_twice(runtime: &str, id: &str, dir: &Path) -> (Vec<String>, Vec<String>) {
    start_counter(runtime, id);
    let pid_before = init_identity(id);
    let running = dir.join(format!("{id}-running"));
    // ctr 1.x sends its --exit and --image-path only to io.containerd.runc.v1 (and the
    // v1 linux runtime): for runc.v2 and for us it sends no options at all, and keeps the
    // image in containerd's content store. So on 1.x the checkpoints go to the shim
    // through the Task API, with the options containerd's clients send
    // (containerd.runc.v1.CheckpointOptions) and the image path as `path`.
    let old_ctr = env().version.starts_with("1.");
    if old_ctr {
        checkpoint_through_the_task_api(id, &running, false)
            .unwrap_or_else(|e| panic!("{runtime}: Checkpoint: {e}"));
    } else {
        let o = run(&[
            "task",
            "checkpoint",
            "--image-path",
            running.to_str().unwrap(),
            id,
        ]);
        assert!(
            o.status.success(),
            "{runtime}: checkpoint: {}",
            text(&o.stderr)
        );
    }
    assert_eq!(
        task_status(id).as_deref(),
        Some("RUNNING"),
        "{runtime}: left running"
    );
    let at_dump = counter(id).expect("counter after the dump");
    std::thread::sleep(Duration::from_millis(1500));
    let later = counter(id).expect("counter later");
    assert!(
        later > at_dump,
        "{runtime}: counter stopped at {at_dump} after a leave-running checkpoint"
    );
    assert_eq!(init_identity(id), pid_before, "{runtime}: init pid changed");
    // The exit checkpoint is of a second container `ID-exit`: ctr 1.6 also writes the
    // checkpoint's spec and options into containerd's content store, and a second
    // checkpoint of the same container fails there with "content ... already exists"
    // (ctr 2.x does not), whatever the runtime.
    let id2 = format!("{id}-exit");
    start_counter(runtime, &id2);
    let exited = dir.join(format!("{id}-exit"));
    if old_ctr {
        checkpoint_through_the_task_api(&id2, &exited, true)
            .unwrap_or_else(|e| panic!("{runtime}: Checkpoint with exit: {e}"));
    } else {
        let o = run(&[
            "task",
            "checkpoint",
            "--exit",
            "--image-path",
            exited.to_str().unwrap(),
            &id2,
        ]);
        assert!(
            o.status.success(),
            "{runtime}: checkpoint --exit: {}",
            text(&o.stderr)
        );
    }
    wait_for(
        "task stopped by checkpoint --exit",
        Duration::from_secs(30),
        || task_status(&id2).as_deref() == Some("STOPPED"),
    );
    (layout(&running), layout(&exited))
}

#[test]
fn checkpoint_dumps_like_runc_or_says_why_not() {
    needs_root!();
    if let Some(cause) = criu_check_error() {
        println!("branch: `criu check` fails here ({cause}): expecting Unimplemented");
        unavailable_here(&cause);
        return;
    }
    println!("branch: `criu check` passes here: checkpoint with {RUNTIME} and {RUNC}");
    let dir = tempfile_dir();
    let (ours_run, ours_exit) = checkpoint_twice(RUNTIME, "ckpt-rust", &dir);
    kill_and_remove("ckpt-rust");
    kill_and_remove("ckpt-rust-exit");
    let (runc_run, runc_exit) = checkpoint_twice(RUNC, "ckpt-runc", &dir);
    kill_and_remove("ckpt-runc");
    kill_and_remove("ckpt-runc-exit");
    println!("ours: {ours_run:?}\nrunc: {runc_run:?}");
    for l in [&ours_run, &ours_exit, &runc_run, &runc_exit] {
        for f in [
            "inventory.img",
            "pstree.img",
            "core-N",
            "mm-N",
            "pagemap-N",
            "descriptors.json",
        ] {
            assert!(l.contains(&f.to_string()), "{f} missing in {l:?}");
        }
    }
    // Every kind of file runc's dump has, ours has.
    let missing: Vec<_> = runc_run.iter().filter(|k| !ours_run.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "runc's dump has {missing:?}, ours not:\nours {ours_run:?}\nrunc {runc_run:?}"
    );
    wait_for("criu processes gone", Duration::from_secs(10), || {
        criu_processes().is_empty()
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rshim-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Checkpoint of `id` (stopping it if `exit`) with the image in `image`, sent to its shim
/// (ours or runc's) as containerd forwards a client's request.
fn checkpoint_through_the_task_api(id: &str, image: &Path, exit: bool) -> Result<(), String> {
    use containerd_shim_protos::api::CheckpointTaskRequest;
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::MessageField;
    // containerd.runc.v1.CheckpointOptions { exit = 1 }, hand-encoded: field 1, varint,
    // value 1 (false is the default: no bytes).
    let options = Any {
        type_url: "containerd.runc.v1.CheckpointOptions".into(),
        value: if exit { vec![0x08, 0x01] } else { Vec::new() },
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = CheckpointTaskRequest {
        id: id.into(),
        path: image.display().to_string(),
        options: MessageField::some(options),
        ..Default::default()
    };
    // Task API v2's service name: containerd 1.x's runc shim serves only that one (ours
    // serves v2 and v3 with the same handlers), and the generated client speaks v3.
    let mut call = ttrpc::Request::new();
    call.service = "containerd.task.v2.Task".into();
    call.method = "Checkpoint".into();
    call.timeout_nano = 60_000_000_000;
    call.payload = containerd_shim_protos::protobuf::Message::write_to_bytes(&req).unwrap();
    let address = std::fs::read_to_string(bundle_dir(id).join("address")).unwrap();
    rt.block_on(async {
        let client = ttrpc::r#async::Client::connect(address.trim())
            .await
            .map_err(|e| format!("connect to the shim of {id} at {address}: {e}"))?;
        client
            .request(call)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// CreateTask with `checkpoint` set, on the shim of `id`: the error text.
fn restore_error(id: &str, image: &Path) -> String {
    use containerd_shim_protos::api::CreateTaskRequest;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt.block_on(async {
        let client = task_client(id).await;
        let req = CreateTaskRequest {
            id: format!("{id}-restore"),
            bundle: "/nonexistent-bundle".into(),
            checkpoint: image.display().to_string(),
            ..Default::default()
        };
        client.create(deadline(), &req).await.unwrap_err()
    });
    match e {
        ttrpc::Error::RpcStatus(s) => {
            assert_eq!(s.code(), ttrpc::Code::UNIMPLEMENTED, "{s:?}");
            assert!(
                s.message()
                    .contains(&format!("Restore of container {id}-restore")),
                "{s:?}"
            );
            s.message().to_string()
        }
        other => panic!("restore: {other}"),
    }
}

fn unavailable_here(cause: &str) {
    let id = "ckpt";
    start_counter(RUNTIME, id);
    let o = run(&["task", "checkpoint", id]);
    let msg = text(&o.stderr);
    assert!(!o.status.success(), "checkpoint claimed success: {msg}");
    assert!(
        msg.contains(&format!(
            "Checkpoint of container {id}: checkpoint/restore is not implemented"
        )),
        "{msg}"
    );
    // The reason is this host's CRIU, in its own words.
    assert!(msg.contains(cause), "{msg} lacks {cause:?}");
    let e = restore_error(id, Path::new("/nonexistent-checkpoint"));
    assert!(e.contains(cause), "{e} lacks {cause:?}");
    kill_and_remove(id);
}

/// A shell holding state in its variables (a random token, a counter) that it
/// writes to /dev/shm (a tmpfs CRIU dumps and restores), and a sleeping child.
const STATEFUL: &str = "t=$RANDOM$RANDOM; i=0; sleep 100000 & \
     while true; do i=$((i+1)); echo \"$t $i\" > /dev/shm/counter; sleep 0.05; done";

/// The token and counter, read from inside the container.
fn token_and_count(id: &str) -> Option<(String, u64)> {
    let o = run(&[
        "task",
        "exec",
        "--exec-id",
        "rd",
        id,
        "cat",
        "/dev/shm/counter",
    ]);
    let t = text(&o.stdout);
    let (tok, n) = t.trim().split_once(' ')?;
    Some((tok.to_string(), n.parse().ok()?))
}

/// [`token_and_count`], retried: the shell truncates the file before each write.
fn state_of(runtime: &str, id: &str) -> (String, u64) {
    let mut got = None;
    wait_for(
        &format!("{runtime}: state of {id}"),
        Duration::from_secs(20),
        || {
            got = token_and_count(id);
            got.is_some()
        },
    );
    got.unwrap()
}

/// Pid and command line, inside the container, of its init and its sleeper.
fn stable_processes(id: &str) -> Vec<String> {
    let script =
        "for p in /proc/[0-9]*; do echo \"${p#/proc/} $(tr '\\0' ' ' < $p/cmdline)\"; done";
    let o = run(&["task", "exec", "--exec-id", "ps", id, "sh", "-c", script]);
    let mut v: Vec<String> = text(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("1 ") || l.contains("sleep 100000"))
        .map(|l| l.trim().to_string())
        .collect();
    v.sort();
    v
}

/// The shim's Task API address and service name for `id`: containerd 1.x's
/// runc shim serves only v2 (see [`checkpoint_through_the_task_api`]) and
/// writes `address`; 2.x's serves v3 and writes `bootstrap.json`.
fn task_api_of(id: &str) -> (String, &'static str) {
    let b = bundle_dir(id);
    if let Ok(a) = std::fs::read_to_string(b.join("address")) {
        return (a.trim().to_string(), "containerd.task.v2.Task");
    }
    let j = std::fs::read_to_string(b.join("bootstrap.json"))
        .unwrap_or_else(|e| panic!("{}: neither address nor bootstrap.json: {e}", b.display()));
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    let a = v["address"].as_str().unwrap().to_string();
    (a, "containerd.task.v3.Task")
}

/// Wait on the shim's Task API for `id`'s init (what containerd does for
/// its clients), in a thread: its exit status.
fn wait_in_thread(id: &str) -> std::thread::JoinHandle<u32> {
    use containerd_shim_protos::api::{WaitRequest, WaitResponse};
    use containerd_shim_protos::protobuf::Message;
    let id = id.to_string();
    let (address, service) = task_api_of(&id);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut call = ttrpc::Request::new();
        call.service = service.into();
        call.method = "Wait".into();
        call.timeout_nano = 120_000_000_000;
        let req = WaitRequest {
            id: id.clone(),
            ..Default::default()
        };
        call.payload = req.write_to_bytes().unwrap();
        rt.block_on(async {
            let client = ttrpc::r#async::Client::connect(&address)
                .await
                .unwrap_or_else(|e| panic!("connect to the shim of {id} at {address}: {e}"));
            let res = client.request(call).await.expect("Wait");
            WaitResponse::parse_from_bytes(&res.payload)
                .expect("WaitResponse")
                .exit_status
        })
    })
}

/// Checkpoint into an image, delete, restore from it: the state goes on.
fn restore_round_trip(runtime: &str, id: &str) {
    let o = run(&[
        "run",
        "-d",
        "--runtime",
        runtime,
        IMAGE,
        id,
        "sh",
        "-c",
        STATEFUL,
    ]);
    assert!(o.status.success(), "{runtime}: run: {}", text(&o.stderr));
    wait_for("state written", Duration::from_secs(60), || {
        token_and_count(id).is_some_and(|(_, n)| n > 5)
    });
    let procs = stable_processes(id);
    assert_eq!(procs.len(), 2, "{runtime}: init and sleeper: {procs:?}");
    let (token, before) = state_of(runtime, id);
    let image = format!("localhost/rshim/ckpt-{id}:latest");
    let o = run(&["c", "checkpoint", "--task", id, &image]);
    assert!(
        o.status.success(),
        "{runtime}: checkpoint: {}",
        text(&o.stderr)
    );
    kill_and_remove(id);
    let o = run(&["c", "restore", "--live", id, &image]);
    assert!(
        o.status.success(),
        "{runtime}: restore: {}{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    wait_for(
        &format!("{runtime}: restored task running"),
        Duration::from_secs(60),
        || task_status(id).as_deref() == Some("RUNNING"),
    );
    let (tok1, n1) = state_of(runtime, id);
    assert_eq!(
        tok1, token,
        "{runtime}: the restored shell has another token"
    );
    assert!(
        n1 >= before,
        "{runtime}: counter {n1} after the restore, {before} before the checkpoint"
    );
    wait_for("counter going on", Duration::from_secs(30), || {
        token_and_count(id).is_some_and(|(t, n)| t == token && n > n1)
    });
    assert_eq!(
        stable_processes(id),
        procs,
        "{runtime}: pids inside the restored pid namespace"
    );
    let waiter = wait_in_thread(id);
    std::thread::sleep(Duration::from_millis(500));
    let o = run(&["task", "kill", "-s", "KILL", id]);
    assert!(o.status.success(), "{runtime}: kill: {}", text(&o.stderr));
    assert_eq!(
        waiter.join().unwrap(),
        137,
        "{runtime}: exit status of the restored init"
    );
    kill_and_remove(id);
    let o = run(&["images", "rm", &image]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// A restore of `image` into our shim (serving `beside`) as a new container
/// `id` whose bundle we make: a copy of `beside`'s spec on an empty rootfs.
fn restore_into_new_bundle(beside: &str, id: &str, image: &Path) -> ttrpc::Error {
    use containerd_shim_protos::api::CreateTaskRequest;
    let bundle = std::env::temp_dir().join(format!("rshim-restore-{id}"));
    let _ = std::fs::remove_dir_all(&bundle);
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    let spec = std::fs::read_to_string(bundle_dir(beside).join("config.json")).unwrap();
    let spec = spec.replace(&format!("/{beside}\""), &format!("/{id}\""));
    std::fs::write(bundle.join("config.json"), spec).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt.block_on(async {
        let client = task_client(beside).await;
        let req = CreateTaskRequest {
            id: id.into(),
            bundle: bundle.display().to_string(),
            checkpoint: image.display().to_string(),
            ..Default::default()
        };
        client.create(deadline(), &req).await.unwrap_err()
    });
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&bundle.display().to_string()),
        "mount in {} left behind:\n{mounts}",
        bundle.display()
    );
    assert!(!bundle.join("criu-root").exists(), "criu-root left behind");
    assert!(!bundle.join("criu-work").exists(), "criu-work left behind");
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let cg = h.path().join(ns()).join(id);
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }
    std::fs::remove_dir_all(&bundle).unwrap();
    e
}

#[test]
fn restored_container_goes_on_like_runcs_or_says_why_not() {
    needs_root!();
    if let Some(cause) = criu_check_error() {
        println!("branch: `criu check` fails here ({cause}): expecting Unimplemented");
        let id = "rst";
        start_counter(RUNTIME, id);
        let e = restore_error(id, Path::new("/nonexistent-checkpoint"));
        assert!(e.contains(cause.as_str()), "{e} lacks {cause:?}");
        kill_and_remove(id);
        return;
    }
    println!("branch: `criu check` passes here: restore with {RUNTIME} and {RUNC}");
    restore_round_trip(RUNTIME, "rst-rust");
    restore_round_trip(RUNC, "rst-runc");
    // A broken image (no CRIU images beside descriptors.json): CRIU's error, nothing left.
    let beside = "rst-beside";
    start_counter(RUNTIME, beside);
    let dir = std::env::temp_dir().join(format!("rshim-broken-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("descriptors.json"),
        r#"["/dev/null","/dev/null","/dev/null"]"#,
    )
    .unwrap();
    match restore_into_new_bundle(beside, "rst-broken", &dir) {
        ttrpc::Error::RpcStatus(s) => {
            assert_eq!(s.code(), ttrpc::Code::INTERNAL, "{s:?}");
            assert!(
                s.message().contains("criu restore") && s.message().contains("restore.log"),
                "{s:?}"
            );
        }
        other => panic!("restore from a broken image: {other}"),
    }
    // Not a checkpoint image at all: named before anything is made.
    std::fs::remove_file(dir.join("descriptors.json")).unwrap();
    match restore_into_new_bundle(beside, "rst-broken", &dir) {
        ttrpc::Error::RpcStatus(s) => {
            assert!(s.message().contains("descriptors.json"), "{s:?}");
        }
        other => panic!("restore from a non-image: {other}"),
    }
    kill_and_remove(beside);
    wait_for("criu processes gone", Duration::from_secs(10), || {
        criu_processes().is_empty()
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
