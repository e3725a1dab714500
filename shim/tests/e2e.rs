//! End-to-end: a real containerd (1.6 or 2.1, whichever `scripts/test` started)
//! running containers through our shim, driven with `ctr`. Needs root.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn exit_code_and_stdio_from_image() {
    let o = run_rm(
        RUNTIME,
        "stdio-img",
        &["sh", "-c", "echo hi; echo err >&2; exit 3"],
    );
    assert_eq!(text(&o.stdout), "hi\n", "stderr: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("err\n"), "{}", text(&o.stderr));
    assert_eq!(o.status.code(), Some(3));
    assert_no_leftovers("stdio-img");
}

#[test]
fn exit_code_and_stdio_from_rootfs_dir() {
    let r = rootfs();
    let o = run(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--rootfs",
        r.to_str().unwrap(),
        "stdio-dir",
        "sh",
        "-c",
        "echo hi; echo err >&2; exit 3",
    ]);
    assert_eq!(text(&o.stdout), "hi\n", "stderr: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("err\n"));
    assert_eq!(o.status.code(), Some(3));
    assert_no_leftovers("stdio-dir");
}

#[test]
fn sigkilled_init_reports_137() {
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
fn inside_the_container() {
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap();
    let script = "echo pid=$$; readlink /proc/self/ns/uts; hostname inner-name && hostname; \
                  ls /proc/self/fd | tr '\\n' ' '; echo; cat /proc/self/mountinfo";
    // sethostname needs CAP_SYS_ADMIN, which containerd's default spec does not grant.
    let o = run(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--cap-add",
        "CAP_SYS_ADMIN",
        IMAGE,
        "inside",
        "sh",
        "-c",
        script,
    ]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_ne!(
        lines[1],
        host_uts.to_str().unwrap(),
        "container shares the host's uts namespace"
    );
    assert_eq!(lines[2], "inner-name");
    assert_ne!(
        nix_hostname(),
        "inner-name",
        "hostname change leaked to the host"
    );
    // `ls` holds one fd of its own (3) for the directory it lists.
    assert_eq!(
        lines[3].trim(),
        "0 1 2 3",
        "fds open in the container: {}",
        lines[3]
    );
    let targets: Vec<&str> = lines[4..]
        .iter()
        .filter_map(|l| l.split(' ').nth(4))
        .collect();
    assert_eq!(targets[0], "/");
    for t in &targets {
        let ok = ["/", "/proc", "/dev", "/sys", "/run", "/etc"]
            .iter()
            .any(|p| t == p || t.starts_with(&format!("{p}/")));
        assert!(ok, "unexpected mount {t} in container:\n{out}");
    }
    assert_no_leftovers("inside");
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn detached_lifecycle_leaves_nothing() {
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
fn stdin_round_trips() {
    let mut child = ctr(&["run", "--rm", "--runtime", RUNTIME, IMAGE, "stdin", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // ctr wires CloseIO only once the task exists: hold stdin open until then.
    wait_for("task running", Duration::from_secs(20), || {
        task_status("stdin").as_deref() == Some("RUNNING")
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"data\nmore data\n").unwrap();
    drop(stdin);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(out, "data\nmore data\n");
    assert_no_leftovers("stdin");
}

/// 10 MB of output through the stdout FIFO, read here as containerd's clients
/// read it. Driven through the shim's Task API (start, Create, Start, Wait,
/// Delete, Shutdown) rather than `ctr run`: under load, containerd 2.1's ctr
/// drops the tail of a large output with the Go runc shim too (8 of 40 runs
/// measured here), while the shim had written every byte.
#[test]
fn ten_megabytes_arrive_intact() {
    use containerd_shim_protos::api::{
        CreateTaskRequest, DeleteRequest, ShutdownRequest, StartRequest, WaitRequest,
    };
    use containerd_shim_protos::shim_async::TaskClient;

    let id = "bigout";
    let dir = std::env::temp_dir().join(format!("rshim-e2e-{}-{id}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let script =
        "head -c 10000000 /dev/urandom > /tmp/blob; sha256sum /tmp/blob >&2; cat /tmp/blob";
    let st = std::process::Command::new(repo().join("test-bundles/gen"))
        .arg("bundle")
        .arg(&dir)
        .args(["--", "sh", "-c", script])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // The FIFOs a client makes, with their read ends open before Create (as
    // containerd's clients do); the log FIFO is held open so the shim's log
    // never blocks.
    let fifo = |name: &str| {
        let p = dir.join(name);
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a live NUL-terminated CString; the mode is an integer.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        p
    };
    let (out_path, err_path, log_path) = (fifo("stdout"), fifo("stderr"), fifo("log"));
    let reader = |p: &std::path::Path| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
            .unwrap()
    };
    let _log = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log_path)
        .unwrap();
    let (out, err) = (reader(&out_path), reader(&err_path));
    let e = env();
    let ttrpc_address = std::env::var("CONTAINERD_TTRPC_ADDRESS")
        .unwrap_or_else(|_| format!("{}.ttrpc", e.address));
    let start = std::process::Command::new(repo().join("target/release/containerd-shim-rust-v1"))
        .args([
            "-namespace",
            ns(),
            "-id",
            id,
            "-address",
            &e.address,
            "start",
        ])
        .current_dir(&dir)
        .env("TTRPC_ADDRESS", &ttrpc_address)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(start.status.success(), "{}", text(&start.stderr));
    let address = text(&start.stdout).trim().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        TaskClient::new(ttrpc::r#async::Client::connect(&address).await.unwrap())
    });
    let create = CreateTaskRequest {
        id: id.into(),
        bundle: dir.to_str().unwrap().into(),
        stdout: out_path.to_str().unwrap().into(),
        stderr: err_path.to_str().unwrap().into(),
        ..Default::default()
    };
    rt.block_on(client.create(deadline(), &create)).unwrap();
    // The shim holds the write ends now: read (blocking) until it closes them,
    // which it does after the last byte is copied.
    let read_all = |mut f: std::fs::File| {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETFL takes only integers, on the FIFO fd that `f` owns.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, 0) };
        std::thread::spawn(move || {
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            v
        })
    };
    let (out_t, err_t) = (read_all(out), read_all(err));
    let req = |id: &str| StartRequest {
        id: id.into(),
        ..Default::default()
    };
    rt.block_on(client.start(deadline(), &req(id))).unwrap();
    let w = rt
        .block_on(client.wait(
            deadline(),
            &WaitRequest {
                id: id.into(),
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(w.exit_status, 0);
    let (stdout, stderr) = (out_t.join().unwrap(), err_t.join().unwrap());
    rt.block_on(client.delete(
        deadline(),
        &DeleteRequest {
            id: id.into(),
            ..Default::default()
        },
    ))
    .unwrap();
    let _ = rt.block_on(client.shutdown(
        deadline(),
        &ShutdownRequest {
            id: id.into(),
            ..Default::default()
        },
    ));
    wait_for("shim gone", Duration::from_secs(20), || {
        shim_pids_for(id).is_empty()
    });
    let cgroup = format!(
        "/sys/fs/cgroup/memory/rshim-test/{}",
        dir.file_name().unwrap().to_string_lossy()
    );
    assert!(!std::path::Path::new(&cgroup).exists(), "{cgroup} left");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(stdout.len(), 10_000_000, "stderr: {}", text(&stderr));
    let mut sha = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sha.stdin.take().unwrap().write_all(&stdout).unwrap();
    let outside = text(&sha.wait_with_output().unwrap().stdout);
    assert_eq!(
        outside.split_whitespace().next(),
        text(&stderr).split_whitespace().next()
    );
}

#[test]
fn missing_rootfs_is_one_clear_error() {
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
    let o = run_rm(RUNTIME, "nocmd", &["/bin/no-such-command"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("/bin/no-such-command"), "{err}");
    assert_no_leftovers("nocmd");
}

#[test]
fn twenty_concurrent_containers() {
    let children: Vec<_> = (0..20)
        .map(|i| {
            let id = format!("conc{i}");
            let c = ctr(&[
                "run",
                "--rm",
                "--runtime",
                RUNTIME,
                IMAGE,
                &id,
                "sh",
                "-c",
                "echo $$",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
            (id, c)
        })
        .collect();
    for (id, c) in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{id}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "1\n", "{id}");
        assert_no_leftovers(&id);
    }
}

#[test]
fn runc_shim_reference_agrees_on_exit_code() {
    // The same command through the Go runc shim of this containerd: same answer.
    let o = run_rm(RUNC, "ref-runc", &["sh", "-c", "echo hi; exit 3"]);
    assert_eq!(
        (text(&o.stdout).as_str(), o.status.code()),
        ("hi\n", Some(3)),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn events_in_containerds_order() {
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
fn killed_shim_is_cleaned_up_by_delete() {
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

/// Starts a detached container running a counter loop and waits until it runs.
fn detached_counter(id: &str) {
    let script = "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.02; done";
    run_detached(id, &[], &["sh", "-c", script]);
}

#[test]
fn exec_joins_the_container_and_propagates_exit_codes() {
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
fn oom_is_reported_before_the_exit_it_caused() {
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

/// Shim processes (any container id) serving our private containerd.
fn all_shims() -> usize {
    ["podc1", "podc2"]
        .iter()
        .map(|id| shim_pids_for(id).len())
        .sum()
}

#[test]
fn one_shim_serves_a_pod() {
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

/// Runs a ctr command line inside a pty of `script`'s (ctr -t needs a real
/// terminal), after setting that terminal's size.
fn in_terminal(rows: u16, cols: u16, args: &[&str]) -> std::process::Output {
    let e = env();
    let mut line = format!(
        "stty rows {rows} cols {cols}; exec {} -a {} -n {}",
        e.ctr,
        e.address,
        ns()
    );
    for a in args {
        line.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
    }
    std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script(1)")
}

#[test]
fn run_with_a_terminal_and_its_size() {
    let o = in_terminal(
        40,
        100,
        &[
            "run",
            "-t",
            "--rm",
            "--runtime",
            RUNTIME,
            IMAGE,
            "tty",
            "sh",
            "-c",
            // The size comes in the spec (consoleSize) or, racing the start,
            // through ResizePty: wait up to 5 s for it.
            "tty; i=0; while [ \"$(stty size 2>/dev/null)\" != '40 100' ] && [ $i -lt 50 ]; \
             do sleep 0.1; i=$((i+1)); done; stty size; readlink /proc/self/fd/2; exit 4",
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{out}{}", text(&o.stderr));
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(
        out.contains("40 100"),
        "resize did not reach the process: {out}"
    );
    assert_no_leftovers("tty");
}

#[test]
fn exec_with_a_terminal_and_its_size() {
    let id = "exectty";
    detached_counter(id);
    let o = in_terminal(
        30,
        90,
        &[
            "task",
            "exec",
            "-t",
            "--exec-id",
            "t1",
            id,
            "sh",
            "-c",
            // ctr sends the size (ResizePty) only after the exec started, as it
            // does with the runc shim: wait up to 5 s for it to arrive.
            "tty; i=0; while [ \"$(stty size 2>/dev/null)\" != '30 90' ] && [ $i -lt 50 ]; \
             do sleep 0.1; i=$((i+1)); done; stty size; exit 3",
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{out}{}", text(&o.stderr));
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(
        out.contains("30 90"),
        "resize did not reach the exec: {out}"
    );
    kill_and_remove(id);
}

#[test]
fn user_namespace_container() {
    use std::os::unix::fs::MetadataExt;
    let id = "userns";
    run_detached(
        id,
        &["--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536"],
        &["sleep", "1000"],
    );
    let pid = text(&run(&["task", "ls"]).stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(1).map(String::from))
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == "200000"),
        "init runs as {uid} on the host"
    );
    let o = run(&[
        "task",
        "exec",
        "--exec-id",
        "whoami",
        id,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let out = text(&o.stdout);
    assert!(
        out.starts_with("0\n") && out.contains("200000"),
        "{out}{}",
        text(&o.stderr)
    );
    // The shim's work dir lets the remapped root group in, and no one else.
    let wd = env()
        .state
        .join("io.containerd.runtime.v2.task")
        .join(ns())
        .join(id)
        .join("rshim");
    let m = std::fs::metadata(&wd).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.gid()),
        (0o710, 200000),
        "{}",
        wd.display()
    );
    kill_and_remove(id);
}

#[test]
fn containerd_default_seccomp_profile() {
    // ctr --seccomp: containerd's default profile (Docker's), applied by runtime-core.
    let o = run(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--seccomp",
        IMAGE,
        "seccomp",
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; echo ok",
    ]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    assert!(
        out.contains("Seccomp:\t2") && out.ends_with("ok\n"),
        "{out}"
    );
    assert_no_leftovers("seccomp");
}

#[test]
fn seccomp_profile_without_close_range() {
    // A default-deny profile written for Linux 5.8 (no close_range), for the
    // init and for an exec (which gets the container's profile).
    let profile = repo().join("test-bundles/seccomp-linux-5.8.json");
    let profile = profile.to_str().unwrap();
    let id = "seccomp58";
    let opts = ["--seccomp", "--seccomp-profile", profile];
    run_detached(
        id,
        &opts,
        &["sh", "-c", "grep Seccomp: /proc/self/status; sleep 1000"],
    );
    let o = run(&[
        "task",
        "exec",
        "--exec-id",
        "x",
        id,
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status",
    ]);
    let out = text(&o.stdout);
    kill_and_remove(id);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    assert_eq!(out, "Seccomp:\t2\n");
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
