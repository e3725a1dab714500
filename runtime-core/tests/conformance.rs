//! Conformance with what containerd, the kubelet and the OCI runtime spec
//! expect, found from outside (issue 10): seccomp profiles without
//! `close_range`, recursive mount attributes, ID-mapped mounts, FIFO device
//! nodes, deprecated kernel-memory limits. Real containers, asserted from
//! inside. Needs root.

mod common;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

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

fn add_userns(v: &mut Value) {
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
}

/// Item 8: `linux.devices[]` of type `p` are named pipes, without major/minor
/// (runtime-spec), also in a user namespace (where other nodes are bound from
/// the host: there is no host FIFO to bind).
fn fifo_device_nodes() {
    let script = "stat -c '%F %a %u:%g' /dev/pipe; (echo through > /dev/pipe &); read l < /dev/pipe; echo $l";
    for userns in [false, true] {
        let name = format!("fifodev-{userns}");
        let b = bundle(PARENT, &name, &["sh", "-c", script], |v| {
            v["linux"]["devices"] =
                json!([{"path": "/dev/pipe", "type": "p", "fileMode": 0o620, "uid": 0, "gid": 0}]);
            if userns {
                add_userns(v);
            }
        });
        let o = run(&b, &name);
        let _ = std::fs::remove_dir_all(&b);
        let o = o.unwrap_or_else(|e| panic!("userns={userns}: {e}"));
        assert_eq!(
            o.stdout, "fifo 620 0:0\nthrough\n",
            "userns={userns}: {}",
            o.stderr
        );
    }
}

/// Item 8: deprecated kernel memory limits are accepted (and ignored: Linux
/// 5.16+ enforces none), not refused; the container runs.
fn deprecated_kernel_memory_accepted() {
    let b = bundle(PARENT, "kmem", &["sh", "-c", "echo ran"], |v| {
        v["linux"]["resources"]["memory"] = json!({"kernel": 67108864});
    });
    let o = run(&b, "kmem");
    let _ = std::fs::remove_dir_all(&b);
    let o = o.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((o.status, o.stdout.as_str()), (0, "ran\n"), "{}", o.stderr);
}

/// Item 8: no mount namespace in linux.namespaces: the container shares the
/// runtime's (runtime-spec), is chrooted into its rootfs (runc does the same),
/// and no mount of it appears in the host's table; an exec lands in the same root.
fn no_mount_namespace_shares_the_hosts() {
    let name = "sharedmnt";
    let b = bundle(PARENT, name, &["sleep", "1000"], |v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        v["mounts"] = json!([]);
        for f in ["maskedPaths", "readonlyPaths"] {
            v["linux"].as_object_mut().unwrap().remove(f);
        }
    });
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    let rootfs = PathBuf::from(cfg["root"]["path"].as_str().unwrap());
    let mut listing: Vec<String> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    listing.sort();
    assert!(!listing.iter().any(|n| n == "work"), "{listing:?}");
    let c = common::start_detached(name, &b);
    let pid = c.pid();
    let ns = |p: String| std::fs::read_link(p).unwrap();
    let shared = ns(format!("/proc/{pid}/ns/mnt")) == ns("/proc/self/ns/mnt".into());
    let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let (st, out, err) = exec_in(
        &c,
        json!({"args": ["sh", "-c", "ls -a / | grep -vx '\\.\\|\\.\\.' | sort | tr '\\n' ' '; pwd"],
               "cwd": "/", "env": ["PATH=/bin"],
               "user": {"uid": 0, "gid": 0}}),
    );
    kill_and_delete(c);
    let _ = std::fs::remove_dir_all(&b);
    assert!(shared, "the init has a mount namespace of its own");
    assert_eq!(root, rootfs, "the init's root");
    let b_str = b.to_str().unwrap();
    assert!(
        !mountinfo.lines().any(|l| l.contains(b_str)),
        "a mount of the container in the host's table: {mountinfo}"
    );
    // The exec sees the rootfs as / (the host has /work, the rootfs not).
    let want = format!("{} /\n", listing.join(" "));
    assert_eq!((st, out), (0, want), "exec: {err}");
}

fn main() {
    runtime_core::init::main_if_helper();
    let tests: &[(&str, fn())] = &[
        (
            "seccomp_profile_without_close_range",
            seccomp_profile_without_close_range,
        ),
        ("fifo_device_nodes", fifo_device_nodes),
        (
            "deprecated_kernel_memory_accepted",
            deprecated_kernel_memory_accepted,
        ),
        (
            "no_mount_namespace_shares_the_hosts",
            no_mount_namespace_shares_the_hosts,
        ),
    ];
    common::main(PARENT, tests)
}
