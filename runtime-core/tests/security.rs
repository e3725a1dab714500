//! Hostile rootfs and bundles, leaked fds, dumpability: what a container must
//! not be able to do to the host, tried for real. Needs root.
//!
//! (More in tests/containers.rs: a mount through an in-image absolute symlink,
//! cwd outside the root, the sealed init binary.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bundle, cgroup_left, run};
use serde_json::{json, Value};

const PARENT: &str = "rshim-core-security";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rshim-sec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A bundle whose rootfs is a private copy that `hostile` may change, and
/// whose config `edit` may change. Returns (bundle, rootfs).
fn hostile_bundle(
    name: &str,
    args: &[&str],
    hostile: impl FnOnce(&Path),
    edit: impl FnOnce(&mut Value),
) -> (PathBuf, PathBuf) {
    let b = bundle(PARENT, name, args, |_| {});
    let cfg = b.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    let rootfs = b.join("rootfs");
    let st = Command::new("cp")
        .args(["-a", v["root"]["path"].as_str().unwrap()])
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(st.success());
    hostile(&rootfs);
    v["root"]["path"] = json!(rootfs);
    edit(&mut v);
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    (b, rootfs)
}

/// Drops the bundle's `/dev` tmpfs, so the image's own /dev is used (as with
/// a bundle that does not mount one).
fn image_dev(v: &mut Value) {
    v["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev");
}

fn host_mounts_mention(p: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(p.to_str().unwrap())
}

fn dev_symlink_out_of_the_rootfs_is_not_followed() {
    // /dev itself is an absolute symlink to a host directory. It resolves to
    // that path inside the rootfs: devices are made there when it exists, and
    // create is refused (dangling symlink) when it does not. Never on the host.
    let host = tmp("devdir");
    for inside_exists in [true, false] {
        let name = format!("devlink-{inside_exists}");
        let (b, _) = hostile_bundle(
            &name,
            &["sh", "-c", "stat -c '%F %t:%T' /dev/null"],
            |r| {
                std::fs::remove_dir_all(r.join("dev")).unwrap();
                std::os::unix::fs::symlink(&host, r.join("dev")).unwrap();
                if inside_exists {
                    std::fs::create_dir_all(r.join(host.strip_prefix("/").unwrap())).unwrap();
                }
            },
            image_dev,
        );
        let o = run(&b, &name);
        let left: Vec<_> = std::fs::read_dir(&host)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        let mounted = host_mounts_mention(&host);
        let _ = std::fs::remove_dir_all(&b);
        assert!(left.is_empty(), "made on the host: {left:?}");
        assert!(!mounted, "mount on the host");
        if inside_exists {
            let o = o.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                o.stdout.trim(),
                "character special file 1:3",
                "{}",
                o.stderr
            );
        } else {
            let e = o.map(|_| ()).unwrap_err().to_string();
            assert!(e.contains("/dev in rootfs is a dangling symlink"), "{e}");
            assert_eq!(cgroup_left(PARENT, &name), None);
        }
    }
    let _ = std::fs::remove_dir_all(&host);
}

fn dev_null_swapped_for_a_procfs_symlink() {
    // runc CVE-2025-31133: /dev/null a symlink to a writable procfs file, then
    // bound over a masked path. Ours is replaced by a real 1:3 node, and the
    // masks use only a verified 1:3 node.
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    for userns in [false, true] {
        let name = format!("devnull-userns{userns}");
        let (b, _) = hostile_bundle(
            &name,
            &[
                "sh",
                "-c",
                "stat -c '%F %t:%T' /dev/null /proc/keys; echo '|/tmp/pwn' > /proc/keys; echo rc=$?",
            ],
            |r| {
                std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", r.join("dev/null")).unwrap();
                if userns {
                    // The image belongs to the container's mapped root, as a
                    // user-namespaced image would (it makes /dev/pts there).
                    let st = Command::new("chown").args(["-R", "-h", "310000:310000"]).arg(r).status().unwrap();
                    assert!(st.success());
                }
            },
            |v| {
                image_dev(v);
                if userns {
                    v["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
                    v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 310000, "size": 65536}]);
                    v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 310000, "size": 65536}]);
                }
            },
        );
        let o = run(&b, &name);
        let _ = std::fs::remove_dir_all(&b);
        assert_eq!(
            std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
            before,
            "host core_pattern changed (userns={userns})"
        );
        let o = o.unwrap_or_else(|e| panic!("userns={userns}: {e}"));
        assert_eq!(
            o.stdout, "character special file 1:3\ncharacter special file 1:3\nrc=0\n",
            "userns={userns}: {}",
            o.stderr
        );
    }
}

fn dev_null_that_cannot_be_replaced_is_refused() {
    // A non-empty directory at /dev/null: no node can be made, and nothing may
    // use it as /dev/null. One clear error; nothing left behind.
    let (b, _) = hostile_bundle(
        "devnulldir",
        &["true"],
        |r| {
            std::fs::create_dir_all(r.join("dev/null/x")).unwrap();
        },
        image_dev,
    );
    let e = run(&b, "devnulldir").map(|_| ()).unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(e.contains("/dev/null"), "{e}");
    assert_eq!(cgroup_left(PARENT, "devnulldir"), None);
}

fn proc_that_is_not_procfs_is_refused() {
    // No proc mount and a fake /proc in the image: masked paths and sysctls
    // would be files of the image's choosing. Both refused by name.
    let fake = |r: &Path| {
        std::fs::create_dir_all(r.join("proc/sys/net/ipv4")).unwrap();
        std::fs::write(r.join("proc/sys/net/ipv4/ip_forward"), "0").unwrap();
        std::fs::write(r.join("proc/kcore"), "fake").unwrap();
    };
    let no_proc = |v: &mut Value| {
        v["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/proc");
        v["linux"]["readonlyPaths"] = json!([]);
    };
    let (b, _) = hostile_bundle("fakeproc", &["true"], fake, |v| {
        no_proc(v);
        v["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    });
    let e = run(&b, "fakeproc").map(|_| ()).unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(
        e.contains("linux.maskedPaths[/proc/kcore]") && e.contains("not a procfs"),
        "{e}"
    );
    let (b, _) = hostile_bundle("fakeprocsysctl", &["true"], fake, |v| {
        no_proc(v);
        v["linux"]["maskedPaths"] = json!([]);
        v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    let e = run(&b, "fakeprocsysctl")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(e.contains("linux.sysctl") && e.contains("proc"), "{e}");
    assert_eq!(cgroup_left(PARENT, "fakeprocsysctl"), None);
}

fn sysctl_write_through_a_bind_mount_is_refused() {
    // runc CVE-2025-52881 class: a mount over a /proc/sys file redirects the
    // sysctl write. Ours does not cross mounts: refused, the file untouched.
    let dir = tmp("sysctlbind");
    let victim = dir.join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let b = bundle(PARENT, "sysctlbind", &["true"], |v| {
        v["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/proc/sys/kernel/shmmni", "type": "bind",
            "source": victim, "options": ["bind"]}));
        v["linux"]["sysctl"] = json!({"kernel.shmmni": "4242"});
    });
    let e = run(&b, "sysctlbind").map(|_| ()).unwrap_err().to_string();
    let content = std::fs::read_to_string(&victim).unwrap();
    let _ = std::fs::remove_dir_all(&b);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        content, "untouched",
        "the write went through the bind mount"
    );
    assert!(
        e.contains("linux.sysctl[kernel.shmmni]") && e.contains("mount covers it"),
        "{e}"
    );
}

fn mount_targets_through_symlinks_stay_inside() {
    // Relative symlinks climbing out, an intermediate symlink, and a symlink
    // as the final component of a file bind target: all resolve inside.
    let host = tmp("targets");
    let host_file = host.join("file");
    std::fs::write(&host_file, "host").unwrap();
    let src = host.join("src");
    std::fs::write(&src, "from the bundle\n").unwrap();
    let up = "../../../../../../../../../..";
    let (b, rootfs) = hostile_bundle(
        "targets",
        &[
            "sh",
            "-c",
            "cat /file-link; ls /climb/dir >/dev/null && echo ok",
        ],
        |r| {
            let rel = format!("{up}{}", host.display());
            std::os::unix::fs::symlink(&rel, r.join("climb")).unwrap();
            std::os::unix::fs::symlink(format!("{up}{}", host_file.display()), r.join("file-link"))
                .unwrap();
            // The same paths inside the rootfs, where the links really lead.
            let inside = r.join(host.strip_prefix("/").unwrap());
            std::fs::create_dir_all(&inside).unwrap();
            std::fs::write(inside.join("file"), "inside").unwrap();
        },
        |v| {
            let m = v["mounts"].as_array_mut().unwrap();
            m.push(json!({"destination": "/climb/dir", "type": "tmpfs", "source": "tmpfs"}));
            m.push(json!({"destination": "/file-link", "type": "bind", "source": src, "options": ["bind", "ro"]}));
        },
    );
    let o = run(&b, "targets");
    let host_entries: Vec<_> = std::fs::read_dir(&host)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let host_content = std::fs::read_to_string(&host_file).unwrap();
    let mounted = host_mounts_mention(&host);
    let inside_made = rootfs
        .join(host.strip_prefix("/").unwrap())
        .join("dir")
        .is_dir();
    let _ = std::fs::remove_dir_all(&b);
    let _ = std::fs::remove_dir_all(&host);
    assert!(!mounted, "a mount landed on the host");
    assert_eq!(host_content, "host", "host file changed");
    assert_eq!(host_entries.len(), 2, "made on the host: {host_entries:?}");
    let o = o.unwrap_or_else(|e| panic!("{e}"));
    assert!(inside_made, "the target was not made inside the rootfs");
    assert_eq!(o.stdout, "from the bundle\nok\n", "{}", o.stderr);
}

fn exec_processes_see_no_host_fds() {
    // Neither the exec'd process nor the init (through /proc/1/fd) holds any
    // fd but stdio: no socket, directory or file of the runtime's.
    let name = "execfds";
    let b = bundle(PARENT, name, &["sleep", "1000"], |_| {});
    let c = common::start_detached(name, &b);
    let p: oci_spec::runtime::Process = serde_json::from_value(json!({
        "args": ["sh", "-c", "for p in /proc/self/fd/* /proc/1/fd/*; do echo \"$p $(readlink $p)\"; done"],
        "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}
    }))
    .unwrap();
    let (r, w) = nix::unistd::pipe().unwrap();
    let (pidfd, _) = c
        .exec(
            &p,
            runtime_core::Stdio {
                stdin: None,
                stdout: Some(w),
                stderr: None,
            },
        )
        .unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
    pidfd.reap_blocking().unwrap();
    c.kill(libc::SIGKILL, false).unwrap();
    c.init().reap_blocking().unwrap();
    c.delete().unwrap();
    let _ = std::fs::remove_dir_all(&b);
    let fds: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once(' ')).collect();
    for (path, target) in &fds {
        let n: u32 = path.rsplit('/').next().unwrap().parse().unwrap();
        // fd 255 and the glob's directory are the shell's own, opened in the container.
        let own = path.starts_with("/proc/self")
            && (n == 255 || target.is_empty() || target.starts_with("/proc/"));
        assert!(n <= 2 || own, "leaked fd {path} -> {target}\n{out}");
        assert!(
            !target.starts_with("/work") && !target.starts_with("socket:"),
            "{path} -> {target}"
        );
    }
    assert!(
        fds.iter()
            .filter(|(p, _)| p.starts_with("/proc/1/"))
            .count()
            == 3,
        "{out}"
    );
}

/// The container's capabilities in the default test bundle.
const CONTAINER_CAPS: &str = "-all,+audit_write,+kill,+net_bind_service";

/// Probe mode of this binary: as uid 0 with exactly the container's
/// capabilities (a superset of the target's, so only dumpability decides),
/// read the environ of each pid; prints "PID readable|denied".
fn probe_ptrace(pids: &[String]) {
    use caps::{CapSet, Capability};
    let keep: caps::CapsHashSet = [
        Capability::CAP_AUDIT_WRITE,
        Capability::CAP_KILL,
        Capability::CAP_NET_BIND_SERVICE,
    ]
    .into_iter()
    .collect();
    caps::set(None, CapSet::Effective, &keep).unwrap();
    caps::set(None, CapSet::Permitted, &keep).unwrap();
    for pid in pids {
        let r = std::fs::read(format!("/proc/{pid}/environ"));
        println!("{pid} {}", if r.is_ok() { "readable" } else { "denied" });
    }
}

fn created_init_is_not_dumpable() {
    // A created container's init still runs our image (with the container's
    // identity and capabilities) until start. A process of the same uid and
    // capabilities must not be able to read it; a control process of that
    // same identity, dumpable, is readable by the same probe.
    let name = "dumpable";
    let b = bundle(PARENT, name, &["true"], |_| {});
    let c = runtime_core::Container::create(runtime_core::CreateOpts {
        exec_fifo: None,
        id: name,
        bundle: &b,
        stdio: runtime_core::Stdio::default(),
    })
    .unwrap();
    let mut control = Command::new("setpriv")
        .args([
            "--bounding-set",
            CONTAINER_CAPS,
            "--inh-caps",
            "-all",
            "sleep",
            "100",
        ])
        .spawn()
        .unwrap();
    // Wait until the control runs sleep (not setpriv) so its caps are final.
    let exe = format!("/proc/{}/exe", control.id());
    while std::fs::read_link(&exe).map_or(true, |p| !p.ends_with("sleep")) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let init = c.pid();
    let probe = Command::new(std::env::current_exe().unwrap())
        .args([
            "__probe_ptrace__",
            &init.to_string(),
            &control.id().to_string(),
        ])
        .output()
        .unwrap();
    let _ = control.kill();
    let _ = control.wait();
    c.kill(libc::SIGKILL, false).unwrap();
    c.init().reap_blocking().unwrap();
    c.delete().unwrap();
    let _ = std::fs::remove_dir_all(&b);
    let report = String::from_utf8_lossy(&probe.stdout);
    assert_eq!(
        report,
        format!("{init} denied\n{} readable\n", control.id()),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

fn container_has_its_own_session_keyring() {
    // The createContainer hook is a child of the init, before execve: it shows
    // the init's session keyring, which must not be ours (the shim's).
    let dir = tmp("keyring");
    let out = dir.join("keyring");
    let exe = std::env::current_exe().unwrap();
    let b = bundle(PARENT, "keyring", &["true"], |v| {
        v["hooks"] =
            json!({"createContainer": [{"path": exe, "args": ["probe", "__keyring__", out]}]});
    });
    let o = run(&b, "keyring");
    let theirs = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&b);
    let _ = std::fs::remove_dir_all(&dir);
    o.unwrap_or_else(|e| panic!("{e}"));
    let ours = runtime_core::init::keyring::describe_session().unwrap_or_default();
    assert_ne!(theirs, ours, "the container shares our session keyring");
    assert!(
        theirs.starts_with("keyring;0;0;3f0b0000;_ses.keyring"),
        "{theirs:?}"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__keyring__") {
        let d = runtime_core::init::keyring::describe_session().unwrap_or_default();
        std::fs::write(&args[2], d).unwrap();
        return;
    }
    if args.get(1).map(String::as_str) == Some("__probe_ptrace__") {
        probe_ptrace(&args[2..]);
        return;
    }
    runtime_core::init::main_if_helper();
    // The bundles are root's (and only a root run uses them: see common::main).
    if common::is_root() {
        let st = Command::new(common::repo().join("test-bundles/gen"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
    common::main(
        PARENT,
        &[
            (
                "dev_symlink_out_of_the_rootfs_is_not_followed",
                dev_symlink_out_of_the_rootfs_is_not_followed,
            ),
            (
                "dev_null_swapped_for_a_procfs_symlink",
                dev_null_swapped_for_a_procfs_symlink,
            ),
            (
                "dev_null_that_cannot_be_replaced_is_refused",
                dev_null_that_cannot_be_replaced_is_refused,
            ),
            (
                "proc_that_is_not_procfs_is_refused",
                proc_that_is_not_procfs_is_refused,
            ),
            (
                "sysctl_write_through_a_bind_mount_is_refused",
                sysctl_write_through_a_bind_mount_is_refused,
            ),
            (
                "mount_targets_through_symlinks_stay_inside",
                mount_targets_through_symlinks_stay_inside,
            ),
            (
                "exec_processes_see_no_host_fds",
                exec_processes_see_no_host_fds,
            ),
            ("created_init_is_not_dumpable", created_init_is_not_dumpable),
            (
                "container_has_its_own_session_keyring",
                container_has_its_own_session_keyring,
            ),
        ],
    )
}
