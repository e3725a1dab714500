//! Events in containerd's order: a run, a scripted lifecycle (exec, pause, resume, an
//! OOM-killed exec, an exec outliving its init), and an OOM before the exit it caused.
//! Needs root and scripts/test's private containerd.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn events_in_containerds_order() {
    needs_root!();
    let id = "evorder";
    let out = events_during(|| {
        let o = run_rm(RUNTIME, id, &["true"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    });
    assert_eq!(
        task_events(&out, id),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{out}"
    );
}

#[test]
fn every_event_of_a_scripted_lifecycle_in_containerds_order() {
    needs_root!();
    let id = "evlife";
    let out = events_during(|| {
        let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
        run_detached(id, &["--memory-limit", "33554432"], &["sh", "-c", script]);
        let o = run(&["task", "exec", "--exec-id", "quick", id, "true"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(run(&["task", "pause", id]).status.success());
        assert!(run(&["task", "resume", id]).status.success());
        // An exec that grows past the limit by itself: one process (no pipeline
        // whose other members the OOM killer could pick instead) doubling a string.
        let hog = "x=a; while true; do x=$x$x; done";
        let o = run(&["task", "exec", "--exec-id", "hog", id, "sh", "-c", hog]);
        assert_eq!(
            o.status.code(),
            Some(137),
            "{}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        // An exec still running when the init exits: its exit comes first.
        let mut long = ctr(&["task", "exec", "--exec-id", "long", id, "sleep", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("exec long running", Duration::from_secs(20), || {
            text(&run(&["task", "ps", id]).stdout).lines().count() >= 4
        });
        assert!(run(&["task", "kill", id]).status.success());
        let _ = long.wait();
        wait_for("task stopped", Duration::from_secs(20), || {
            task_status(id).as_deref() == Some("STOPPED")
        });
        assert!(run(&["task", "rm", id]).status.success());
        assert!(run(&["c", "rm", id]).status.success());
    });
    // The OOM killer may strike several times (several processes) before the
    // exec dies: one /tasks/oom per kill, as the runc shim sends them.
    let mut topics = task_events(&out, id);
    topics.dedup_by(|a, b| a == "/tasks/oom" && b == "/tasks/oom");
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added quick",
            "/tasks/exec-started quick",
            "/tasks/exit quick",
            "/tasks/paused",
            "/tasks/resumed",
            "/tasks/exec-added hog",
            "/tasks/exec-started hog",
            "/tasks/oom",
            "/tasks/exit hog",
            "/tasks/exec-added long",
            "/tasks/exec-started long",
            "/tasks/exit long",
            "/tasks/exit",
            "/tasks/delete",
        ],
        "{out}"
    );
    assert_no_leftovers(id);
}

#[test]
fn oom_is_reported_before_the_exit_it_caused() {
    needs_root!();
    let id = "oomkill";
    let mut events = ctr(&["events"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The init itself grows past 20 MiB: one process doubling a string (a
    // pipeline would let the OOM killer pick another member instead).
    let script = "x=a; while true; do x=$x$x; done";
    let o = run(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--memory-limit",
        "20971520",
        IMAGE,
        id,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(
        o.status.code(),
        Some(137),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    events.kill().unwrap();
    let out = text(&events.wait_with_output().unwrap().stdout);
    let topics: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(&format!("\"{id}\"")))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
        .collect();
    let oom = topics
        .iter()
        .position(|t| *t == "/tasks/oom")
        .unwrap_or_else(|| panic!("no /tasks/oom:\n{out}"));
    let exit = topics.iter().position(|t| *t == "/tasks/exit").unwrap();
    assert!(oom < exit, "oom after exit: {topics:?}");
    assert_no_leftovers(id);
}
