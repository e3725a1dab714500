//! Drives a real private containerd through `ctr`. The instance is started by
//! `scripts/test` (see `scripts/containerd`), which exports
//! `RSHIM_CONTAINERD_ENV` naming its env file. Needs root; CI runs as root.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "localhost/rshim/busybox:latest";
pub const RUNTIME: &str = "io.containerd.rust.v1";
pub const RUNC: &str = "io.containerd.runc.v2";
/// The namespace of this run: one per containerd version, so instances of
/// different versions never share runc state or cgroups.
pub fn ns() -> &'static str {
    &env().ns
}

pub struct Env {
    pub address: String,
    pub ctr: String,
    pub version: String,
    pub ns: String,
    pub state: PathBuf,
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let file = std::env::var("RSHIM_CONTAINERD_ENV").expect(
            "RSHIM_CONTAINERD_ENV is not set: run the end-to-end tests through scripts/test, which starts a private containerd",
        );
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {file}: {e}"));
        let vars: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim_start_matches("export ").to_string(), v.trim_matches('"').to_string()))
            .collect();
        let address = vars["CONTAINERD_ADDRESS"].clone();
        let state = vars.get("CONTAINERD_STATE").map(PathBuf::from).unwrap_or_else(|| {
            Path::new(&address).parent().unwrap().join("state")
        });
        let e = Env {
            address,
            ctr: vars["CTR"].clone(),
            ns: format!("rshim-test-e2e-{}", vars.get("CONTAINERD_VERSION").map_or("x".into(), |v| v.replace('.', ""))),
            version: vars.get("CONTAINERD_VERSION").cloned().unwrap_or_default(),
            state,
        };
        let image = repo().join("test-bundles/out/image.tar");
        let out = Command::new(&e.ctr)
            .args(["-a", &e.address, "-n", &e.ns, "images", "import", "--all-platforms"])
            .arg(&image)
            .output()
            .expect("run ctr images import");
        assert!(out.status.success(), "import {}: {}", image.display(), String::from_utf8_lossy(&out.stderr));
        e
    })
}

pub fn ctr(args: &[&str]) -> Command {
    let e = env();
    let mut c = Command::new(&e.ctr);
    c.args(["-a", &e.address, "-n", &e.ns]).args(args);
    c
}

pub fn run(args: &[&str]) -> Output {
    ctr(args).stdin(Stdio::null()).output().expect("run ctr")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ctr run --rm --runtime RUNTIME IMAGE id cmd...`
pub fn run_rm(runtime: &str, id: &str, cmd: &[&str]) -> Output {
    let mut a = vec!["run", "--rm", "--runtime", runtime, IMAGE, id];
    a.extend_from_slice(cmd);
    run(&a)
}

pub fn rootfs() -> PathBuf {
    repo().join("test-bundles/out/rootfs")
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn task_status(id: &str) -> Option<String> {
    let o = run(&["task", "ls"]);
    text(&o.stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2).map(String::from))
}

/// Shim processes serving containers of our private containerd.
pub fn shim_pids_for(id: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd.split(|b| *b == 0).map(text).collect();
        let is_shim = args
            .first()
            .is_some_and(|a| a.ends_with("containerd-shim-rust-v1"));
        let ours = args
            .windows(2)
            .any(|w| w[0] == "-address" && w[1] == env().address);
        let this = args.windows(2).any(|w| w[0] == "-id" && w[1] == id);
        if is_shim && ours && this {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILLs `id`'s task, removes task and container, and asserts nothing of it is left.
pub fn kill_and_remove(id: &str) {
    let _ = run(&["task", "kill", "-s", "KILL", id]);
    wait_for("task stopped", Duration::from_secs(30), || {
        task_status(id).as_deref() != Some("RUNNING")
    });
    let rm = run(&["task", "rm", id]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    let crm = run(&["c", "rm", id]);
    assert!(crm.status.success(), "{}", text(&crm.stderr));
    assert_no_leftovers(id);
}

/// Asserts nothing of container `id` is left on the host.
pub fn assert_no_leftovers(id: &str) {
    wait_for(
        &format!("shim of {id} to exit"),
        Duration::from_secs(10),
        || shim_pids_for(id).is_empty(),
    );
    let bundle = env()
        .state
        .join("io.containerd.runtime.v2.task")
        .join(ns())
        .join(id);
    assert!(
        !bundle.exists(),
        "bundle dir {} left behind",
        bundle.display()
    );
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let cg = h.path().join(ns()).join(id);
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("/{}/{id}/", ns())),
        "mount of {id} left behind:\n{mounts}"
    );
}

/// The bundle directory containerd made for container `id`.
pub fn bundle_dir(id: &str) -> PathBuf {
    env()
        .state
        .join("io.containerd.runtime.v2.task")
        .join(ns())
        .join(id)
}

/// A client of the shim serving `id`, on its Task API (the one containerd uses).
pub async fn task_client(id: &str) -> containerd_shim_protos::shim_async::TaskClient {
    let address = std::fs::read_to_string(bundle_dir(id).join("address")).unwrap();
    containerd_shim_protos::shim_async::TaskClient::new(
        ttrpc::r#async::Client::connect(address.trim())
            .await
            .unwrap_or_else(|e| panic!("connect to the shim of {id} at {address}: {e}")),
    )
}

/// UpdateTask of `id` with `resources` (LinuxResources JSON), as containerd
/// sends it for `ctr task update` and CRI's UpdateContainerResources; the
/// error's text.
pub fn update_task(id: &str, resources: &str) -> Result<(), String> {
    use containerd_shim_protos::api::UpdateTaskRequest;
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::MessageField;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let req = UpdateTaskRequest {
            id: id.to_string(),
            resources: MessageField::some(Any {
                type_url: "opencontainers/runtime-spec/1/LinuxResources".into(),
                value: resources.as_bytes().to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        };
        task_client(id).await.update(deadline(), &req).await
    })
    .map(drop)
    .map_err(|e| e.to_string())
}

/// A generous per-call deadline: a call that exceeds it means a hung shim.
pub fn deadline() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(60_000_000_000)
}

/// The OCI process of container `id` (from its bundle) with other `args`:
/// what containerd sends in an Exec request.
pub fn exec_spec(
    id: &str,
    args: &[&str],
) -> containerd_shim_protos::protobuf::well_known_types::any::Any {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle_dir(id).join("config.json")).unwrap())
            .unwrap();
    let mut process = config["process"].clone();
    process["args"] = serde_json::json!(args);
    process["terminal"] = serde_json::json!(false);
    containerd_shim_protos::protobuf::well_known_types::any::Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
        value: serde_json::to_vec(&process).unwrap(),
        ..Default::default()
    }
}

/// File descriptors, threads and resident memory (kB) of process `pid`.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub fds: usize,
    pub threads: usize,
    pub rss_kb: u64,
}

pub fn usage(pid: i32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    Usage {
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count(),
        threads: field("Threads:") as usize,
        rss_kb: field("VmRSS:"),
    }
}

/// Children of `pid` (from every /proc/N/stat: this kernel has no
/// /proc/PID/task/TID/children), as (pid, state, comm).
pub fn children_of(pid: i32) -> Vec<(i32, char, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parens.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c).to_string();
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: i32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid {
            out.push((child, state, comm));
        }
    }
    out
}

/// `ctr events` lines about container `id`, as "topic" or "topic exec-id"
/// (execs' events, and the exit of an exec, name the exec).
pub fn task_events(out: &str, id: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let topic = l.split_whitespace().find(|w| w.starts_with("/tasks/"))?;
            let json: serde_json::Value = serde_json::from_str(&l[l.find('{')?..]).ok()?;
            if json["container_id"] != id {
                return None;
            }
            let exec = json["exec_id"]
                .as_str()
                .or(json["id"].as_str())
                .filter(|e| *e != id && !e.is_empty());
            Some(match exec {
                Some(e) => format!("{topic} {e}"),
                None => topic.to_string(),
            })
        })
        .collect()
}

/// Runs `ctr events` around `script`, returns what it printed. `script` starts only
/// once the subscription is live: a fixed wait was too short under TCG (the guest),
/// where a slow `ctr events` missed the first events. Liveness is shown by a marker
/// event of our own (`/namespaces/update`, from labelling the test namespace), which is
/// published until seen and left out of the returned text.
pub fn events_during(script: impl FnOnce()) -> String {
    use std::io::BufRead;
    const MARKER: &str = "/namespaces/update";
    let mut events = ctr(&["events"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = events.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains(MARKER) {
                let _ = tx.send(line);
            } else {
                lines.push(line);
            }
        }
        lines
    });
    let ns = env().ns.clone();
    let mut n = 0;
    let mut marker = || {
        let start = std::time::Instant::now();
        loop {
            n += 1;
            let o = run(&[
                "namespaces",
                "label",
                &ns,
                &format!("rshim-events-probe={n}"),
            ]);
            assert!(
                o.status.success(),
                "ctr namespaces label: {}",
                text(&o.stderr)
            );
            if rx.recv_timeout(Duration::from_millis(500)).is_ok() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "`ctr events` showed no event within 60 s"
            );
        }
    };
    marker();
    script();
    // The shim publishes from its own queue: a moment for what it still holds, then a
    // marker after it, so everything containerd had by then has reached `ctr events`.
    std::thread::sleep(Duration::from_millis(300));
    marker();
    events.kill().unwrap();
    let _ = events.wait();
    let mut printed = reader.join().unwrap().join("\n");
    printed.push('\n');
    printed
}

/// `ctr run -d` of `cmd` under our runtime, with extra `ctr run` options, and
/// waits until the task runs.
pub fn run_detached(id: &str, opts: &[&str], cmd: &[&str]) {
    let mut args = vec!["run", "-d", "--runtime", RUNTIME];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[IMAGE, id]);
    args.extend_from_slice(cmd);
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_for("task running", Duration::from_secs(20), || {
        task_status(id).as_deref() == Some("RUNNING")
    });
}

/// Starts a detached container running a counter loop and waits until it runs.
pub fn detached_counter(id: &str) {
    let script = "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.02; done";
    run_detached(id, &[], &["sh", "-c", script]);
}

/// Whether test `test` (a path, as [`needs_root!`] gives it) must be skipped: when not
/// root. It then says so by name, `skipped: NAME needs root`, straight to stderr (libtest
/// captures only the print macros), so a non-root `cargo test` lists what it did not run.
/// A root run (scripts/test, CI) runs every test.
pub fn skip_unless_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    // libtest's name is the path without the crate's (the test binary's) name.
    let name = test.split_once("::").map_or(test, |(_, n)| n);
    let line = format!("skipped: {name} needs root\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    true
}

/// First line of a test that needs root (containers, cgroups, a private containerd):
/// returns from it, naming it, when not run as root.
#[macro_export]
macro_rules! needs_root {
    () => {
        if $crate::common::skip_unless_root({
            fn here() {}
            let n = std::any::type_name_of_val(&here);
            n.strip_suffix("::here").unwrap_or(n)
        }) {
            return;
        }
    };
}
