//! Benchmark (not a test): create + start + wait + delete of a minimal bundle
//! (test-bundles/gen's runc-spec-like config running `true`), in one run:
//!
//! - `core`: runtime-core in-process (what the shim does),
//! - `cli`: our rshim-runc, driven as containerd's runc shim drives runc
//!   (when target/release/rshim-runc is built),
//! - `runc`: `runc create`, `runc start`, wait, `runc delete`,
//! - `runc-run`: `runc run` (create+start+wait+delete in one command).
//!
//! Rounds alternate between the modes so all see the same machine state.
//! Prints the median and the ratio to runc's create/start/delete.
//!   cargo bench -p runtime-core --bench lifecycle [-- N]   (N rounds, default 30)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as PStdio};
use std::time::{Duration, Instant};

use runtime_core::{Container, CreateOpts, Stdio};

const RUNC: &str = "/usr/sbin/runc";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn check(what: &str, st: std::io::Result<std::process::ExitStatus>) {
    match st {
        Ok(s) if s.success() => {}
        other => panic!("{what}: {other:?}"),
    }
}

/// Waits for `pid`, which is our child thanks to PR_SET_CHILD_SUBREAPER
/// (the runtimes' `create` processes exit and leave the init to us).
fn wait_pid(pid: i32) {
    let mut st = 0;
    // SAFETY: `st` is a live c_int that waitpid writes; the rest are integers.
    unsafe { libc::waitpid(pid, &mut st, 0) };
}

fn set_cgroup(bundle: &Path, cg: &str) {
    let cfg = bundle.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["linux"]["cgroupsPath"] = serde_json::json!(cg);
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn core_once(bundle: &Path, id: &str) {
    let mut c = Container::create(CreateOpts {
        exec_fifo: None,
        id,
        bundle,
        stdio: Stdio::default(),
    })
    .unwrap();
    c.start().unwrap();
    c.init().reap_blocking().unwrap();
    c.delete().unwrap();
}

/// create / start / wait / delete through a runc-compatible CLI.
fn cli_once(bin: &Path, root: &Path, bundle: &Path, id: &str) {
    let pid_file = root.join(format!("{id}.pid"));
    let cmd = |args: &[&str]| {
        Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(args)
            .stdin(PStdio::null())
            .stdout(PStdio::null())
            .stderr(PStdio::inherit())
            .status()
    };
    check(
        "create",
        cmd(&[
            "create",
            "--bundle",
            bundle.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            id,
        ]),
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    check("start", cmd(&["start", id]));
    wait_pid(pid);
    check("delete", cmd(&["delete", id]));
    let _ = std::fs::remove_file(&pid_file);
}

fn runc_run_once(root: &Path, bundle: &Path, id: &str) {
    check(
        "runc run",
        Command::new(RUNC)
            .arg("--root")
            .arg(root)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(PStdio::null())
            .stdout(PStdio::null())
            .status(),
    );
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    runtime_core::init::main_if_helper();
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    // SAFETY: PR_SET_CHILD_SUBREAPER takes only integers.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let tmp = std::env::temp_dir().join(format!("rshim-bench-core-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let bundle = tmp.join("bundle");
    let gen = repo().join("test-bundles/gen");
    check(
        "test-bundles/gen",
        Command::new(&gen)
            .arg("bundle")
            .arg(&bundle)
            .args(["--", "true"])
            .stdout(PStdio::null())
            .status(),
    );
    let cli = repo().join("target/release/rshim-runc");
    let mut modes: Vec<&str> = vec!["core"];
    if cli.exists() {
        modes.push("cli");
    } else {
        eprintln!("{} not built: skipping the cli mode", cli.display());
    }
    modes.extend(["runc", "runc-run"]);
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    let pid = std::process::id();
    // One warm-up round (page cache, first cgroup parents), not counted.
    for round in 0..=rounds {
        for (m, mode) in modes.iter().enumerate() {
            let id = format!("bench-{mode}-{pid}-{round}");
            set_cgroup(&bundle, &format!("/rshim-core-bench-{pid}/{id}"));
            let root = tmp.join(format!("root-{mode}"));
            let t = Instant::now();
            match *mode {
                "core" => core_once(&bundle, &id),
                "cli" => cli_once(&cli, &root, &bundle, &id),
                "runc" => cli_once(Path::new(RUNC), &root, &bundle, &id),
                _ => runc_run_once(&root, &bundle, &id),
            }
            if round > 0 {
                times[m].push(t.elapsed());
            }
        }
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(format!("rshim-core-bench-{pid}")));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    let runc = medians[modes.iter().position(|m| *m == "runc").unwrap()];
    println!("create+start+wait+delete of `true`, {rounds} rounds, median:");
    for (mode, med) in modes.iter().zip(&medians) {
        println!(
            "  {mode:<9} {:>8.2} ms   ratio to runc create/start/delete: {:.2}",
            med.as_secs_f64() * 1000.0,
            med.as_secs_f64() / runc.as_secs_f64()
        );
    }
}
