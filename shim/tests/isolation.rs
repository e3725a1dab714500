//! What a container sees from inside: its own pid and uts namespaces, fds and mount
//! table; a user namespace; seccomp profiles (containerd's default, and one without
//! close_range). Needs root and scripts/test's private containerd.

mod common;

use common::*;

#[test]
fn inside_the_container() {
    needs_root!();
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
fn user_namespace_container() {
    needs_root!();
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
    needs_root!();
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
    needs_root!();
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
