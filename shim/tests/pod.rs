//! Containers without a pid namespace of their own: in the host's (orphans
//! are the shim's to reap), and in a pod's sandbox (they die with the
//! sandbox's init). Needs root and scripts/test's private containerd.

mod common;

use std::time::Duration;

use common::*;

/// Host pids whose command line is exactly `args`.
fn pids_running(args: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == want) {
            out.push(pid);
        }
    }
    out
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn init_pid(id: &str) -> i32 {
    text(&run(&["task", "ls"]).stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid for task {id}"))
}

fn run_detached(id: &str, extra: &[&str], cmd: &[&str]) {
    let mut a = vec!["run", "-d", "--runtime", RUNTIME];
    a.extend_from_slice(extra);
    a.extend_from_slice(&[IMAGE, id]);
    a.extend_from_slice(cmd);
    let o = run(&a);
    assert!(o.status.success(), "{id}: {}", text(&o.stderr));
    wait_for("task running", Duration::from_secs(30), || {
        task_status(id).as_deref() == Some("RUNNING")
    });
}

/// Every zombie child of `shim` seen now is reaped soon after.
fn assert_zombies_get_reaped(shim: i32) {
    let zombies: Vec<i32> = children_of(shim)
        .into_iter()
        .filter(|c| c.1 == 'Z')
        .map(|c| c.0)
        .collect();
    wait_for(
        &format!("zombies {zombies:?} under the shim to be reaped"),
        Duration::from_secs(20),
        || {
            let now = children_of(shim);
            zombies
                .iter()
                .all(|z| !now.iter().any(|c| c.0 == *z && c.1 == 'Z'))
        },
    );
}

fn remove(id: &str) {
    let rm = run(&["task", "rm", "-f", id]);
    assert!(rm.status.success(), "task rm {id}: {}", text(&rm.stderr));
    let crm = run(&["c", "rm", id]);
    assert!(crm.status.success(), "c rm {id}: {}", text(&crm.stderr));
}

#[test]
fn orphans_in_the_host_pid_namespace_are_reaped_by_the_shim() {
    needs_root!();
    let id = "orphans";
    // The init keeps orphaning: each subshell starts a sleep and exits at once.
    let script = "while true; do (sleep 0.05 &); sleep 0.1; done";
    // The host's pid namespace (the shim's and ours), joined by path.
    let host = format!("pid:/proc/{}/ns/pid", std::process::id());
    run_detached(id, &["--with-ns", &host], &["sh", "-c", script]);
    let shim = shim_pids_for(id)[0];
    // An exec that leaves a background child and exits: the child is adopted
    // by the shim (PR_SET_CHILD_SUBREAPER), not by the machine's pid 1.
    let marker = ["sleep", "1013"];
    let o = run(&[
        "task",
        "exec",
        "--exec-id",
        "bg",
        id,
        "sh",
        "-c",
        // Its output elsewhere: a child holding the exec's stdout keeps the exec
        // from being reported until it ends (as with the runc shim).
        "sleep 1013 >/dev/null 2>&1 & exit 0",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let bg = pids_running(&marker);
    assert_eq!(bg.len(), 1, "background child of the exec: {bg:?}");
    assert_eq!(
        ppid(bg[0]),
        Some(shim),
        "the orphan was not adopted by the shim"
    );
    // Orphans keep dying meanwhile: none stays a zombie.
    std::thread::sleep(Duration::from_secs(2));
    assert_zombies_get_reaped(shim);
    // The init's exit ends what it leaves behind in the container (no pid
    // namespace does it here), and is reported.
    assert!(run(&["task", "kill", "-s", "KILL", id]).status.success());
    wait_for("task stopped", Duration::from_secs(30), || {
        task_status(id).as_deref() == Some("STOPPED")
    });
    wait_for(
        "the orphan to die with the init",
        Duration::from_secs(20),
        || pids_running(&marker).is_empty(),
    );
    assert_zombies_get_reaped(shim);
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn a_pod_member_shares_the_sandbox_pid_namespace_and_dies_with_it() {
    needs_root!();
    let (sandbox, member) = ("podsb", "podmember");
    let pod = format!("io.kubernetes.cri.sandbox-id={sandbox}");
    let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    run_detached(sandbox, &["--annotation", &pod], &["sh", "-c", script]);
    let sandbox_ns = format!("pid:/proc/{}/ns/pid", init_pid(sandbox));
    run_detached(
        member,
        &["--annotation", &pod, "--with-ns", &sandbox_ns],
        &["sleep", "1014"],
    );
    assert_eq!(shim_pids_for(sandbox).len(), 1, "one shim serves the pod");
    assert!(
        shim_pids_for(member).is_empty(),
        "a second shim for the pod"
    );
    let shim = shim_pids_for(sandbox)[0];
    // Inside the member, pid 1 is the sandbox's init, and it is the same namespace.
    let exec = |id: &str, eid: &str, cmd: &str| {
        let o = run(&["task", "exec", "--exec-id", eid, id, "sh", "-c", cmd]);
        assert!(o.status.success(), "{id}: {cmd}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let seen = exec(
        member,
        "m1",
        "readlink /proc/self/ns/pid; cat /proc/1/cmdline | tr '\\0' ' '",
    );
    let own = exec(sandbox, "s1", "readlink /proc/self/ns/pid");
    assert_eq!(seen.lines().next(), own.lines().next(), "{seen}");
    assert!(seen.contains("while true"), "pid 1 in the member: {seen}");
    // An orphan of the member goes to the sandbox's init (its pid namespace's reaper).
    exec(member, "m2", "sleep 1015 >/dev/null 2>&1 & exit 0");
    let bg = pids_running(&["sleep", "1015"]);
    assert_eq!(bg.len(), 1, "{bg:?}");
    assert_eq!(ppid(bg[0]), Some(init_pid(sandbox)));
    let member_init = pids_running(&["sleep", "1014"]);
    assert_eq!(member_init.len(), 1);
    // A member whose init exits while the pod lives on: what it started dies
    // with it (its pid namespace does not end, so the shim kills them).
    let short = "podshort";
    run_detached(
        short,
        &["--annotation", &pod, "--with-ns", &sandbox_ns],
        &["sh", "-c", "sleep 1016 >/dev/null 2>&1 & exec sleep 1017"],
    );
    wait_for("the short member's child", Duration::from_secs(20), || {
        pids_running(&["sleep", "1016"]).len() == 1
    });
    assert!(run(&["task", "kill", "-s", "KILL", short]).status.success());
    wait_for("the short member stopped", Duration::from_secs(30), || {
        task_status(short).as_deref() == Some("STOPPED")
    });
    wait_for(
        "the short member's child to die",
        Duration::from_secs(20),
        || pids_running(&["sleep", "1016"]).is_empty(),
    );
    assert_eq!(task_status(sandbox).as_deref(), Some("RUNNING"));
    remove(short);
    assert!(
        shim_pids_for(sandbox).len() == 1,
        "the pod's shim left early"
    );
    // The sandbox's init exits: its pid namespace, and all in it, end.
    assert!(run(&["task", "kill", sandbox]).status.success());
    wait_for("both tasks stopped", Duration::from_secs(30), || {
        task_status(sandbox).as_deref() == Some("STOPPED")
            && task_status(member).as_deref() == Some("STOPPED")
    });
    wait_for(
        "the member's processes to die",
        Duration::from_secs(20),
        || {
            pids_running(&["sleep", "1014"]).is_empty()
                && pids_running(&["sleep", "1015"]).is_empty()
        },
    );
    let rm = run(&["task", "rm", member]);
    assert!(
        text(&rm.stderr).contains("137") || text(&rm.stdout).contains("137"),
        "the member's init was not SIGKILLed with its namespace: {} {}",
        text(&rm.stdout),
        text(&rm.stderr)
    );
    assert_zombies_get_reaped(shim);
    assert!(run(&["c", "rm", member]).status.success());
    remove(sandbox);
    assert_no_leftovers(sandbox);
    assert_no_leftovers(member);
    assert_no_leftovers(short);
}

/// Shim processes (any container id) serving our private containerd.
fn all_shims() -> usize {
    ["podc1", "podc2"]
        .iter()
        .map(|id| shim_pids_for(id).len())
        .sum()
}

#[test]
fn one_shim_serves_a_pod() {
    needs_root!();
    // Containers naming the same sandbox share one shim (CRI's grouping).
    let ann = "io.kubernetes.cri.sandbox-id=pod-one";
    for id in ["podc1", "podc2"] {
        let o = run(&[
            "run",
            "-d",
            "--runtime",
            RUNTIME,
            "--annotation",
            ann,
            IMAGE,
            id,
            "sleep",
            "1000",
        ]);
        assert!(o.status.success(), "{id}: {}", text(&o.stderr));
        wait_for("task running", Duration::from_secs(20), || {
            task_status(id).as_deref() == Some("RUNNING")
        });
    }
    assert_eq!(
        shim_pids_for("podc1").len(),
        1,
        "the first container's shim serves the pod"
    );
    assert_eq!(all_shims(), 1, "a second shim was started for the same pod");
    // The shim stays while one container remains, and goes with the last.
    kill_and_remove_keeping_shim("podc1");
    assert_eq!(
        all_shims(),
        1,
        "the pod's shim left with a container still in it"
    );
    assert_eq!(task_status("podc2").as_deref(), Some("RUNNING"));
    kill_and_remove("podc2");
    wait_for("pod shim gone", Duration::from_secs(10), || {
        all_shims() == 0
    });
    assert_no_leftovers("podc1");
}

fn kill_and_remove_keeping_shim(id: &str) {
    let _ = run(&["task", "kill", "-s", "KILL", id]);
    wait_for("task stopped", Duration::from_secs(20), || {
        task_status(id).as_deref() != Some("RUNNING")
    });
    assert!(run(&["task", "rm", id]).status.success());
    assert!(run(&["c", "rm", id]).status.success());
}
