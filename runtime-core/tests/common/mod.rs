//! Bundles and runs for the container test binaries (each has its own harness).

#![allow(dead_code)]

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use runtime_core::{Container, CreateOpts, Stdio};
use serde_json::{json, Value};

#[derive(Debug)]
pub struct Out {
    pub status: u32,
    pub stdout: String,
    pub stderr: String,
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// This run's own cgroup parent: concurrent runs (other worktrees) never
/// share one, so removing ours at the end cannot race with their creates.
/// (Named `rshim-core-*`, not `rshim-test*`: `scripts/containerd stop` sweeps
/// every empty `rshim-test*` cgroup, which would take a test's fresh leaf away
/// between its creation and the init joining it.)
pub fn parent_dir(parent: &str) -> String {
    format!("{parent}-{}", std::process::id())
}

/// The cgroup (relative to each hierarchy) of test `name` under `parent`.
pub fn cgroup_of(parent: &str, name: &str) -> String {
    format!("/{}/{name}", parent_dir(parent))
}

/// A fresh bundle from `test-bundles/gen` with its cgroup under `parent`,
/// with `edit` applied to its config.
pub fn bundle(parent: &str, name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rshim-{parent}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let st = Command::new(repo().join("test-bundles/gen"))
        .arg("bundle")
        .arg(&dir)
        .arg("--")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run test-bundles/gen");
    assert!(st.success(), "test-bundles/gen bundle failed");
    let cfg = dir.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["linux"]["cgroupsPath"] = json!(cgroup_of(parent, name));
    edit(&mut v);
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    dir
}

fn read_all(fd: OwnedFd) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        std::fs::File::from(fd).read_to_string(&mut s).unwrap();
        s
    })
}

/// Creates, starts and waits for a container; cleans up in every case.
pub fn run(bundle: &Path, id: &str) -> Result<Out, runtime_core::Error> {
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let (err_r, err_w) = nix::unistd::pipe().unwrap();
    let mut c = Container::create(CreateOpts {
        exec_fifo: None,
        id,
        bundle,
        stdio: Stdio {
            stdin: None,
            stdout: Some(out_w),
            stderr: Some(err_w),
        },
    })?;
    let (o, e) = (read_all(out_r), read_all(err_r));
    let started = c.start();
    let status = c.init().reap_blocking();
    c.delete()?;
    started?;
    Ok(Out {
        status: status?.0,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    })
}

/// Creates and starts a container without stdio, for a test that then execs
/// in it, updates or inspects it; the test kills and deletes it.
pub fn start_detached(id: &str, bundle: &Path) -> Container {
    let mut c = Container::create(CreateOpts {
        exec_fifo: None,
        id,
        bundle,
        stdio: Stdio::default(),
    })
    .unwrap();
    c.start().unwrap();
    c
}

/// True when the cgroup of test `name` exists in any hierarchy.
pub fn cgroup_left(parent: &str, name: &str) -> Option<PathBuf> {
    let rel = cgroup_of(parent, name);
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path().join(rel.trim_start_matches('/')))
        .find(|p| p.exists())
}

/// Whether this run is root's. Every test of these binaries runs containers (cgroups,
/// namespaces, mounts): as another user each is named as skipped instead (see [`main`]).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs the tests named on the command line (all without), or, when not root,
/// names each as skipped (counted as ignored); prints cargo's summary line,
/// removes the cgroup parent, and exits with the result.
pub fn main(parent: &str, tests: &[(&str, fn())]) -> ! {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let root = is_root();
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            continue;
        }
        if !root {
            // Every test here runs containers: named, not run, not passed. A root run
            // (scripts/test, CI) runs them all.
            println!("test {name} ... skipped: {name} needs root");
            skipped += 1;
            continue;
        }
        match std::panic::catch_unwind(f) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(parent_dir(parent)));
    }
    // A v2-only host has the parent right under /sys/fs/cgroup.
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(parent_dir(parent)));
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; {skipped} ignored; 0 measured; 0 filtered out\n",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    std::process::exit(if failed == 0 { 0 } else { 101 });
}
