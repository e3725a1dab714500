//! Cgroups through containerd and `ctr`: device rules of ctr's default spec
//! and `--privileged`, SIGKILL of a paused task, `..` in cgroupsPath, and on
//! a cgroup v2-only host (the qemu guest) v2 metrics and v2 update. Needs
//! root and the private containerd of `scripts/test`.
//!
//! Tests named `cgroup_v2_*` say that they skip on a hybrid host, and why.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn v2_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn skip_unless_v2_only(test: &str) -> bool {
    if v2_only() {
        return false;
    }
    println!(
        "SKIP {test}: needs a cgroup v2-only host (this one is hybrid); the guest suite runs it"
    );
    true
}

fn kill_and_remove(id: &str) {
    let _ = run(&["task", "kill", "-s", "SIGKILL", id]);
    wait_for("task stopped", Duration::from_secs(20), || {
        task_status(id).as_deref() != Some("RUNNING")
    });
    let _ = run(&["task", "rm", id]);
    let _ = run(&["container", "rm", id]);
    assert_no_leftovers(id);
}

const PROBE: &str =
    "mknod /dev/probe b 7 0; head -c1 /dev/probe >/dev/null; echo x >/dev/null && echo null=ok";

/// ctr's default spec (deny all + the default allow list) denies opening a
/// block device made with mknod (EPERM from the device controller, the
/// eBPF program on cgroup v2); `--privileged` allows it (then ENXIO or data).
#[test]
fn device_rules_of_ctrs_default_spec_and_privileged() {
    needs_root!();
    let o = run_rm(RUNTIME, "devdefault", &["sh", "-c", PROBE]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        o.status.success(),
        "ctr run with ctr's default spec failed: {out}"
    );
    assert!(
        out.contains("Operation not permitted") && out.contains("null=ok"),
        "{out}"
    );
    let o = run(&[
        "run",
        "--rm",
        "--privileged",
        "--runtime",
        RUNTIME,
        IMAGE,
        "devpriv",
        "sh",
        "-c",
        PROBE,
    ]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "ctr run --privileged failed: {out}");
    assert!(!out.contains("Operation not permitted"), "{out}");
    assert_no_leftovers("devdefault");
    assert_no_leftovers("devpriv");
}

/// `ctr t pause` then `ctr t kill -s SIGKILL`: the task stops at once (runc's
/// shim: 24 ms) and delete leaves no cgroup, shim or bundle.
#[test]
fn sigkill_of_a_paused_task_stops_it() {
    needs_root!();
    let id = "pausedkill";
    run_detached(id, &[], &["sh", "-c", "sleep 1000 & sleep 1000"]);
    let p = run(&["task", "pause", id]);
    assert!(p.status.success(), "{}", text(&p.stderr));
    assert_eq!(task_status(id).as_deref(), Some("PAUSED"));
    let t = Instant::now();
    let k = run(&["task", "kill", "-s", "SIGKILL", id]);
    assert!(k.status.success(), "{}", text(&k.stderr));
    // Without the fix the task stays PAUSED for ever; 60 s leaves room for the
    // TCG-emulated guest, where each ctr call takes seconds.
    let mut status = None;
    while t.elapsed() < Duration::from_secs(60) {
        status = task_status(id);
        if status.as_deref() == Some("STOPPED") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t.elapsed();
    assert_eq!(status.as_deref(), Some("STOPPED"), "after {took:?}");
    let rm = run(&["task", "rm", id]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    let _ = run(&["container", "rm", id]);
    // On the host (not emulated) it must be prompt, as with runc's shim.
    if !v2_only() {
        assert!(took < Duration::from_secs(2), "stopped after {took:?}");
    }
    assert_no_leftovers(id);
}

/// `..` in cgroupsPath (`ctr run --cgroup`) resolves under each hierarchy's
/// root, as runc does: the container runs, nothing appears outside the
/// cgroup mounts.
#[test]
fn cgroups_path_with_dotdot_creates_nothing_outside() {
    needs_root!();
    let id = "dotdot";
    let top = format!("rshim-dotdot-{}", std::process::id());
    let path = format!("/../../../../../{top}/../{top}/{id}");
    let o = run(&[
        "run",
        "--rm",
        "--cgroup",
        &path,
        "--runtime",
        RUNTIME,
        IMAGE,
        id,
        "cat",
        "/proc/self/cgroup",
    ]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    // What the container was in, then remove the parent we made in each hierarchy.
    let mut parents = vec![Path::new("/sys/fs/cgroup").join(&top)];
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        parents.push(h.path().join(&top));
    }
    for p in &parents {
        let _ = std::fs::remove_dir(p);
    }
    assert!(o.status.success(), "{out}");
    assert!(out.contains(&format!("/{top}/{id}")), "{out}");
    for outside in ["/", "/sys", "/sys/fs"] {
        let p = Path::new(outside).join(&top);
        assert!(
            !p.exists(),
            "created outside the cgroup tree: {}",
            p.display()
        );
    }
    assert_no_leftovers(id);
}

fn metric(table: &str, key: &str) -> Option<u64> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// `ctr task metrics` on cgroup v2: the v2 names, figures that move, and
/// `max` limits as u64::MAX (as containerd's runc shim reports them).
#[test]
fn cgroup_v2_metrics_move_and_limits_read_max() {
    needs_root!();
    if skip_unless_v2_only("cgroup_v2_metrics_move_and_limits_read_max") {
        return;
    }
    let id = "v2metrics";
    let script = "head -c 5000000 /dev/zero > /dev/shm/blob; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000 & wait";
    run_detached(id, &["--memory-limit", "67108864"], &["sh", "-c", script]);
    let mut table = String::new();
    // Generous: the guest runs under TCG emulation, each ctr call takes seconds.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(180) {
        table = text(&run(&["task", "metrics", id]).stdout);
        if metric(&table, "memory.usage").unwrap_or(0) > 5_000_000
            && metric(&table, "cpu.usage_usec").unwrap_or(0) > 1000
            && metric(&table, "pids.current").unwrap_or(0) >= 2
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    kill_and_remove(id);
    assert!(
        metric(&table, "memory.usage").unwrap_or(0) > 5_000_000,
        "{table}"
    );
    assert!(
        metric(&table, "cpu.usage_usec").unwrap_or(0) > 1000,
        "{table}"
    );
    assert_eq!(
        metric(&table, "memory.usage_limit"),
        Some(67108864),
        "{table}"
    );
    assert_eq!(metric(&table, "pids.limit"), Some(u64::MAX), "{table}");
    assert_eq!(
        metric(&table, "memory.swap_limit"),
        Some(u64::MAX),
        "{table}"
    );
    assert!(metric(&table, "pids.current").unwrap_or(0) >= 2, "{table}");
}

/// Update through the Task API (the path CRI's UpdateContainerResources
/// takes) writes the v2 files, device rules included.
#[test]
fn cgroup_v2_update_reaches_the_cgroup() {
    needs_root!();
    if skip_unless_v2_only("cgroup_v2_update_reaches_the_cgroup") {
        return;
    }
    let id = "v2update";
    run_detached(id, &[], &["sleep", "1000"]);
    let resources = r#"{"memory":{"limit":104857600,"swap":209715200},"pids":{"limit":50},
        "cpu":{"shares":512,"quota":20000,"period":100000},
        "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"b","major":7,"minor":0,"access":"r"}]}"#;
    let r = update_task(id, resources);
    let dir = Path::new("/sys/fs/cgroup").join(ns()).join(id);
    let cg = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let got: Vec<String> = [
        "memory.max",
        "memory.swap.max",
        "pids.max",
        "cpu.weight",
        "cpu.max",
    ]
    .iter()
    .map(|f| cg(f))
    .collect();
    let o = run(&["task", "exec", "--exec-id", "probe", id, "sh", "-c", PROBE]);
    let probe = format!("{}{}", text(&o.stdout), text(&o.stderr));
    kill_and_remove(id);
    r.unwrap();
    assert_eq!(
        got,
        ["104857600", "104857600", "50", "20", "20000 100000"],
        "memory.max, memory.swap.max, pids.max, cpu.weight, cpu.max"
    );
    assert!(!probe.contains("Operation not permitted"), "{probe}");
}
