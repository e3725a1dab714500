//! Faults that must not disturb running containers. Restarting containerd
//! would break concurrent tests, so these run in their own binary, after e2e,
//! one at a time. Needs root, and scripts/test's private containerd.

mod common;

use std::time::Duration;

use common::*;

fn containerd_dir() -> std::path::PathBuf {
    std::path::Path::new(&env().address)
        .parent()
        .unwrap()
        .to_path_buf()
}

fn restart_containerd() {
    let dir = containerd_dir();
    let pid: i32 = std::fs::read_to_string(dir.join("containerd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_for(
        "containerd to exit",
        Duration::from_secs(20),
        || unsafe { libc::kill(pid, 0) } != 0,
    );
    let st = std::process::Command::new(repo().join("scripts/containerd"))
        .args(["start", &env().version])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "restart containerd");
}

#[test]
fn containers_survive_a_containerd_restart() {
    let id = "survivor";
    let script = "trap 'exit 7' TERM; while true; do sleep 0.1; done";
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
    wait_for("task running", Duration::from_secs(20), || {
        task_status(id).as_deref() == Some("RUNNING")
    });
    let shim = shim_pids_for(id);
    restart_containerd();
    // containerd reconnects to the same shim (Connect, State) and sees the task running.
    assert_eq!(task_status(id).as_deref(), Some("RUNNING"));
    assert_eq!(shim_pids_for(id), shim, "the shim was replaced");
    let o = run(&[
        "task",
        "exec",
        "--exec-id",
        "after",
        id,
        "sh",
        "-c",
        "echo still-here",
    ]);
    assert_eq!(text(&o.stdout), "still-here\n", "{}", text(&o.stderr));
    // Exit events reach the new containerd.
    assert!(run(&["task", "kill", "-s", "TERM", id]).status.success());
    wait_for("task stopped", Duration::from_secs(20), || {
        task_status(id).as_deref() == Some("STOPPED")
    });
    let rm = run(&["task", "rm", id]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    assert!(
        text(&rm.stderr).is_empty() || text(&rm.stderr).contains("exit code 7"),
        "{}",
        text(&rm.stderr)
    );
    assert!(run(&["c", "rm", id]).status.success());
    assert_no_leftovers(id);
}
