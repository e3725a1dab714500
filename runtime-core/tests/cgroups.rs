//! Cgroups of real containers: the device baseline and program, freezing
//! and killing, CLONE_INTO_CGROUP, `..` in cgroupsPath, OOM kills, and the
//! cgroup v2 writes and figures. Needs root.
//!
//! Tests named `cgroup_v2_*` need a cgroup v2-only host with controllers
//! (the qemu guest); on a hybrid host they say that they skip, and why.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runtime_core::cgroups::devices::bpf;
use runtime_core::cgroups::hierarchy;
use runtime_core::{Container, Stdio};
use serde_json::{json, Value};

mod common;

const PARENT: &str = "rshim-core-cgroups";

fn bundle(name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
    common::bundle(PARENT, name, args, edit)
}

/// The v2 mount: `/sys/fs/cgroup` on a v2-only host, `/sys/fs/cgroup/unified` on hybrid.
fn v2_mount() -> Option<PathBuf> {
    hierarchy::mounted()
        .unwrap()
        .into_iter()
        .find(|h| h.v2)
        .map(|h| h.mount)
}

fn v2_only() -> bool {
    hierarchy::mounted().unwrap().iter().all(|h| h.v2)
}

/// The container's v2 cgroup directory.
fn v2_dir(name: &str) -> PathBuf {
    v2_mount()
        .expect("a cgroup v2 hierarchy")
        .join(common::cgroup_of(PARENT, name).trim_start_matches('/'))
}

/// True (after saying so) when this test cannot run here.
fn skip_unless_v2_only(test: &str, controllers: &[&str]) -> bool {
    if !v2_only() {
        println!(
            "SKIP {test}: needs a cgroup v2-only host (this one is hybrid: its controllers are \
             bound to cgroup v1); the guest suite runs it"
        );
        return true;
    }
    let have = std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control").unwrap_or_default();
    if let Some(c) = controllers
        .iter()
        .find(|c| !have.split_whitespace().any(|h| h == **c))
    {
        println!("SKIP {test}: the {c} controller is not enabled in /sys/fs/cgroup");
        return true;
    }
    false
}

/// Runs `script` in the running container `c`; (exit status, stdout+stderr).
fn exec(c: &Container, script: &str) -> (u32, String) {
    let p: oci_spec::runtime::Process = serde_json::from_value(json!({
        "args": ["sh", "-c", script],
        "cwd": "/",
        "env": ["PATH=/bin:/sbin:/usr/bin"],
        "user": {"uid": 0, "gid": 0},
        "capabilities": caps()
    }))
    .unwrap();
    let (r, w) = nix::unistd::pipe().unwrap();
    let w2 = w.try_clone().unwrap();
    let (pidfd, _) = c
        .exec(
            &p,
            Stdio {
                stdin: None,
                stdout: Some(w),
                stderr: Some(w2),
            },
        )
        .unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::fs::File::from(r).read_to_string(&mut s).unwrap();
        s
    });
    let st = pidfd.reap_blocking().unwrap();
    (st.0, out.join().unwrap())
}

fn caps() -> Value {
    let c = json!(["CAP_MKNOD", "CAP_DAC_OVERRIDE", "CAP_KILL"]);
    json!({"bounding": c, "effective": c, "permitted": c})
}

/// Readable within `timeout`: the process behind the pidfd exited.
fn exits_within(fd: &impl AsRawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd, count 1.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) == 1 }
}

fn finish(c: Container, b: &Path) {
    let _ = c.kill(libc::SIGKILL, true);
    let _ = c.init().reap_blocking();
    c.delete().unwrap();
    let _ = std::fs::remove_dir_all(b);
}

/// A spec without `linux.resources.devices` still gets the baseline: a
/// block device made with mknod cannot be opened (EPERM from the device
/// controller, not ENXIO from a missing device), `/dev/null` works. Update
/// allows it live. Where the container has a v2 cgroup (hybrid hosts too) a
/// device program is attached to it, and the update replaces it (one
/// program, a new id).
fn device_baseline_without_rules_and_live_update() {
    let name = "devices";
    let b = bundle(name, &["sleep", "1000"], |v| {
        v["linux"]["resources"]
            .as_object_mut()
            .map(|r| r.remove("devices"));
        v["process"]["capabilities"] = caps();
    });
    let c = common::start_detached(name, &b);
    let probe = "mknod /dev/probe b 7 0 2>&1; head -c1 /dev/probe >/dev/null 2>/dev/null; \
                 echo open=$?; head -c1 /dev/probe 2>&1 >/dev/null; echo x > /dev/null && echo null=ok; rm -f /dev/probe";
    let (_, before) = exec(&c, probe);
    let ids_before = v2_mount().map(|_| {
        let fd = bpf::open_cgroup(&v2_dir(name)).unwrap();
        bpf::attached(&fd).unwrap()
    });
    let update: oci_spec::runtime::LinuxResources = serde_json::from_value(json!({
        "devices": [{"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]
    }))
    .unwrap();
    let updated = c.update(&update);
    let (_, after) = exec(&c, probe);
    let ids_after = v2_mount().map(|_| {
        let fd = bpf::open_cgroup(&v2_dir(name)).unwrap();
        bpf::attached(&fd).unwrap()
    });
    finish(c, &b);
    assert!(
        before.contains("Operation not permitted") && before.contains("null=ok"),
        "baseline must deny the block device and allow /dev/null: {before}"
    );
    updated.unwrap();
    assert!(
        !after.contains("Operation not permitted") && after.contains("null=ok"),
        "after the update the device must open (or be missing: ENXIO): {after}"
    );
    if let (Some(before), Some(after)) = (ids_before, ids_after) {
        assert_eq!(before.len(), 1, "one device program attached: {before:?}");
        assert_eq!(after.len(), 1, "still one after update: {after:?}");
        assert_ne!(before, after, "the update replaced the program");
    }
}

/// SIGKILL of a paused container: it stops at once (runc thaws after the
/// signal) and delete leaves nothing; the same for kill --all.
fn sigkill_of_a_paused_container() {
    for all in [false, true] {
        let name = if all { "paused-all" } else { "paused" };
        let b = bundle(
            name,
            &["sh", "-c", "sleep 1000 & sleep 1000 & wait"],
            |_| {},
        );
        let c = common::start_detached(name, &b);
        std::thread::sleep(Duration::from_millis(100));
        c.pause().unwrap();
        let t = Instant::now();
        c.kill(libc::SIGKILL, all).unwrap();
        let died = exits_within(c.init(), Duration::from_secs(3));
        let took = t.elapsed();
        let _ = c.init().reap_blocking();
        c.delete().unwrap();
        let _ = std::fs::remove_dir_all(&b);
        assert!(died, "{name}: the paused init did not die on SIGKILL");
        assert!(took < Duration::from_secs(1), "{name}: took {took:?}");
        assert_eq!(common::cgroup_left(PARENT, name), None, "{name}");
        if let Some(m) = v2_mount() {
            assert!(!m
                .join(common::cgroup_of(PARENT, name).trim_start_matches('/'))
                .exists());
        }
    }
}

/// kill --all with SIGKILL reaches every process (cgroup.kill where the
/// kernel has it), also ones the init does not know.
fn kill_all_reaches_every_process() {
    let name = "killall";
    let b = bundle(
        name,
        &["sh", "-c", "(sleep 1000 &) ; (sleep 1000 &); sleep 1000"],
        |_| {},
    );
    let c = common::start_detached(name, &b);
    // Under emulation (the guest) the orphans take a while to appear.
    let t = Instant::now();
    while c.pids().unwrap().len() < 3 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let n = c.pids().unwrap().len();
    c.kill(libc::SIGKILL, true).unwrap();
    let died = exits_within(c.init(), Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(100));
    let left = c.pids().unwrap();
    finish(c, &b);
    assert!(n >= 3, "expected the init and two orphans, saw {n}");
    assert!(died && left.is_empty(), "left: {left:?}");
}

/// The init is born in its v2 cgroup (CLONE_INTO_CGROUP): the helper never
/// joins it, so a createRuntime hook (the helper's child) runs outside it,
/// while the init is inside. With a cgroup namespace the init sees its own
/// cgroup as the root (the namespace is made after the clone).
fn init_is_born_in_its_v2_cgroup() {
    let Some(_) = v2_mount() else {
        println!("SKIP init_is_born_in_its_v2_cgroup: no cgroup v2 hierarchy on this host");
        return;
    };
    for cgroupns in [false, true] {
        let name = if cgroupns {
            "clone-into-ns"
        } else {
            "clone-into"
        };
        let hook_out =
            std::env::temp_dir().join(format!("rshim-{}-{name}-hook", std::process::id()));
        let b = bundle(name, &["sh", "-c", "grep '^0::' /proc/self/cgroup"], |v| {
            v["hooks"] = json!({"createRuntime": [{
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("grep '^0::' /proc/self/cgroup > {}", hook_out.display())]
            }]});
            if cgroupns {
                v["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "cgroup"}));
            }
        });
        let o = common::run(&b, name).unwrap();
        let _ = std::fs::remove_dir_all(&b);
        let hook = std::fs::read_to_string(&hook_out).unwrap_or_default();
        let _ = std::fs::remove_file(&hook_out);
        let cg = common::cgroup_of(PARENT, name);
        if cgroupns {
            assert_eq!(o.stdout.trim(), "0::/", "{o:?}");
        } else {
            assert_eq!(o.stdout.trim(), format!("0::{cg}"), "{o:?}");
        }
        assert!(
            hook.starts_with("0::") && !hook.contains(&cg),
            "the helper joined the container's v2 cgroup: its hook saw {hook:?}"
        );
    }
}

/// `..` in cgroupsPath is resolved under each hierarchy's root (as runc
/// does): nothing is created outside the cgroup mounts.
fn cgroups_path_dotdot_stays_in_the_tree() {
    let name = "dotdot";
    let parent = common::parent_dir(PARENT);
    let b = bundle(name, &["cat", "/proc/self/cgroup"], |v| {
        v["linux"]["cgroupsPath"] = json!(format!("/../../../../../{parent}/x/../{name}"));
    });
    let o = common::run(&b, name).unwrap();
    let _ = std::fs::remove_dir_all(&b);
    let want = common::cgroup_of(PARENT, name);
    assert!(
        o.stdout
            .lines()
            .all(|l| l.ends_with(&want) || l.ends_with("::/")),
        "{}",
        o.stdout
    );
    for outside in ["/", "/sys", "/sys/fs", "/sys/fs/cgroup/.."] {
        let p = Path::new(outside).join(&parent);
        assert!(
            !p.exists(),
            "created outside the cgroup tree: {}",
            p.display()
        );
    }
    assert_eq!(common::cgroup_left(PARENT, name), None);
}

/// A memory-limited init killed by the OOM killer: the watch counts exactly
/// one kill, readable by the time the init is reaped.
fn oom_kill_is_counted_once() {
    let name = "oom";
    let b = bundle(name, &["tail", "/dev/zero"], |v| {
        v["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
    });
    let mut c = runtime_core::Container::create(runtime_core::CreateOpts {
        exec_fifo: None,
        id: name,
        bundle: &b,
        stdio: Stdio::default(),
    })
    .unwrap();
    let watch = c.oom_watch().unwrap();
    c.start().unwrap();
    let st = c.init().reap_blocking().unwrap();
    let kills = watch.as_ref().map(|w| w.take().unwrap());
    let again = watch.as_ref().map(|w| w.take().unwrap());
    c.delete().unwrap();
    let _ = std::fs::remove_dir_all(&b);
    assert_eq!(st.0, 137, "killed by SIGKILL");
    assert_eq!(
        (kills, again),
        (Some(1), Some(0)),
        "one OOM kill, taken once"
    );
}

/// v2 writes of an update, and the figures read back (u64::MAX for `max`).
fn cgroup_v2_update_and_stats() {
    if skip_unless_v2_only("cgroup_v2_update_and_stats", &["cpu", "memory", "pids"]) {
        return;
    }
    let name = "v2update";
    let b = bundle(name, &["sleep", "1000"], |v| {
        v["linux"]["resources"]
            .as_object_mut()
            .map(|r| r.remove("memory"));
    });
    let c = common::start_detached(name, &b);
    let before = c.stats();
    let res: oci_spec::runtime::LinuxResources = serde_json::from_value(json!({
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
        "memory": {"limit": 64 << 20, "swap": 128 << 20},
        "pids": {"limit": 50},
        "unified": {"memory.high": "62914560"}
    }))
    .unwrap();
    let updated = c.update(&res);
    let d = v2_dir(name);
    let read = |f: &str| {
        std::fs::read_to_string(d.join(f))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let files: Vec<(String, String)> = [
        "cpu.weight",
        "cpu.max",
        "memory.max",
        "memory.swap.max",
        "memory.high",
        "pids.max",
    ]
    .iter()
    .map(|f| (f.to_string(), read(f)))
    .collect();
    let after = c.stats();
    finish(c, &b);
    updated.unwrap();
    assert!(before.v2);
    assert_eq!(
        (before.pids_limit, before.memory_limit),
        (u64::MAX, u64::MAX)
    );
    let want = [
        ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"),
        ("memory.max", "67108864"),
        ("memory.swap.max", "67108864"),
        ("memory.high", "62914560"),
        ("pids.max", "50"),
    ];
    for ((f, got), (_, w)) in files.iter().zip(want) {
        assert_eq!(got, w, "{f}");
    }
    assert_eq!(
        (after.pids_limit, after.memory_limit, after.swap_limit),
        (50, 64 << 20, 64 << 20)
    );
    assert!(after.pids_current >= 1 && after.memory_usage > 0);
}

fn main() {
    runtime_core::init::main_if_helper();
    let tests: &[(&str, fn())] = &[
        (
            "device_baseline_without_rules_and_live_update",
            device_baseline_without_rules_and_live_update,
        ),
        (
            "sigkill_of_a_paused_container",
            sigkill_of_a_paused_container,
        ),
        (
            "kill_all_reaches_every_process",
            kill_all_reaches_every_process,
        ),
        (
            "init_is_born_in_its_v2_cgroup",
            init_is_born_in_its_v2_cgroup,
        ),
        (
            "cgroups_path_dotdot_stays_in_the_tree",
            cgroups_path_dotdot_stays_in_the_tree,
        ),
        ("oom_kill_is_counted_once", oom_kill_is_counted_once),
        ("cgroup_v2_update_and_stats", cgroup_v2_update_and_stats),
    ];
    common::main(PARENT, tests);
}
