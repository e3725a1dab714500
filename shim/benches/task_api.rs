//! Benchmark (not a test): the shim alone, without ctr's own start-up and
//! image work. Drives our shim and containerd's Go runc shim exactly as
//! containerd does — `start`, then Create, Start, Wait, Delete, Shutdown over
//! ttrpc — alternately in the same run, and prints the median of each phase,
//! the ratio ours/runc, and the runc shim's numbers beside ours.
//!
//! Needs root and a private containerd (events go to its ttrpc socket):
//! `scripts/bench` runs it; by hand,
//! `RSHIM_CONTAINERD_ENV=DIR/env cargo bench -p containerd-shim-rust-v1 --bench task_api`.
//! `RSHIM_BENCH_RUNS` sets the number of runs per shim (default 20).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{
    CreateTaskRequest, DeleteRequest, ShutdownRequest, StartRequest, WaitRequest,
};
use containerd_shim_protos::protobuf::Message;
use ttrpc::r#async::Client;

const NS: &str = "rshim-bench-api";
const PHASES: [&str; 5] = ["start", "create", "run", "delete", "total"];

struct Shim {
    name: &'static str,
    binary: PathBuf,
    /// The Task service name this shim serves to this containerd.
    service: &'static str,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn containerd_env() -> HashMap<String, String> {
    let file = std::env::var("RSHIM_CONTAINERD_ENV")
        .expect("RSHIM_CONTAINERD_ENV is not set: scripts/bench starts a private containerd");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("read {file}: {e}"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One Task API call by service and method name: the generated client only
/// speaks v3, and containerd 1.6's runc shim serves v2.
async fn request<Req: Message>(
    c: &Client,
    service: &str,
    method: &str,
    req: &Req,
) -> ttrpc::Result<ttrpc::Response> {
    c.request(ttrpc::Request {
        service: service.into(),
        method: method.into(),
        payload: req.write_to_bytes().unwrap(),
        timeout_nano: 30_000_000_000,
        ..Default::default()
    })
    .await
}

async fn call<Req: Message, Resp: Message>(
    c: &Client,
    service: &str,
    method: &str,
    req: &Req,
) -> Resp {
    let resp = request(c, service, method, req)
        .await
        .unwrap_or_else(|e| panic!("{service}/{method}: {e}"));
    Resp::parse_from_bytes(&resp.payload).unwrap()
}

/// A fresh bundle running /bin/true, with the `log` FIFO containerd would
/// make; returns the bundle and the FIFO held open so the shim never blocks on it.
fn bundle(id: &str) -> (PathBuf, std::fs::File) {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir().join(NS).join(id);
    let _ = std::fs::remove_dir_all(&dir);
    let st = Command::new(repo().join("test-bundles/gen"))
        .arg("bundle")
        .arg(&dir)
        .args(["--", "/bin/true"])
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

/// `start` prints a plain address (1.x) or JSON with one (2.x).
fn parse_address(out: &str) -> String {
    let out = out.trim();
    if out.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(out).unwrap();
        v["address"].as_str().unwrap().to_string()
    } else {
        out.to_string()
    }
}

/// One container lifecycle; returns the duration of each phase.
fn lifecycle(
    rt: &tokio::runtime::Runtime,
    shim: &Shim,
    env: &HashMap<String, String>,
    id: &str,
) -> [Duration; 5] {
    let (dir, _log) = bundle(id);
    let t0 = Instant::now();
    let out = Command::new(&shim.binary)
        .args(["-namespace", NS, "-id", id, "-address"])
        .arg(&env["CONTAINERD_ADDRESS"])
        .arg("-publish-binary")
        .arg(&env["CONTAINERD_BIN"])
        .arg("start")
        .current_dir(&dir)
        .env("TTRPC_ADDRESS", &env["CONTAINERD_TTRPC_ADDRESS"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{} start failed", shim.name);
    let address = parse_address(&String::from_utf8_lossy(&out.stdout));
    let t1 = Instant::now();
    let svc = shim.service;
    let times = rt.block_on(async {
        let c = Client::connect(&address).await.unwrap();
        let create = CreateTaskRequest {
            id: id.into(),
            bundle: dir.to_str().unwrap().into(),
            ..Default::default()
        };
        let _: containerd_shim_protos::api::CreateTaskResponse =
            call(&c, svc, "Create", &create).await;
        let t2 = Instant::now();
        let _: containerd_shim_protos::api::StartResponse = call(
            &c,
            svc,
            "Start",
            &StartRequest {
                id: id.into(),
                ..Default::default()
            },
        )
        .await;
        let w: containerd_shim_protos::api::WaitResponse = call(
            &c,
            svc,
            "Wait",
            &WaitRequest {
                id: id.into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            w.exit_status, 0,
            "{}: /bin/true exited {}",
            shim.name, w.exit_status
        );
        let t3 = Instant::now();
        let _: containerd_shim_protos::api::DeleteResponse = call(
            &c,
            svc,
            "Delete",
            &DeleteRequest {
                id: id.into(),
                ..Default::default()
            },
        )
        .await;
        let t4 = Instant::now();
        // A shim may exit before its Shutdown reply is out (containerd
        // ignores that error too).
        let shutdown = ShutdownRequest {
            id: id.into(),
            ..Default::default()
        };
        let _ = request(&c, svc, "Shutdown", &shutdown).await;
        (t2, t3, t4)
    });
    let (t2, t3, t4) = times;
    let _ = std::fs::remove_dir_all(&dir);
    [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too: only run when asked.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env = containerd_env();
    let runs: usize = std::env::var("RSHIM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let version = env.get("CONTAINERD_VERSION").cloned().unwrap_or_default();
    let bin_dir = Path::new(&env["CONTAINERD_BIN"])
        .parent()
        .unwrap()
        .to_path_buf();
    let v2 = version.starts_with('1');
    let service = if v2 {
        "containerd.task.v2.Task"
    } else {
        "containerd.task.v3.Task"
    };
    let floor = repo().join("target/release/examples/floor_shim");
    let mut shims = vec![
        Shim {
            name: "rust",
            binary: repo().join("target/release/containerd-shim-rust-v1"),
            service,
        },
        Shim {
            name: "runc",
            binary: bin_dir.join("containerd-shim-runc-v2"),
            service,
        },
    ];
    // The floor (shim/examples/floor_shim.rs): a shim answering every call at once.
    if floor.exists() {
        shims.push(Shim {
            name: "floor",
            binary: floor,
            service,
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut samples: Vec<Vec<Vec<Duration>>> = vec![vec![Vec::new(); PHASES.len()]; shims.len()];
    // Warm-up, then alternate so both shims see the same machine state.
    for s in &shims {
        lifecycle(&rt, s, &env, &format!("warm-{}", s.name));
    }
    for i in 0..runs {
        for (k, s) in shims.iter().enumerate() {
            let t = lifecycle(&rt, s, &env, &format!("{}-{i}", s.name));
            for (p, d) in t.iter().enumerate() {
                samples[k][p].push(*d);
            }
        }
    }
    println!("containerd {version}, Task API directly (start, Create, Start+Wait, Delete), {runs} runs each, median ms:");
    let with_floor = shims.len() == 3;
    println!(
        "{:<8} {:>8} {:>8} {:>8}{}",
        "phase",
        "rust",
        "runc",
        "ratio",
        if with_floor {
            "    floor  rust-floor"
        } else {
            ""
        }
    );
    for (p, name) in PHASES.iter().enumerate() {
        let a = median(samples[0][p].clone()).as_secs_f64() * 1e3;
        let b = median(samples[1][p].clone()).as_secs_f64() * 1e3;
        print!("{name:<8} {a:>8.2} {b:>8.2} {:>8.2}", a / b);
        if with_floor {
            let f = median(samples[2][p].clone()).as_secs_f64() * 1e3;
            print!(" {f:>8.2} {:>11.2}", a - f);
        }
        println!();
    }
}
