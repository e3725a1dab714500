//! Stdio through the shim: exit codes with stdout/stderr from an image and from a
//! rootfs directory, stdin and CloseIO, 10 MB through the FIFOs. A real containerd
//! (whichever `scripts/test` started) driven with `ctr` or the Task API. Needs root.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn exit_code_and_stdio_from_image() {
    needs_root!();
    let o = run_rm(
        RUNTIME,
        "stdio-img",
        &["sh", "-c", "echo hi; echo err >&2; exit 3"],
    );
    assert_eq!(text(&o.stdout), "hi\n", "stderr: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("err\n"), "{}", text(&o.stderr));
    assert_eq!(o.status.code(), Some(3));
    assert_no_leftovers("stdio-img");
}

#[test]
fn exit_code_and_stdio_from_rootfs_dir() {
    needs_root!();
    let r = rootfs();
    let o = run(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--rootfs",
        r.to_str().unwrap(),
        "stdio-dir",
        "sh",
        "-c",
        "echo hi; echo err >&2; exit 3",
    ]);
    assert_eq!(text(&o.stdout), "hi\n", "stderr: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("err\n"));
    assert_eq!(o.status.code(), Some(3));
    assert_no_leftovers("stdio-dir");
}

#[test]
fn stdin_round_trips() {
    needs_root!();
    let mut child = ctr(&["run", "--rm", "--runtime", RUNTIME, IMAGE, "stdin", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // ctr wires CloseIO only once the task exists: hold stdin open until then.
    wait_for("task running", Duration::from_secs(20), || {
        task_status("stdin").as_deref() == Some("RUNNING")
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"data\nmore data\n").unwrap();
    drop(stdin);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(out, "data\nmore data\n");
    assert_no_leftovers("stdin");
}

/// 10 MB of output through the stdout FIFO, read here as containerd's clients
/// read it. Driven through the shim's Task API (start, Create, Start, Wait,
/// Delete, Shutdown) rather than `ctr run`: under load, containerd 2.1's ctr
/// drops the tail of a large output with the Go runc shim too (8 of 40 runs
/// measured here), while the shim had written every byte.
#[test]
fn ten_megabytes_arrive_intact() {
    needs_root!();
    use containerd_shim_protos::api::{
        CreateTaskRequest, DeleteRequest, ShutdownRequest, StartRequest, WaitRequest,
    };
    use containerd_shim_protos::shim_async::TaskClient;

    let id = "bigout";
    let dir = std::env::temp_dir().join(format!("rshim-e2e-{}-{id}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let script =
        "head -c 10000000 /dev/urandom > /tmp/blob; sha256sum /tmp/blob >&2; cat /tmp/blob";
    let st = std::process::Command::new(repo().join("test-bundles/gen"))
        .arg("bundle")
        .arg(&dir)
        .args(["--", "sh", "-c", script])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // The FIFOs a client makes, with their read ends open before Create (as
    // containerd's clients do); the log FIFO is held open so the shim's log
    // never blocks.
    let fifo = |name: &str| {
        let p = dir.join(name);
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a live NUL-terminated CString; the mode is an integer.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        p
    };
    let (out_path, err_path, log_path) = (fifo("stdout"), fifo("stderr"), fifo("log"));
    let reader = |p: &std::path::Path| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
            .unwrap()
    };
    let _log = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log_path)
        .unwrap();
    let (out, err) = (reader(&out_path), reader(&err_path));
    let e = env();
    let ttrpc_address = std::env::var("CONTAINERD_TTRPC_ADDRESS")
        .unwrap_or_else(|_| format!("{}.ttrpc", e.address));
    let start = std::process::Command::new(repo().join("target/release/containerd-shim-rust-v1"))
        .args([
            "-namespace",
            ns(),
            "-id",
            id,
            "-address",
            &e.address,
            "start",
        ])
        .current_dir(&dir)
        .env("TTRPC_ADDRESS", &ttrpc_address)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(start.status.success(), "{}", text(&start.stderr));
    let address = text(&start.stdout).trim().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        TaskClient::new(ttrpc::r#async::Client::connect(&address).await.unwrap())
    });
    let create = CreateTaskRequest {
        id: id.into(),
        bundle: dir.to_str().unwrap().into(),
        stdout: out_path.to_str().unwrap().into(),
        stderr: err_path.to_str().unwrap().into(),
        ..Default::default()
    };
    rt.block_on(client.create(deadline(), &create)).unwrap();
    // The shim holds the write ends now: read (blocking) until it closes them,
    // which it does after the last byte is copied.
    let read_all = |mut f: std::fs::File| {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETFL takes only integers, on the FIFO fd that `f` owns.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, 0) };
        std::thread::spawn(move || {
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            v
        })
    };
    let (out_t, err_t) = (read_all(out), read_all(err));
    let req = |id: &str| StartRequest {
        id: id.into(),
        ..Default::default()
    };
    rt.block_on(client.start(deadline(), &req(id))).unwrap();
    let w = rt
        .block_on(client.wait(
            deadline(),
            &WaitRequest {
                id: id.into(),
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(w.exit_status, 0);
    let (stdout, stderr) = (out_t.join().unwrap(), err_t.join().unwrap());
    rt.block_on(client.delete(
        deadline(),
        &DeleteRequest {
            id: id.into(),
            ..Default::default()
        },
    ))
    .unwrap();
    let _ = rt.block_on(client.shutdown(
        deadline(),
        &ShutdownRequest {
            id: id.into(),
            ..Default::default()
        },
    ));
    wait_for("shim gone", Duration::from_secs(20), || {
        shim_pids_for(id).is_empty()
    });
    let cgroup = format!(
        "/sys/fs/cgroup/memory/rshim-test/{}",
        dir.file_name().unwrap().to_string_lossy()
    );
    assert!(!std::path::Path::new(&cgroup).exists(), "{cgroup} left");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(stdout.len(), 10_000_000, "stderr: {}", text(&stderr));
    let mut sha = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sha.stdin.take().unwrap().write_all(&stdout).unwrap();
    let outside = text(&sha.wait_with_output().unwrap().stdout);
    assert_eq!(
        outside.split_whitespace().next(),
        text(&stderr).split_whitespace().next()
    );
}
