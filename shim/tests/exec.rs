//! Exec through `ctr task exec`: the init's namespaces and rootfs, exit codes, a
//! missing binary, a duplicate exec id. Needs root and scripts/test's private containerd.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn exec_joins_the_container_and_propagates_exit_codes() {
    needs_root!();
    let id = "exec";
    detached_counter(id);
    let init_uts = text(
        &run(&[
            "task",
            "exec",
            "--exec-id",
            "u",
            id,
            "readlink",
            "/proc/1/ns/uts",
        ])
        .stdout,
    );
    let o = run(&[
        "task", "exec", "--exec-id", "x1", id, "sh", "-c",
        "echo pid=$$; readlink /proc/self/ns/uts; cat /tmp/counter >/dev/null && echo sees-rootfs; exit 5",
    ]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(5), "{out}{}", text(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "pid=1");
    assert_eq!(
        lines[1],
        init_uts.trim(),
        "exec is not in the init's uts namespace"
    );
    assert_eq!(lines[2], "sees-rootfs");
    // A missing binary fails fast with one clear error naming it.
    let o = run(&["task", "exec", "--exec-id", "x2", id, "/bin/no-such-exec"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("/bin/no-such-exec"),
        "{}",
        text(&o.stderr)
    );
    // A duplicate exec id is refused while the first is known.
    let mut long = ctr(&["task", "exec", "--exec-id", "dup", id, "sleep", "5"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("exec dup running", Duration::from_secs(10), || {
        text(&run(&["task", "ps", id]).stdout).lines().count() >= 3
    });
    let o = run(&["task", "exec", "--exec-id", "dup", id, "true"]);
    assert!(!o.status.success(), "duplicate exec id accepted");
    assert!(
        text(&o.stderr).to_lowercase().contains("exists"),
        "{}",
        text(&o.stderr)
    );
    let _ = run(&["task", "kill", "-s", "KILL", "--exec-id", "dup", id]);
    let _ = long.wait();
    kill_and_remove(id);
}
