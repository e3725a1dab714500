//! Benchmark (not a test): the soak. One of our shims serves, through the Task API as
//! containerd drives it, 1000 containers one after another (Create, Start, Wait, Delete of
//! /bin/true), then 1000 execs in one running container (Exec, Start, Wait, Delete of
//! /bin/true). Prints the shim's open fds, threads, RSS, PSS and anonymous memory after the
//! first 100 of each and at the end, and the growth (target: flat, ≤ 64 kB).
//!
//! Needs root and a private containerd (events go to its ttrpc socket):
//!   RSHIM_CONTAINERD_ENV=DIR/env target/release/examples/soak [COUNT]   (default 1000)
//! `scripts/bench --soak` runs it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use containerd_shim_protos::api::{
    CreateTaskRequest, DeleteRequest, ExecProcessRequest, KillRequest, ShutdownRequest,
    StartRequest, WaitRequest,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::ttrpc::r#async::Client;

const NS: &str = "rshim-bench-soak";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn containerd_env() -> HashMap<String, String> {
    let file = std::env::var("RSHIM_CONTAINERD_ENV").expect(
        "RSHIM_CONTAINERD_ENV is not set: scripts/bench --soak starts a private containerd",
    );
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("read {file}: {e}"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A bundle running `args`, with the `log` FIFO containerd would make (kept open).
fn bundle(id: &str, args: &[&str]) -> (PathBuf, std::fs::File) {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir().join(NS).join(id);
    let _ = std::fs::remove_dir_all(&dir);
    let st = Command::new(repo().join("test-bundles/gen"))
        .arg("bundle")
        .arg(&dir)
        .arg("--")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "test-bundles/gen bundle {}", dir.display());
    let log = dir.join("log");
    let c = std::ffi::CString::new(log.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a live NUL-terminated CString; the mode is an integer.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&log)
        .unwrap();
    (dir, f)
}

/// (fds, threads, RSS kB, PSS kB, Anonymous kB) of a process.
fn sample(pid: u32) -> [u64; 5] {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    [
        fds,
        field(&status, "Threads:"),
        field(&rollup, "Rss:"),
        field(&rollup, "Pss:"),
        field(&rollup, "Anonymous:"),
    ]
}

fn print_growth(what: &str, first: [u64; 5], last: [u64; 5]) {
    println!(
        "{what}: after 100: fds {} threads {} RSS {} kB PSS {} kB anon {} kB; at the end: fds {} threads {} RSS {} kB PSS {} kB anon {} kB; growth RSS {:+} kB anon {:+} kB",
        first[0], first[1], first[2], first[3], first[4], last[0], last[1], last[2], last[3],
        last[4],
        last[2] as i64 - first[2] as i64,
        last[4] as i64 - first[4] as i64
    );
}

/// Every 100: a sample line (a soak cut short still says something); the 100th is kept.
fn progress(what: &str, i: usize, pid: u32, first: &mut [u64; 5]) {
    if (i + 1).is_multiple_of(100) {
        let s = sample(pid);
        if i + 1 == 100 {
            *first = s;
        }
        println!(
            "  {what} {}: fds {} threads {} RSS {} kB PSS {} kB anon {} kB",
            i + 1,
            s[0],
            s[1],
            s[2],
            s[3],
            s[4]
        );
    }
}

async fn call<Req: Message, Resp: Message>(c: &Client, method: &str, req: &Req) -> Resp {
    let resp = c
        .request(containerd_shim_protos::ttrpc::Request {
            service: "containerd.task.v2.Task".into(),
            method: method.into(),
            payload: req.write_to_bytes().unwrap(),
            timeout_nano: 30_000_000_000,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    Resp::parse_from_bytes(&resp.payload).unwrap()
}

async fn run_to_end(c: &Client, id: &str, exec_id: &str) {
    let _: containerd_shim_protos::api::StartResponse = call(
        c,
        "Start",
        &StartRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        },
    )
    .await;
    let w: containerd_shim_protos::api::WaitResponse = call(
        c,
        "Wait",
        &WaitRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        w.exit_status, 0,
        "{id} {exec_id}: /bin/true exited {}",
        w.exit_status
    );
    let _: containerd_shim_protos::api::DeleteResponse = call(
        c,
        "Delete",
        &DeleteRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        },
    )
    .await;
}

async fn create(c: &Client, id: &str, dir: &Path) {
    let req = CreateTaskRequest {
        id: id.into(),
        bundle: dir.to_str().unwrap().into(),
        ..Default::default()
    };
    let _: containerd_shim_protos::api::CreateTaskResponse = call(c, "Create", &req).await;
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map(|v| v.parse().expect("COUNT: a number of containers"))
        .unwrap_or(1000);
    // `execs` skips the containers (the exec half alone).
    let containers = std::env::args().nth(2).as_deref() != Some("execs");
    assert!(
        count > 100,
        "COUNT must be above 100 (the first sample is taken at 100)"
    );
    let env = containerd_env();
    let shim = repo().join("target/release/containerd-shim-rust-v1");
    let (pod_dir, _pod_log) = bundle("pod", &["sleep", "100000"]);
    let out = Command::new(&shim)
        .args(["-namespace", NS, "-id", "pod", "-address"])
        .arg(&env["CONTAINERD_ADDRESS"])
        .arg("-publish-binary")
        .arg(&env["CONTAINERD_BIN"])
        .arg("start")
        .current_dir(&pod_dir)
        .env("TTRPC_ADDRESS", &env["CONTAINERD_TTRPC_ADDRESS"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "shim start failed");
    let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = Client::connect(&address).await.unwrap();
        create(&c, "pod", &pod_dir).await;
        let _: containerd_shim_protos::api::StartResponse = call(
            &c,
            "Start",
            &StartRequest {
                id: "pod".into(),
                ..Default::default()
            },
        )
        .await;
        let pid = call::<_, containerd_shim_protos::api::ConnectResponse>(
            &c,
            "Connect",
            &containerd_shim_protos::api::ConnectRequest {
                id: "pod".into(),
                ..Default::default()
            },
        )
        .await
        .shim_pid;
        println!(
            "soak: our pod shim (pid {pid}), {count} containers then {count} execs, each /bin/true"
        );
        let t = Instant::now();
        let mut first = [0; 5];
        for i in (0..count).filter(|_| containers) {
            let id = format!("c{i}");
            let (dir, log) = bundle(&id, &["/bin/true"]);
            create(&c, &id, &dir).await;
            run_to_end(&c, &id, "").await;
            drop(log);
            let _ = std::fs::remove_dir_all(&dir);
            if i + 1 == 100 {
                first = sample(pid);
            }
        }
        print_growth(
            &format!("{count} containers ({:.1} s)", t.elapsed().as_secs_f64()),
            first,
            sample(pid),
        );
        let process = serde_json::json!({
            "args": ["/bin/true"], "cwd": "/", "env": ["PATH=/bin:/usr/bin"],
            "user": {"uid": 0, "gid": 0}
        });
        let spec = Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
            value: serde_json::to_vec(&process).unwrap(),
            ..Default::default()
        };
        let t = Instant::now();
        for i in 0..count {
            let exec_id = format!("e{i}");
            let req = ExecProcessRequest {
                id: "pod".into(),
                exec_id: exec_id.clone(),
                spec: Some(spec.clone()).into(),
                ..Default::default()
            };
            let _: containerd_shim_protos::api::Empty = call(&c, "Exec", &req).await;
            run_to_end(&c, "pod", &exec_id).await;
            progress("execs", i, pid, &mut first);
        }
        print_growth(
            &format!("{count} execs ({:.1} s)", t.elapsed().as_secs_f64()),
            first,
            sample(pid),
        );
        let kill = KillRequest {
            id: "pod".into(),
            signal: 9,
            ..Default::default()
        };
        let _: containerd_shim_protos::api::Empty = call(&c, "Kill", &kill).await;
        let _: containerd_shim_protos::api::WaitResponse = call(
            &c,
            "Wait",
            &WaitRequest {
                id: "pod".into(),
                ..Default::default()
            },
        )
        .await;
        let _: containerd_shim_protos::api::DeleteResponse = call(
            &c,
            "Delete",
            &DeleteRequest {
                id: "pod".into(),
                ..Default::default()
            },
        )
        .await;
        let shutdown = ShutdownRequest {
            id: "pod".into(),
            ..Default::default()
        };
        let _ = c
            .request(containerd_shim_protos::ttrpc::Request {
                service: "containerd.task.v2.Task".into(),
                method: "Shutdown".into(),
                payload: shutdown.write_to_bytes().unwrap(),
                timeout_nano: 5_000_000_000,
                ..Default::default()
            })
            .await;
    });
    let _ = std::fs::remove_dir_all(&pod_dir);
}
