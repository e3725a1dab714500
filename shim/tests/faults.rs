//! Faults that must not disturb running containers. Restarting containerd
//! would break concurrent tests, so these run in their own binary, after the others,
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

/// These tests restart the shared containerd: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn restart_containerd() {
    restart_containerd_with_debug(false);
}

/// Restarts containerd, at log level debug (it then passes `-debug` to
/// shims) or info.
fn restart_containerd_with_debug(debug: bool) {
    let dir = containerd_dir();
    let pid: i32 = std::fs::read_to_string(dir.join("containerd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill takes only integers and touches no memory of ours.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_for(
        "containerd to exit",
        Duration::from_secs(20),
        // SAFETY: kill takes only integers and touches no memory of ours.
        || unsafe { libc::kill(pid, 0) } != 0,
    );
    let st = std::process::Command::new(repo().join("scripts/containerd"))
        .args(["start", &env().version])
        .arg(&dir)
        .env("CONTAINERD_DEBUG", if debug { "1" } else { "0" })
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "restart containerd");
}

#[test]
fn containers_survive_a_containerd_restart() {
    needs_root!();
    let _one_at_a_time = serial();
    let id = "survivor";
    let script = "trap 'exit 7' TERM; while true; do sleep 0.1; done";
    run_detached(id, &[], &["sh", "-c", script]);
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

/// Our shim's lines at `level` for the shim of `id`, from containerd's log
/// (containerd copies each shim's log FIFO into it).
fn shim_log_lines(id: &str, level: &str) -> Vec<String> {
    let log = std::fs::read_to_string(containerd_dir().join("containerd.log")).unwrap();
    let tag = format!("level={level} runtime=io.containerd.rust.v1 id={id} ");
    log.lines()
        .filter(|l| l.contains(&tag))
        .map(String::from)
        .collect()
}

#[test]
fn debug_logs_only_with_debug() {
    needs_root!();
    let _one_at_a_time = serial();
    // containerd at info passes no -debug: the shim keeps quiet.
    restart_containerd_with_debug(false);
    let o = run_rm(RUNTIME, "quiet", &["true"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_no_leftovers("quiet");
    assert_eq!(shim_log_lines("quiet", "debug"), Vec::<String>::new());
    // At debug it passes -debug, and the shim says what it does.
    restart_containerd_with_debug(true);
    let o = run_rm(RUNTIME, "chatty", &["true"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_no_leftovers("chatty");
    let lines = shim_log_lines("chatty", "debug");
    restart_containerd_with_debug(false);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("msg=\"create chatty bundle ")),
        "no debug line about the create: {lines:#?}"
    );
    assert!(
        lines.iter().all(|l| l.starts_with("time=\"20")),
        "not containerd's time format: {lines:#?}"
    );
}

#[test]
fn killed_shim_is_cleaned_up_by_delete() {
    needs_root!();
    let _one_at_a_time = serial();
    let id = "shimkill";
    run_detached(id, &[], &["sleep", "1000"]);
    let shims = shim_pids_for(id);
    assert_eq!(shims.len(), 1);
    // containerd notices the dead shim and runs our `delete`, which must remove
    // the container's processes, cgroup, rootfs mount and work dir.
    // SAFETY: kill takes only integers and touches no memory of ours.
    unsafe { libc::kill(shims[0], libc::SIGKILL) };
    wait_for("task gone or stopped", Duration::from_secs(20), || {
        task_status(id).is_none_or(|s| s == "STOPPED" || s == "UNKNOWN")
    });
    let _ = run(&["task", "rm", "-f", id]);
    let crm = run(&["c", "rm", id]);
    assert!(crm.status.success(), "{}", text(&crm.stderr));
    assert_no_leftovers(id);
}
