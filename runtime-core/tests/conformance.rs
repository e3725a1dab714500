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

/// A host directory of this test, removed (with what is mounted in it) by `drop`.
struct HostDir(PathBuf, Vec<PathBuf>);

impl HostDir {
    fn new(name: &str) -> HostDir {
        let d = std::env::temp_dir().join(format!("rshim-conf-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        HostDir(d, Vec::new())
    }

    /// A tmpfs mounted at `sub` in the host's namespace (unmounted on drop).
    fn submount(&mut self, sub: &str) -> PathBuf {
        let p = self.0.join(sub);
        std::fs::create_dir_all(&p).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "rshim-conf"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
        self.1.push(p.clone());
        p
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        for p in self.1.iter().rev() {
            let _ = std::process::Command::new("umount").arg(p).status();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Item 6: `rro` makes a bind and every mount below it read-only
/// (mount_setattr(AT_RECURSIVE)); plain `ro` (and no option) leave the
/// submount writable, as mount(2) only changes the top mount.
fn recursive_read_only() {
    let mut host = HostDir::new("rro");
    let vol = host.0.join("vol");
    host.submount("vol/sub");
    let src = vol.to_str().unwrap().to_string();
    let script = "for d in /rro /rro/sub /ro /ro/sub /rw/sub; do \
                  touch $d/x 2>/dev/null && echo \"$d rw\" || echo \"$d ro\"; done; \
                  grep -c ' /rro/sub ' /proc/self/mountinfo";
    let b = bundle(PARENT, "rro", &["sh", "-c", script], |v| {
        let m = v["mounts"].as_array_mut().unwrap();
        for (dest, opts) in [
            ("/rro", json!(["rbind", "rro"])),
            ("/ro", json!(["rbind", "ro"])),
            ("/rw", json!(["rbind", "rnosuid", "rnodev"])),
        ] {
            m.push(json!({"destination": dest, "type": "bind", "source": src, "options": opts}));
        }
    });
    let o = run(&b, "rro");
    let _ = std::fs::remove_dir_all(&b);
    let o = o.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        o.stdout, "/rro ro\n/rro/sub ro\n/ro ro\n/ro/sub rw\n/rw/sub rw\n1\n",
        "{}",
        o.stderr
    );
    // Writes that went through landed on the host's directories.
    assert!(host.0.join("vol/sub/x").exists() && !host.0.join("vol/x").exists());
}

/// Item 7: an ID-mapped bind mount. With the container's own mapping (a
/// user-namespace pod), host-owned files appear with their own ids inside
/// (root's as root), and what container root writes is root's on the host;
/// with another mapping and no user namespace, the ids are shifted by it
/// (the mapping is a user namespace the helper makes for the mount alone).
fn idmapped_bind_mount() {
    let host = HostDir::new("idmap");
    // Mounted on /var, an empty directory of the shared test rootfs: mapped
    // root could not create a new mount point in it (host root's).
    let data = host.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f0"), "").unwrap();
    std::fs::write(data.join("f1000"), "").unwrap();
    std::os::unix::fs::chown(data.join("f1000"), Some(1000), Some(1000)).unwrap();
    let src = data.to_str().unwrap().to_string();
    let script = "stat -c '%n %u:%g' /var/f0 /var/f1000; touch /var/new 2>/dev/null && echo wrote || echo unmapped";
    let map = |host: u32| json!([{"containerID": 0, "hostID": host, "size": 65536}]);
    for (name, userns, host_id, want) in [
        (
            "idmap-pod",
            true,
            200000,
            "/var/f0 0:0\n/var/f1000 1000:1000\nwrote\n",
        ),
        // Host root (kuid 0) is outside this mapping: it cannot create files there.
        (
            "idmap-shift",
            false,
            5000,
            "/var/f0 5000:5000\n/var/f1000 6000:6000\nunmapped\n",
        ),
    ] {
        let b = bundle(PARENT, name, &["sh", "-c", script], |v| {
            if userns {
                add_userns(v);
            }
            v["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/var", "type": "bind", "source": src, "options": ["rbind"],
                "uidMappings": map(host_id), "gidMappings": map(host_id)
            }));
        });
        let o = run(&b, name);
        let _ = std::fs::remove_dir_all(&b);
        let o = o.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(o.stdout, want, "{name}: {}", o.stderr);
        if userns {
            let new = std::fs::metadata(data.join("new")).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!((new.uid(), new.gid()), (0, 0), "{name}: owner on the host");
            std::fs::remove_file(data.join("new")).unwrap();
        }
    }
}

fn idmapped_mount_refusals() {
    for (name, mount, want) in [
        (
            "idmap-nobind",
            json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                   "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                   "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
            "bind mounts only",
        ),
        (
            "idmap-onlyuid",
            json!({"destination": "/t", "type": "bind", "source": "/tmp", "options": ["bind"],
                   "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
            "both uidMappings and gidMappings",
        ),
    ] {
        let b = bundle(PARENT, name, &["true"], |v| {
            v["mounts"].as_array_mut().unwrap().push(mount);
        });
        let e = run(&b, name).map(|o| o.status).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&b);
        assert!(
            e.contains("mounts[/t].uidMappings/gidMappings") && e.contains(want),
            "{e}"
        );
        assert_eq!(
            common::cgroup_left(PARENT, name),
            None,
            "{name}: cgroup left"
        );
    }
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
        ("recursive_read_only", recursive_read_only),
        ("idmapped_bind_mount", idmapped_bind_mount),
        ("idmapped_mount_refusals", idmapped_mount_refusals),
    ];
    common::main(PARENT, tests)
}
