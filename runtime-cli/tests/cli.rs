//! The runc-compatible lifecycle, driven as OCI tooling does: one process per
//! command. Needs root (CI is root).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

struct Cli {
    root: PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rshim-runc"))
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `create` hands its own stdio to the container, which outlives it: give
    /// it files, not the pipes `output()` would wait on forever.
    fn create(&self, args: &[&str], log: &Path) -> std::process::ExitStatus {
        let f = || std::fs::File::create(log).unwrap();
        Command::new(env!("CARGO_BIN_EXE_rshim-runc"))
            .arg("--root")
            .arg(&self.root)
            .arg("create")
            .args(args)
            .stdin(Stdio::null())
            .stdout(f())
            .stderr(f())
            .status()
            .unwrap()
    }

    fn status(&self, id: &str) -> String {
        let o = self.run(&["state", id]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["status"].as_str().unwrap().to_string()
    }
}

#[test]
fn create_start_state_kill_delete() {
    needs_root!();
    let tmp = std::env::temp_dir().join(format!("rshim-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let bundle = tmp.join("bundle");
    let st = Command::new(repo().join("test-bundles/gen"))
        .arg("bundle")
        .arg(&bundle)
        .args([
            "--",
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    // Our own cgroup parent, outside the rshim-test* names that
    // `scripts/containerd stop` sweeps while other suites run.
    let cg_parent = format!("rshim-core-cli-{}", std::process::id());
    let cfg = bundle.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["linux"]["cgroupsPath"] = serde_json::json!(format!("/{cg_parent}/bundle"));
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let cli = Cli {
        root: tmp.join("root"),
    };
    let id = format!("cli-{}", std::process::id());
    let pidfile = tmp.join("pid");
    let log = tmp.join("create.log");
    let st = cli.create(
        &[
            "--bundle",
            bundle.to_str().unwrap(),
            "--pid-file",
            pidfile.to_str().unwrap(),
            &id,
        ],
        &log,
    );
    assert!(st.success(), "{}", std::fs::read_to_string(&log).unwrap());
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert_eq!(cli.status(&id), "created");
    // The init waits before exec: it still runs our helper image, not sh.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.to_string_lossy().starts_with("/memfd:"),
        "{}",
        exe.display()
    );
    let o = cli.run(&["start", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(cli.status(&id), "running");
    let o = cli.run(&["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");
    // `exec ID CMD` with runc's overrides of the container's process.
    let o = cli.run(&[
        "exec",
        "--cwd",
        "/tmp",
        "--env",
        "FOO=bar",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "pwd; echo $FOO; id -u; id -g",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "/tmp\nbar\n1000\n1000\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = cli.run(&["delete", &id]);
    assert!(!o.status.success(), "deleted a running container");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not stopped"));
    assert!(cli.run(&["kill", &id, "TERM"]).status.success());
    // The init is not our child here: wait until it is gone (its parent reaps).
    for _ in 0..400 {
        if cli.status(&id) == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(cli.status(&id), "stopped");
    let o = cli.run(&["delete", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !cli.run(&["state", &id]).status.success(),
        "state after delete"
    );
    let cg = format!("/sys/fs/cgroup/memory/{cg_parent}/bundle");
    assert!(!Path::new(&cg).exists(), "cgroup {cg} left behind");
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(&cg_parent));
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn unknown_command_and_features() {
    needs_root!();
    let cli = Cli {
        root: std::env::temp_dir().join("rshim-cli-none"),
    };
    let o = cli.run(&["checkpoint", "x"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("checkpoint"));
    let o = cli.run(&["features"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "user"));
    // The same document the shim's -info carries, built from oci-spec's types.
    let doc: oci_spec::runtime::Features = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc, runtime_core::features::features());
    assert!(v["linux"]["seccomp"]["archs"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "SCMP_ARCH_X86_64")));
}

#[test]
fn unsupported_flag_is_one_logged_error_and_nothing_is_made() {
    needs_root!();
    let tmp = std::env::temp_dir().join(format!("rshim-cli-flag-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let log = tmp.join("log.json");
    let root = tmp.join("root");
    let o = Command::new(env!("CARGO_BIN_EXE_rshim-runc"))
        .arg("--root")
        .arg(&root)
        .arg("--log")
        .arg(&log)
        .args([
            "--log-format",
            "json",
            "create",
            "--no-new-keyring",
            "--bundle",
        ])
        .arg(&tmp)
        .arg("flagged")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let line = std::fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(
        v["msg"].as_str().unwrap().contains("--no-new-keyring"),
        "{line}"
    );
    assert!(!root.join("flagged").exists(), "state left behind");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A bundle from test-bundles/gen running `script`, its cgroup under a parent
/// of this test process, with `edit` applied; (tmp dir, bundle, cgroup parent).
fn bundle_with(
    name: &str,
    script: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (PathBuf, PathBuf, String) {
    let tmp = std::env::temp_dir().join(format!("rshim-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let bundle = tmp.join("bundle");
    let st = Command::new(repo().join("test-bundles/gen"))
        .arg("bundle")
        .arg(&bundle)
        .args(["--", "sh", "-c", script])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let cg_parent = format!("rshim-core-cli-{name}-{}", std::process::id());
    let cfg = bundle.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["linux"]["cgroupsPath"] = serde_json::json!(format!("/{cg_parent}/c"));
    edit(&mut v);
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    (tmp, bundle, cg_parent)
}

fn remove_cgroup_parent(cg_parent: &str) {
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(cg_parent));
    }
}

fn wait_stopped(cli: &Cli, id: &str) {
    for _ in 0..500 {
        if cli.status(id) == "stopped" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{id} did not stop");
}

/// Item 1: a default-deny seccomp profile written before close_range existed.
#[test]
fn seccomp_profile_without_close_range() {
    needs_root!();
    let profile: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("test-bundles/seccomp-linux-5.8.json")).unwrap(),
    )
    .unwrap();
    let (tmp, bundle, cg) = bundle_with("seccomp58", "grep Seccomp: /proc/self/status", |v| {
        v["process"]["noNewPrivileges"] = serde_json::json!(false);
        v["linux"]["seccomp"] = profile;
    });
    let cli = Cli {
        root: tmp.join("root"),
    };
    let o = cli.run(&["run", "--bundle", bundle.to_str().unwrap(), "seccomp58"]);
    remove_cgroup_parent(&cg);
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Seccomp:\t2\n");
}

/// Item 8: poststop hooks run on `delete`, after the init is gone (and reaped
/// by someone else), with the state of a stopped container.
#[test]
fn poststop_hooks_run_on_delete() {
    needs_root!();
    let (tmp, bundle, cg) = bundle_with("poststop", "exit 0", |_| {});
    let out = tmp.join("poststop.json");
    let cfg = bundle.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["hooks"] = serde_json::json!({"poststop": [{
        "path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", out.display())]
    }]});
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let cli = Cli {
        root: tmp.join("root"),
    };
    let log = tmp.join("create.log");
    let st = cli.create(&["--bundle", bundle.to_str().unwrap(), "poststop"], &log);
    assert!(st.success(), "{}", std::fs::read_to_string(&log).unwrap());
    assert!(cli.run(&["start", "poststop"]).status.success());
    wait_stopped(&cli, "poststop");
    assert!(!out.exists(), "poststop ran before delete");
    let o = cli.run(&["delete", "poststop"]);
    let state = std::fs::read_to_string(&out).unwrap_or_default();
    remove_cgroup_parent(&cg);
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_str(&state).expect("poststop hook did not run");
    assert_eq!(
        (s["id"].as_str(), s["status"].as_str()),
        (Some("poststop"), Some("stopped"))
    );
}

/// Item 8: create/start of a container with a user namespace under a 0700
/// state root (runc's /run/runc is 0700): the init, mapped root, could not
/// look up exec.fifo there; it gets the fd from the helper.
#[test]
fn exec_fifo_with_user_namespace() {
    needs_root!();
    let (tmp, bundle, cg) = bundle_with("usernsfifo", "id -u; cat /proc/self/uid_map", |v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        let map = serde_json::json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
        v["linux"]["uidMappings"] = map.clone();
        v["linux"]["gidMappings"] = map;
    });
    let root = tmp.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let cli = Cli { root };
    let log = tmp.join("create.log");
    let st = cli.create(&["--bundle", bundle.to_str().unwrap(), "usernsfifo"], &log);
    let created = std::fs::read_to_string(&log).unwrap();
    let started = st.success() && cli.run(&["start", "usernsfifo"]).status.success();
    if st.success() {
        wait_stopped(&cli, "usernsfifo");
        let _ = cli.run(&["delete", "--force", "usernsfifo"]);
    }
    let out = std::fs::read_to_string(&log).unwrap();
    remove_cgroup_parent(&cg);
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(st.success(), "create: {created}");
    assert!(started, "start: {out}");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "0", "300000", "65536"], "{out}");
}
