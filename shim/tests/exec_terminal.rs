//! Exec with a terminal, as containerd's clients ask for it: the Exec
//! request's `terminal` flag decides (ctr and the CRI send it, and make no
//! stderr FIFO then), whatever the process spec copied from the container
//! says. Driven through the shim's Task API, as containerd drives it.

mod common;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use containerd_shim_protos::api::{DeleteRequest, StartRequest, WaitRequest};
use containerd_shim_protos::shim::shim::ExecProcessRequest;

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    assert_eq!(
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {p:?}"
    );
}

/// A FIFO's read end, opened without blocking before the shim opens the
/// write end (as clients do).
fn open_reader(p: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .unwrap()
}

/// Reads to EOF (the shim closed its write end) on a thread; call once the
/// shim holds the write end, or the first read sees EOF at once.
fn read_to_eof(f: std::fs::File) -> std::thread::JoinHandle<Vec<u8>> {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETFL on an fd we own; clears O_NONBLOCK.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, 0) };
    std::thread::spawn(move || {
        let mut f = f;
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    })
}

/// An exec with `terminal` only in the request (the process spec says false)
/// and a stderr FIFO path that no client made (none does with a terminal):
/// it gets a tty, and 1 MiB written to it arrives whole, in order.
#[test]
fn exec_terminal_comes_from_the_request_and_a_megabyte_arrives_whole() {
    needs_root!();
    let id = "exectty-req";
    run_detached(id, &[], &["sleep", "600"]);
    let dir = std::env::temp_dir().join(format!("rshim-exectty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let stdout = dir.join("t1-stdout");
    mkfifo(&stdout);
    let reader = open_reader(&stdout);
    const N: usize = 1 << 20;
    // No newline in the megabyte: the tty's output processing (\n -> \r\n)
    // leaves it byte for byte.
    let script = format!("tty; head -c {N} /dev/zero | tr '\\0' x; echo; echo end");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, out) = rt.block_on(async {
        let client = task_client(id).await;
        let req = ExecProcessRequest {
            id: id.into(),
            exec_id: "t1".into(),
            terminal: true,
            stdout: stdout.to_str().unwrap().into(),
            stderr: dir.join("t1-stderr-never-made").to_str().unwrap().into(),
            spec: containerd_shim_protos::protobuf::MessageField::some(exec_spec(
                id,
                &["sh", "-c", &script],
            )),
            ..Default::default()
        };
        client.exec(deadline(), &req).await.expect("Exec");
        let start = StartRequest {
            id: id.into(),
            exec_id: "t1".into(),
            ..Default::default()
        };
        client
            .start(deadline(), &start)
            .await
            .expect("Start of an exec with a terminal");
        let reader = read_to_eof(reader);
        let w = client
            .wait(
                deadline(),
                &WaitRequest {
                    id: id.into(),
                    exec_id: "t1".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        client
            .delete(
                deadline(),
                &DeleteRequest {
                    id: id.into(),
                    exec_id: "t1".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        (w.exit_status, reader.join().unwrap())
    });
    let _ = run(&["task", "kill", "-s", "KILL", id]);
    wait_for("task stopped", Duration::from_secs(20), || {
        task_status(id).as_deref() != Some("RUNNING")
    });
    assert!(run(&["task", "rm", id]).status.success());
    assert!(run(&["c", "rm", id]).status.success());
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status, 0, "exec output: {:.300}", text);
    assert!(
        text.starts_with("/dev/pts/"),
        "the exec has no terminal: {:.300}",
        text
    );
    let xs = out.iter().filter(|&&b| b == b'x').count();
    assert_eq!(xs, N, "bytes of the megabyte that arrived");
    assert!(
        text.trim_end().ends_with("end"),
        "tail missing: {:?}",
        &text[text.len().saturating_sub(40)..]
    );
    assert_no_leftovers(id);
}
