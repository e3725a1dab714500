//! Conformance with what containerd, the kubelet and the OCI runtime spec
//! expect, found from outside (issue 10): seccomp profiles without
//! `close_range`, recursive mount attributes, ID-mapped mounts, FIFO device
//! nodes, deprecated kernel-memory limits. Real containers, asserted from
//! inside. Needs root.

mod common;

use std::io::Read;
use std::os::fd::OwnedFd;

use common::{bundle, run};
use runtime_core::Stdio;
use serde_json::{json, Value};

const PARENT: &str = "rshim-core-conformance";

/// A profile written for Linux 5.8: default-deny (EPERM), every syscall of
/// x86_64 up to faccessat2 allowed, so not `close_range` (5.9).
fn pre_close_range_profile() -> Value {
    let p = common::repo().join("test-bundles/seccomp-linux-5.8.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let names = v["syscalls"][0]["names"].as_array().unwrap();
    assert!(names.iter().any(|n| n == "execve") && !names.iter().any(|n| n == "close_range"));
    v
}

fn read_all(fd: OwnedFd) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        std::fs::File::from(fd).read_to_string(&mut s).unwrap();
        s
    })
}

/// Runs `process` as an exec in the running container `c`: (status, stdout, stderr).
fn exec_in(c: &runtime_core::Container, process: Value) -> (u32, String, String) {
    let p: oci_spec::runtime::Process = serde_json::from_value(process).unwrap();
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let (err_r, err_w) = nix::unistd::pipe().unwrap();
    let readers = (read_all(out_r), read_all(err_r));
    let r = c.exec(
        &p,
        Stdio {
            stdin: None,
            stdout: Some(out_w),
            stderr: Some(err_w),
        },
    );
    let status = r.map(|(pidfd, _)| pidfd.reap_blocking());
    let (out, err) = (readers.0.join().unwrap(), readers.1.join().unwrap());
    match status {
        Ok(s) => (s.unwrap().0, out, err),
        Err(e) => (u32::MAX, out, format!("{err}exec: {e}")),
    }
}

fn kill_and_delete(c: runtime_core::Container) {
    let _ = c.kill(libc::SIGKILL, true);
    let _ = c.init().reap_blocking();
    c.delete().unwrap();
}

/// Item 1: the init and an exec under a default-deny profile that does not
/// list close_range, with and without noNewPrivileges (the filter is loaded
/// at different points of set-up in the two cases).
fn seccomp_profile_without_close_range() {
    let script = "grep Seccomp: /proc/self/status; ls /proc/self/fd | tr '\\n' ' '; echo; echo ok";
    for nnp in [false, true] {
        let name = format!("seccomp58-{nnp}");
        let b = bundle(PARENT, &name, &["sh", "-c", script], |v| {
            v["process"]["noNewPrivileges"] = json!(nnp);
            v["linux"]["seccomp"] = pre_close_range_profile();
        });
        let o = run(&b, &name).unwrap_or_else(|e| panic!("init, nnp={nnp}: {e}"));
        assert_eq!(o.status, 0, "init, nnp={nnp}: {}{}", o.stdout, o.stderr);
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines.first().copied(), Some("Seccomp:\t2"), "{}", o.stdout);
        // Only stdio and the fd of ls's own directory read: nothing leaked.
        assert_eq!(
            lines.get(1).copied(),
            Some("0 1 2 3 "),
            "init fds: {}",
            o.stdout
        );

        let b2 = bundle(PARENT, &format!("{name}-x"), &["sleep", "1000"], |v| {
            v["process"]["noNewPrivileges"] = json!(nnp);
            v["linux"]["seccomp"] = pre_close_range_profile();
        });
        let c = common::start_detached(&format!("{name}-x"), &b2);
        let (st, out, err) = exec_in(
            &c,
            json!({"args": ["sh", "-c", script], "cwd": "/", "env": ["PATH=/bin"],
                   "user": {"uid": 0, "gid": 0}, "noNewPrivileges": nnp}),
        );
        kill_and_delete(c);
        let _ = std::fs::remove_dir_all(&b);
        let _ = std::fs::remove_dir_all(&b2);
        assert_eq!(st, 0, "exec, nnp={nnp}: {out}{err}");
        assert!(
            out.starts_with("Seccomp:\t2\n0 1 2 3 \n"),
            "exec fds: {out}"
        );
    }
}

fn main() {
    runtime_core::init::main_if_helper();
    let tests: &[(&str, fn())] = &[(
        "seccomp_profile_without_close_range",
        seccomp_profile_without_close_range,
    )];
    common::main(PARENT, tests)
}
