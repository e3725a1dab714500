//! The task lifecycle through `ctr`: kill, a detached task's State/Pids/Kill/Delete,
//! errors at create, pause/resume, metrics, update, `-v`, and the Go runc shim
//! beside ours (as a reference, and driving our runc-compatible CLI). Needs root and
//! scripts/test's private containerd.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn sigkilled_init_reports_137() {
    needs_root!();
    let id = "sigkill";
    let mut child = ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        IMAGE,
        id,
        "sleep",
        "1000",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    wait_for("task running", Duration::from_secs(20), || {
        task_status(id).as_deref() == Some("RUNNING")
    });
    let k = run(&["task", "kill", "-s", "KILL", id]);
    assert!(k.status.success(), "{}", text(&k.stderr));
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(137));
    assert_no_leftovers(id);
}

#[test]
fn detached_lifecycle_leaves_nothing() {
    needs_root!();
    let id = "lifecycle";
    run_detached(
        id,
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ],
    );
    let ps = text(&run(&["task", "ps", id]).stdout);
    let pids: Vec<&str> = ps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!pids.is_empty(), "task ps shows no process:\n{ps}");
    assert_eq!(shim_pids_for(id).len(), 1, "one shim serves the container");
    let k = run(&["task", "kill", "-s", "TERM", id]);
    assert!(k.status.success(), "{}", text(&k.stderr));
    wait_for("task stopped", Duration::from_secs(20), || {
        task_status(id).as_deref() == Some("STOPPED")
    });
    let rm = run(&["task", "rm", id]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    let crm = run(&["c", "rm", id]);
    assert!(crm.status.success(), "{}", text(&crm.stderr));
    assert_no_leftovers(id);
}

#[test]
fn missing_rootfs_is_one_clear_error() {
    needs_root!();
    let o = run(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--rootfs",
        "/nonexistent/rootfs",
        "norootfs",
        "true",
    ]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("root.path /nonexistent/rootfs"), "{err}");
    assert_no_leftovers("norootfs");
}

#[test]
fn unknown_namespace_is_one_clear_error() {
    needs_root!();
    let o = run(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--with-ns",
        "bogus:/proc/1/ns/net",
        IMAGE,
        "badns",
        "true",
    ]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("bogus"), "{err}");
    assert_no_leftovers("badns");
}

#[test]
fn missing_command_is_one_clear_error() {
    needs_root!();
    let o = run_rm(RUNTIME, "nocmd", &["/bin/no-such-command"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("/bin/no-such-command"), "{err}");
    assert_no_leftovers("nocmd");
}

fn counter(id: &str) -> u64 {
    let pid = text(&run(&["task", "ls"]).stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(1).map(String::from))
        .unwrap();
    std::fs::read_to_string(format!("/proc/{pid}/root/tmp/counter"))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn pause_freezes_and_resume_thaws() {
    needs_root!();
    let id = "pause";
    detached_counter(id);
    wait_for("counter moving", Duration::from_secs(10), || {
        counter(id) > 2
    });
    let p = run(&["task", "pause", id]);
    assert!(p.status.success(), "{}", text(&p.stderr));
    assert_eq!(task_status(id).as_deref(), Some("PAUSED"));
    let frozen = counter(id);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(id), frozen, "processes kept running while paused");
    let r = run(&["task", "resume", id]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_eq!(task_status(id).as_deref(), Some("RUNNING"));
    wait_for("counter moving again", Duration::from_secs(10), || {
        counter(id) > frozen
    });
    kill_and_remove(id);
}

#[test]
fn metrics_are_the_hosts_type_with_plausible_numbers() {
    needs_root!();
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        println!("SKIP metrics_are_the_hosts_type_with_plausible_numbers: v1 names; on this v2-only host cgroups::cgroup_v2_metrics_move_and_limits_read_max checks the v2 ones");
        return;
    }
    let id = "metrics";
    let script = "head -c 5000000 /dev/zero > /dev/shm/blob; while true; do sleep 1; done";
    let o = run(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        id,
        "sh",
        "-c",
        script,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let value = |table: &str, key: &str| -> u64 {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut table = String::new();
    wait_for(
        "5 MB charged to the container",
        Duration::from_secs(20),
        || {
            table = text(&run(&["task", "metrics", id]).stdout);
            value(&table, "memory.usage_in_bytes") > 5_000_000
        },
    );
    // This host is cgroup v1 (hybrid): the v1 metrics names must be there.
    assert!(value(&table, "memory.stat.cache") >= 4_000_000, "{table}");
    assert!(value(&table, "cpuacct.usage") > 0, "{table}");
    assert!(value(&table, "pids.current") >= 2, "{table}");
    kill_and_remove(id);
}

#[test]
fn update_reaches_the_cgroup() {
    needs_root!();
    // ctr has no `task update`: call the shim's Task API (the one containerd uses) directly.
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        println!("SKIP update_reaches_the_cgroup: v1 files; on this v2-only host cgroups::cgroup_v2_update_reaches_the_cgroup checks the v2 ones");
        return;
    }
    let id = "update";
    detached_counter(id);
    let resources = r#"{"memory":{"limit":104857600},"pids":{"limit":50},"cpu":{"shares":512}}"#;
    update_task(id, resources).unwrap();
    let cg = |ctl: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/{}/{id}/{file}", ns()))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(cg("memory", "memory.limit_in_bytes"), "104857600");
    assert_eq!(cg("pids", "pids.max"), "50");
    assert_eq!(cg("cpu", "cpu.shares"), "512");
    kill_and_remove(id);
}

#[test]
fn version_flag() {
    let bin = repo().join("target/release/containerd-shim-rust-v1");
    let o = std::process::Command::new(bin).arg("-v").output().unwrap();
    assert!(o.status.success());
    assert!(
        text(&o.stdout).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn runc_shim_reference_agrees_on_exit_code() {
    needs_root!();
    // The same command through the Go runc shim of this containerd: same answer.
    let o = run_rm(RUNC, "ref-runc", &["sh", "-c", "echo hi; exit 3"]);
    assert_eq!(
        (text(&o.stdout).as_str(), o.status.code()),
        ("hi\n", Some(3)),
        "{}",
        text(&o.stderr)
    );
}

/// containerd's own Go runc shim, with our runc-compatible CLI as its runc.
fn runc_binary() -> String {
    repo()
        .join("target/release/rshim-runc")
        .display()
        .to_string()
}

#[test]
fn go_runc_shim_drives_our_cli() {
    needs_root!();
    let cli = runc_binary();
    let o = run(&[
        "run",
        "--rm",
        "--runtime",
        RUNC,
        "--runc-binary",
        &cli,
        IMAGE,
        "cli-run",
        "sh",
        "-c",
        "echo hi from $$; exit 3",
    ]);
    assert_eq!(
        (text(&o.stdout).as_str(), o.status.code()),
        ("hi from 1\n", Some(3)),
        "{}",
        text(&o.stderr)
    );
    // The detached lifecycle: create/start, exec, ps, pause/resume, kill, delete.
    let id = "cli-life";
    let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    let o = run(&[
        "run",
        "-d",
        "--runtime",
        RUNC,
        "--runc-binary",
        &cli,
        IMAGE,
        id,
        "sh",
        "-c",
        script,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_for("task running", Duration::from_secs(20), || {
        task_status(id).as_deref() == Some("RUNNING")
    });
    let o = run(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        id,
        "sh",
        "-c",
        "echo exec-ok; exit 5",
    ]);
    assert_eq!(
        (text(&o.stdout).as_str(), o.status.code()),
        ("exec-ok\n", Some(5)),
        "{}",
        text(&o.stderr)
    );
    assert!(text(&run(&["task", "ps", id]).stdout).lines().count() >= 2);
    assert!(run(&["task", "pause", id]).status.success());
    assert_eq!(task_status(id).as_deref(), Some("PAUSED"));
    assert!(run(&["task", "resume", id]).status.success());
    assert!(run(&["task", "kill", id]).status.success());
    wait_for("task stopped", Duration::from_secs(20), || {
        task_status(id).as_deref() == Some("STOPPED")
    });
    assert!(run(&["task", "rm", id]).status.success());
    assert!(run(&["c", "rm", id]).status.success());
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        assert!(
            !h.path().join(ns()).join(id).exists(),
            "cgroup of {id} left behind"
        );
    }
}
