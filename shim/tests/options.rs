//! The runtime options containerd hands the shim: through `ctr run
//! --runtime-config-path` (a `runtimeoptions.v1.Options`, what the CRI sends
//! for a runtime's `options` table) and `start`'s stdin as containerd writes
//! it (a `containerd.runc.v1.Options`, for ShimCgroup).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use containerd_shim_protos::api::ShutdownRequest;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;

fn config_file(name: &str, toml: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("rshim-opts-{}-{name}.toml", std::process::id()));
    std::fs::write(&p, toml).unwrap();
    p
}

fn run_with_config(id: &str, config: &std::path::Path, cmd: &[&str]) -> std::process::Output {
    let mut a = vec![
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--runtime-config-path",
        config.to_str().unwrap(),
        IMAGE,
        id,
    ];
    a.extend_from_slice(cmd);
    run(&a)
}

/// IoUid/IoGid: the container's stdio pipes belong to them, as with the runc
/// shim (so a process running as that user can reopen /proc/self/fd/1).
#[test]
fn io_uid_and_gid_own_the_stdio_pipes() {
    needs_root!();
    let cfg = config_file("ioids", "IoUid = 4242\nIoGid = 4343\n");
    let o = run_with_config(
        "ioids",
        &cfg,
        &[
            "stat",
            "-L",
            "-c",
            "%u %g",
            "/proc/self/fd/0",
            "/proc/self/fd/1",
            "/proc/self/fd/2",
        ],
    );
    let _ = std::fs::remove_file(&cfg);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    // stdin is not attached (no -i); stdout and stderr are the shim's pipes.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[lines.len() - 2..],
        ["4242 4343", "4242 4343"],
        "{out}"
    );
    assert_no_leftovers("ioids");
}

/// Options the shim cannot honour end the create with one error naming the
/// option, and nothing is left behind.
#[test]
fn refused_options_are_named_and_leave_nothing() {
    needs_root!();
    for (id, toml, name) in [
        ("opt-nopivot", "NoPivotRoot = true\n", "NoPivotRoot"),
        ("opt-systemd", "SystemdCgroup = true\n", "SystemdCgroup"),
        ("opt-binary", "BinaryName = \"crun\"\n", "BinaryName"),
        ("opt-typo", "SystemdCgroups = false\n", "SystemdCgroups"),
    ] {
        let cfg = config_file(id, toml);
        let o = run_with_config(id, &cfg, &["true"]);
        let _ = std::fs::remove_file(&cfg);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{id}: {toml} was accepted");
        assert!(
            err.contains(name),
            "{id}: error does not name {name}: {err}"
        );
        let _ = run(&["c", "rm", id]);
        assert_no_leftovers(id);
    }
}

/// The cgroup path of `pid` in each hierarchy line of /proc/PID/cgroup.
fn cgroup_lines(pid: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// Every cgroup hierarchy (v1 controllers, named ones and v2) mounted here.
fn hierarchies() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let t = post.split_whitespace().next()?;
            (t == "cgroup" || t == "cgroup2")
                .then(|| PathBuf::from(pre.split_whitespace().nth(4).unwrap()))
        })
        .collect()
}

/// `start` as containerd runs it, with `opts` on stdin, in bundle dir `dir`.
fn start(dir: &std::path::Path, id: &str, opts: &RuncOptions) -> std::process::Output {
    let e = env();
    let any = Any {
        type_url: "containerd.runc.v1.Options".into(),
        value: opts.write_to_bytes().unwrap(),
        ..Default::default()
    };
    let mut child = Command::new(repo().join("target/release/containerd-shim-rust-v1"))
        .args([
            "-namespace",
            ns(),
            "-id",
            id,
            "-address",
            &e.address,
            "start",
        ])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&any.write_to_bytes().unwrap())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// ShimCgroup (containerd's TestShimInCgroup): the serving shim is in that
/// cgroup in every hierarchy that has it; one that exists nowhere fails
/// `start` with its name, and no shim or socket stays.
#[test]
fn shim_joins_shim_cgroup_in_every_hierarchy() {
    needs_root!();
    let id = "shimcg";
    let cg = format!("rshim-test-shimcg-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("rshim-{cg}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    let made: Vec<PathBuf> = hierarchies().into_iter().map(|h| h.join(&cg)).collect();
    for d in &made {
        std::fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        // A v1 cpuset cgroup takes no process before it has cpus and mems:
        // its creator gives it the parent's (as containerd's cgroups.New does).
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = std::fs::read_to_string(d.parent().unwrap().join(f)) {
                std::fs::write(d.join(f), v.trim()).unwrap();
            }
        }
    }
    let o = start(
        &dir,
        id,
        &RuncOptions {
            shim_cgroup: format!("/{cg}"),
            ..Default::default()
        },
    );
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    let address = text(&o.stdout).trim().to_string();
    let pid = std::fs::read_to_string(dir.join("shim.pid")).unwrap();
    let lines = cgroup_lines(pid.trim());
    // Shut the shim down (it serves no container) before asserting.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = containerd_shim_protos::shim_async::TaskClient::new(
            ttrpc::r#async::Client::connect(&address).await.unwrap(),
        );
        let _ = c
            .shutdown(
                deadline(),
                &ShutdownRequest {
                    id: id.into(),
                    ..Default::default()
                },
            )
            .await;
    });
    wait_for("shim gone", Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
    });
    for d in &made {
        std::fs::remove_dir(d).unwrap_or_else(|e| panic!("rmdir {}: {e}", d.display()));
    }
    assert_eq!(lines.len(), made.len(), "{lines:?}");
    for l in &lines {
        assert!(
            l.ends_with(&format!(":/{cg}")),
            "shim not in /{cg} in every hierarchy: {lines:?}"
        );
    }

    // A cgroup that exists in no hierarchy.
    let o = start(
        &dir,
        id,
        &RuncOptions {
            shim_cgroup: format!("/{cg}-missing"),
            ..Default::default()
        },
    );
    let err = text(&o.stderr);
    assert!(!o.status.success(), "start joined a missing cgroup");
    assert!(err.contains(&format!("{cg}-missing")), "{err}");
    assert!(
        shim_pids_for(id).is_empty(),
        "a shim stayed after a failed start"
    );
    let socket = address.trim_start_matches("unix://");
    assert!(
        !std::path::Path::new(socket).exists(),
        "socket {socket} stayed after a failed start"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
