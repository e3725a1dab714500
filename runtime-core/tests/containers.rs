//! Real containers from real bundles, asserted from inside. Needs root.
//!
//! The harness is our own (`harness = false`): the test binary doubles as the
//! container-init helper, which must be dispatched before any thread starts.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use runtime_core::{Container, CreateOpts, Stdio};
use serde_json::{json, Value};

mod common;

use common::{run, Out};

/// This binary's cgroup parent (see [`common::parent_dir`]).
const PARENT: &str = "rshim-core-tests";

/// A fresh bundle from `test-bundles/gen`, with `edit` applied to its config.
fn bundle(name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
    common::bundle(PARENT, name, args, edit)
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().unwrap()
}

fn read_all(fd: OwnedFd) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        std::fs::File::from(fd).read_to_string(&mut s).unwrap();
        s
    })
}

fn sh(name: &str, script: &str) -> Out {
    let b = bundle(name, &["sh", "-c", script], |_| {});
    let out = run(&b, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let _ = std::fs::remove_dir_all(&b);
    out
}

fn exit_code_and_stdio() {
    let o = sh("exit", "echo hi; echo err >&2; exit 3");
    assert_eq!(
        (o.status, o.stdout.as_str(), o.stderr.as_str()),
        (3, "hi\n", "err\n")
    );
}

fn init_is_pid1_with_own_hostname() {
    let o = sh("pid1", "echo $$; hostname");
    assert_eq!(o.stdout, "1\nrshim\n", "stderr: {}", o.stderr);
}

fn only_stdio_fds_open() {
    // `ls` itself holds one fd for the directory it lists (the highest number).
    let o = sh("fds", "ls /proc/self/fd");
    let fds: Vec<&str> = o.stdout.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "stderr: {}", o.stderr);
}

fn mount_table_is_the_containers() {
    let o = sh("mounts", "cat /proc/self/mountinfo");
    let targets: Vec<&str> = o
        .stdout
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .collect();
    assert_eq!(targets.first(), Some(&"/"), "{}", o.stdout);
    for t in &targets {
        assert!(
            !t.starts_with("/work") && !t.starts_with("/tmp/"),
            "host mount {t} visible:\n{}",
            o.stdout
        );
    }
    for want in ["/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"] {
        assert!(targets.contains(&want), "{want} missing:\n{}", o.stdout);
    }
    // masked and read-only paths
    let keys = o
        .stdout
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/proc/keys"))
        .expect("/proc/keys masked");
    assert!(
        keys.split(' ').nth(3) == Some("/null"),
        "/proc/keys not masked with /dev/null: {keys}"
    );
    let sys = o
        .stdout
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/proc/sys"))
        .expect("/proc/sys ro bind");
    assert!(sys.split(' ').nth(5).unwrap().starts_with("ro"), "{sys}");
}

fn default_devices_and_symlinks() {
    let o = sh("dev", "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; readlink /dev/fd; readlink /dev/ptmx");
    for (name, nums) in [
        ("null", "1,   3"),
        ("zero", "1,   5"),
        ("urandom", "1,   9"),
    ] {
        assert!(
            o.stdout
                .lines()
                .any(|l| l.starts_with('c') && l.contains(nums) && l.ends_with(name)),
            "/dev/{name}:\n{}{}",
            o.stdout,
            o.stderr
        );
    }
    assert!(
        o.stdout.contains("/proc/self/fd\npts/ptmx\n"),
        "{}",
        o.stdout
    );
}

fn user_caps_and_nnp() {
    let b = bundle(
        "user",
        &[
            "sh",
            "-c",
            "id -u; id -g; grep -E '^(Cap|NoNewPrivs|Groups)' /proc/self/status",
        ],
        |v| {
            v["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10]});
            v["process"]["noNewPrivileges"] = json!(true);
            let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
            // A non-root process keeps capabilities across execve only through the ambient set.
            v["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps});
        },
    );
    let o = run(&b, "user").unwrap();
    let _ = std::fs::remove_dir_all(&b);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(&lines[..2], ["1000", "1000"], "{}", o.stderr);
    let field = |k: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
    };
    // CAP_KILL is bit 5, CAP_NET_BIND_SERVICE bit 10.
    assert_eq!(
        field("CapEff:").as_deref(),
        Some("0000000000000420"),
        "{}",
        o.stdout
    );
    assert_eq!(field("CapBnd:").as_deref(), Some("0000000000000420"));
    assert_eq!(field("NoNewPrivs:").as_deref(), Some("1"));
    assert_eq!(field("Groups:").as_deref(), Some("10"));
}

fn cgroup_is_made_joined_and_removed() {
    let name = "cgroup";
    let b = bundle(name, &["cat", "/proc/self/cgroup"], |_| {});
    let cg = common::cgroup_of(PARENT, name);
    let o = run(&b, name).unwrap();
    let _ = std::fs::remove_dir_all(&b);
    assert!(
        o.stdout
            .lines()
            .any(|l| l == format!("4:memory:{cg}") || l.ends_with(&format!(":memory:{cg}"))),
        "{}",
        o.stdout
    );
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory{cg}")).exists(),
        "cgroup left behind"
    );
}

fn missing_rootfs_is_one_clear_error() {
    let b = bundle("norootfs", &["true"], |v| {
        v["root"]["path"] = json!("/nonexistent/rootfs")
    });
    let err = run(&b, "norootfs").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(err.contains("root.path /nonexistent/rootfs"), "{err}");
    let cg = format!(
        "/sys/fs/cgroup/memory{}",
        common::cgroup_of(PARENT, "norootfs")
    );
    assert!(!Path::new(&cg).exists(), "cgroup left behind");
}

fn missing_command_fails_create() {
    let b = bundle("nocmd", &["/bin/does-not-exist"], |_| {});
    let err = run(&b, "nocmd").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(err.contains("/bin/does-not-exist"), "{err}");
    let cg = format!(
        "/sys/fs/cgroup/memory{}",
        common::cgroup_of(PARENT, "nocmd")
    );
    assert!(!Path::new(&cg).exists(), "cgroup left behind");
}

fn unknown_namespace_is_refused() {
    let b = bundle("badns", &["true"], |v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "bogus"}))
    });
    let err = run(&b, "badns").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(err.contains("bogus"), "{err}");
}

fn raising_hard_rlimit_is_a_clear_error() {
    let b =
        bundle(
            "rlimit",
            &["true"],
            |v| {
                v["process"]["rlimits"] =
                    json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1u64 << 40}])
            },
        );
    let err = run(&b, "rlimit").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(
        err.contains("RLIMIT_NOFILE") || err.contains("RlimitNofile"),
        "{err}"
    );
}

/// Whether this process has CAP_SYS_RESOURCE in its effective set.
fn have_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    const CAP_SYS_RESOURCE: u32 = 24;
    eff & (1 << CAP_SYS_RESOURCE) != 0
}

fn oom_score_adj_raised_and_lowering_refused_clearly() {
    let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Raising needs no privilege: the init sees the value.
    let up = (own + 300).min(1000);
    let b = bundle("oomup", &["cat", "/proc/self/oom_score_adj"], |v| {
        v["process"]["oomScoreAdj"] = json!(up)
    });
    let o = run(&b, "oomup").unwrap();
    let _ = std::fs::remove_dir_all(&b);
    assert_eq!(o.stdout.trim(), up.to_string());
    // Lowering needs CAP_SYS_RESOURCE: without it (this CI VM), one error that
    // names the field and the capability; with it, the value is applied.
    let down = (own - 300).max(-1000);
    let b = bundle("oomdown", &["cat", "/proc/self/oom_score_adj"], |v| {
        v["process"]["oomScoreAdj"] = json!(down)
    });
    let r = run(&b, "oomdown");
    let _ = std::fs::remove_dir_all(&b);
    if have_sys_resource() {
        assert_eq!(r.unwrap().stdout.trim(), down.to_string());
    } else {
        let err = r.unwrap_err().to_string();
        assert!(
            err.contains("process.oomScoreAdj") && err.contains("CAP_SYS_RESOURCE"),
            "{err}"
        );
    }
}

fn joins_namespaces_by_path() {
    // The host's network namespace, by path: the container must be a member.
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    let script = "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc";
    let b = bundle("joinns", &["sh", "-c", script], |v| {
        for ns in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!("/proc/self/ns/net");
            }
        }
    });
    let o = run(&b, "joinns").unwrap();
    let _ = std::fs::remove_dir_all(&b);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(host_net.to_str().unwrap()),
        "{}",
        o.stderr
    );
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    assert_ne!(
        lines.get(1).copied(),
        Some(host_ipc.to_str().unwrap()),
        "ipc should be new"
    );
}

fn exec_joins_the_container() {
    let name = "exec";
    let b = bundle(name, &["sleep", "1000"], |_| {});
    let c = common::start_detached(name, &b);
    let mut p: oci_spec::runtime::Process = serde_json::from_value(json!({
        "args": ["sh", "-c", "echo $$; hostname; id -u; grep memory /proc/self/cgroup; ls /proc/self/fd | tr '\\n' ' '; exit 7"],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "user": {"uid": 1000, "gid": 1000}
    }))
    .unwrap();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let reader = (read_all(out_r), read_all(err_r));
    let (pidfd, _console) = c
        .exec(
            &p,
            Stdio {
                stdin: None,
                stdout: Some(out_w),
                stderr: Some(err_w),
            },
        )
        .unwrap();
    let status = pidfd.reap_blocking().unwrap();
    let (out, err) = (reader.0.join().unwrap(), reader.1.join().unwrap());
    // A missing command in an exec is one clear error, and nothing is left running.
    p.set_args(Some(vec!["/bin/nope".into()]));
    let e = c.exec(&p, Stdio::default()).unwrap_err().to_string();
    c.kill(libc::SIGKILL, false).unwrap();
    c.init().reap_blocking().unwrap();
    c.delete().unwrap();
    let _ = std::fs::remove_dir_all(&b);
    assert_eq!(status.0, 7, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "1", "exec must not be the init");
    assert!(
        lines[0].parse::<u32>().unwrap() < 100,
        "pid {} is not from the container's pid namespace",
        lines[0]
    );
    assert_eq!(lines[1], "rshim");
    assert_eq!(lines[2], "1000");
    assert!(
        lines[3].ends_with(&common::cgroup_of(PARENT, name)),
        "{out}"
    );
    assert_eq!(lines[4].trim(), "0 1 2 3", "fds of the exec process: {out}");
    assert!(e.contains("/bin/nope"), "{e}");
}

fn user_namespace_maps_root() {
    let name = "userns";
    let script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; ls -l /dev/null; hostname; echo $$";
    let b = bundle(name, &["sh", "-c", script], |v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    });
    let o = run(&b, name).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&b);
    let lines: Vec<Vec<&str>> = o
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["0", "200000", "65536"],
        "{}{}",
        o.stdout,
        o.stderr
    );
    assert_eq!(lines[1], ["0", "200000", "65536"]);
    assert_eq!(
        (lines[2][0], lines[3][0]),
        ("0", "0"),
        "not root in its namespace"
    );
    assert!(
        lines[4][0].starts_with('c') && lines[4].contains(&"3"),
        "/dev/null: {:?}",
        lines[4]
    );
    assert_eq!(lines[5][0], "rshim");
    assert_eq!(lines[6][0], "1");
}

fn user_namespace_without_maps_is_refused() {
    let b = bundle("usernomap", &["true"], |v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
    });
    let err = run(&b, "usernomap").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(err.contains("uidMappings"), "{err}");
}

fn namespaced_sysctls_applied_others_refused() {
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want = if host_fwd.trim() == "1" { "0" } else { "1" };
    let b = bundle(
        "sysctl",
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni",
        ],
        |v| {
            v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": want, "kernel.shmmni": "1234"});
        },
    );
    let o = run(&b, "sysctl").unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&b);
    assert_eq!(o.stdout, format!("{want}\n1234\n"), "{}", o.stderr);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd,
        "host changed"
    );
    let b = bundle("sysctlbad", &["true"], |v| {
        v["linux"]["sysctl"] = json!({"vm.swappiness": "10"})
    });
    let err = run(&b, "sysctlbad").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(
        err.contains("vm.swappiness") && err.contains("host"),
        "{err}"
    );
}

fn net_sysctls_in_a_joined_network_namespace() {
    // A pod's sandbox joins the namespace CNI made by path and sets net sysctls there
    // (containerd 2.x asks for ip_unprivileged_port_start): allowed, as it is not the host's.
    let mut holder = std::process::Command::new("unshare")
        .args(["--net", "sleep", "1000"])
        .spawn()
        .unwrap();
    let ns = format!("/proc/{}/ns/net", holder.id());
    wait_until_namespace_differs(&ns);
    let b = bundle(
        "sysctljoin",
        &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
        |v| {
            for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
                if n["type"] == "network" {
                    n["path"] = json!(ns);
                }
            }
            v["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "0"});
        },
    );
    let o = run(&b, "sysctljoin");
    let _ = std::fs::remove_dir_all(&b);
    let _ = holder.kill();
    let _ = holder.wait();
    let o = o.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(o.stdout, "0\n", "{}", o.stderr);
    // The host's own network namespace by path: refused, it would change the host.
    let b = bundle("sysctlhost", &["true"], |v| {
        for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = json!("/proc/self/ns/net");
            }
        }
        v["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "0"});
    });
    let err = run(&b, "sysctlhost").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(err.contains("other than the host's"), "{err}");
}

/// unshare(1) has exec'd its command once the namespace is no longer ours.
fn wait_until_namespace_differs(ns: &str) {
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    for _ in 0..100 {
        if std::fs::read_link(ns).is_ok_and(|l| l != ours) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{ns} never became a namespace of its own");
}

fn hooks_run_in_order_with_state() {
    let dir = std::env::temp_dir().join(format!("rshim-hooks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("order");
    // Host-side hooks append their kind and the state's status and pid to `log`.
    let host = |kind: &str| {
        let script = format!("read -r s; echo \"{kind} $s\" >> {}", log.display());
        json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["HOOKENV=1"]})
    };
    // startContainer runs inside the container's root: it leaves a file in the rootfs /tmp.
    let marker = format!("/tmp/started-{}", std::process::id());
    let inside = json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {marker}")]});
    let b = bundle("hooks", &["true"], |v| {
        v["hooks"] = json!({
            "prestart": [host("prestart")],
            "createRuntime": [host("createRuntime")],
            "createContainer": [host("createContainer")],
            "startContainer": [inside],
            "poststart": [host("poststart")],
            "poststop": [host("poststop")],
        });
    });
    let o = run(&b, "hooks").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(o.status, 0, "{}", o.stderr);
    let order = std::fs::read_to_string(&log).unwrap();
    let kinds: Vec<&str> = order
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ],
        "{order}"
    );
    let first: serde_json::Value =
        serde_json::from_str(order.lines().next().unwrap().split_once(' ').unwrap().1).unwrap();
    assert_eq!(
        (first["id"].as_str(), first["status"].as_str()),
        (Some("hooks"), Some("creating"))
    );
    assert!(
        first["pid"].as_i64().unwrap() > 1,
        "state pid must be the host pid: {first}"
    );
    assert_eq!(first["bundle"].as_str(), Some(b.to_str().unwrap()));
    let rootfs = b.join("config.json");
    let cfg: Value = serde_json::from_slice(&std::fs::read(rootfs).unwrap()).unwrap();
    let started =
        Path::new(cfg["root"]["path"].as_str().unwrap()).join(marker.trim_start_matches('/'));
    let st: Value = serde_json::from_slice(
        &std::fs::read(&started).expect("startContainer hook ran in the container"),
    )
    .unwrap();
    assert_eq!(st["status"].as_str(), Some("created"));
    let _ = std::fs::remove_file(&started);
    let _ = std::fs::remove_dir_all(&b);
    let _ = std::fs::remove_dir_all(&dir);
}

fn failing_or_slow_hook_fails_create() {
    let b = bundle("hookfail", &["true"], |v| {
        v["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]});
    });
    let err = run(&b, "hookfail").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(
        err.contains("hooks.createRuntime[0]") && err.contains("nope"),
        "{err}"
    );
    let b = bundle("hookslow", &["true"], |v| {
        v["hooks"] = json!({"createContainer": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    });
    let t = std::time::Instant::now();
    let err = run(&b, "hookslow").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(err.contains("timed out"), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    let cg = format!(
        "/sys/fs/cgroup/memory{}",
        common::cgroup_of(PARENT, "hookslow")
    );
    assert!(!Path::new(&cg).exists(), "cgroup left behind");
}

/// A private copy of the generated rootfs that a test may make hostile.
fn private_rootfs(b: &Path) -> PathBuf {
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    let src = cfg["root"]["path"].as_str().unwrap().to_string();
    let dst = b.join("rootfs");
    let st = Command::new("cp")
        .args(["-a", &src])
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    dst
}

fn mount_target_symlink_cannot_escape() {
    let name = "escape";
    let host_target =
        std::env::temp_dir().join(format!("rshim-escape-target-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&host_target);
    std::fs::create_dir_all(&host_target).unwrap();
    let b = bundle(
        name,
        &[
            "sh",
            "-c",
            "ls /evil/x >/dev/null && grep -c ' /evil' /proc/self/mountinfo",
        ],
        |_| {},
    );
    let rootfs = private_rootfs(&b);
    // A symlink in the image pointing at a host path, used as a mount target.
    std::os::unix::fs::symlink(&host_target, rootfs.join("evil")).unwrap();
    let cfg = b.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["root"]["path"] = json!(rootfs);
    v["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"}));
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = run(&b, name);
    // Whatever happened inside, the host path got neither a mount nor a new directory.
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host_mounts.contains(host_target.to_str().unwrap()),
        "mount escaped to the host"
    );
    assert_eq!(
        std::fs::read_dir(&host_target).unwrap().count(),
        0,
        "created x on the host"
    );
    // The symlink resolves inside the rootfs, where its target does not exist:
    // the mount is refused with an error naming the path.
    let err = out
        .expect_err("mount through a dangling in-rootfs symlink succeeded")
        .to_string();
    assert!(err.contains("evil"), "{err}");
    let _ = std::fs::remove_dir_all(&b);
    let _ = std::fs::remove_dir_all(&host_target);
}

fn cwd_cannot_leave_the_rootfs() {
    let b = bundle(
        "cwd",
        &[
            "sh",
            "-c",
            "pwd; ls / | grep -c busybox-not-here; ls /bin/busybox",
        ],
        |v| {
            v["process"]["cwd"] = json!("/../../../..");
        },
    );
    let o = run(&b, "cwd").unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&b);
    assert_eq!(
        o.stdout.lines().next(),
        Some("/"),
        "{}{}",
        o.stdout,
        o.stderr
    );
}

fn init_binary_is_sealed_before_start() {
    // While created, the init still runs our (helper) image: its /proc/PID/exe
    // is the sealed memfd, which nobody can open for writing.
    let name = "sealed";
    let b = bundle(name, &["true"], |_| {});
    let c = Container::create(CreateOpts {
        exec_fifo: None,
        id: name,
        bundle: &b,
        stdio: Stdio::default(),
    })
    .unwrap();
    let exe = format!("/proc/{}/exe", c.pid());
    let target = std::fs::read_link(&exe).unwrap();
    let w = std::fs::OpenOptions::new().write(true).open(&exe);
    c.kill(libc::SIGKILL, false).unwrap();
    c.init().reap_blocking().unwrap();
    c.delete().unwrap();
    let _ = std::fs::remove_dir_all(&b);
    assert!(
        target.to_string_lossy().starts_with("/memfd:"),
        "init runs {}",
        target.display()
    );
    assert!(w.is_err(), "opened the init's binary for writing");
}

fn personality_and_io_priority() {
    let b = bundle("persona", &["sh", "-c", "uname -m; ionice -p $$"], |v| {
        v["linux"]["personality"] = json!({"domain": "LINUX32"});
        v["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    });
    let o = run(&b, "persona").unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&b);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("i686"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    assert_eq!(
        lines.get(1).copied(),
        Some("idle"),
        "{}{}",
        o.stdout,
        o.stderr
    );
}

fn seccomp_filter_applies() {
    for nnp in [true, false] {
        let script = "grep Seccomp: /proc/self/status; mkdir /tmp/seccomp-$$ 2>&1; echo mkdir=$?; \
                      kill -0 $$ 2>/dev/null; echo kill0=$?; kill -CONT $$; echo cont=$?";
        let b = bundle("seccomp", &["sh", "-c", script], |v| {
            v["process"]["noNewPrivileges"] = json!(nnp);
            v["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95},
                    // Conditional: kill(pid, 0) is refused, any real signal allowed.
                    {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                     "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}
                ]
            });
        });
        let o = run(&b, "seccomp").unwrap_or_else(|e| panic!("nnp={nnp}: {e}"));
        let _ = std::fs::remove_dir_all(&b);
        assert!(
            o.stdout.contains("Seccomp:\t2"),
            "nnp={nnp}: {}{}",
            o.stdout,
            o.stderr
        );
        // 95 = EOPNOTSUPP: the errno comes from our rule, not from a permission check.
        assert!(
            o.stdout.contains("not supported") && o.stdout.contains("mkdir=1"),
            "nnp={nnp}: {}",
            o.stdout
        );
        assert!(
            o.stdout.contains("kill0=1") && o.stdout.contains("cont=0"),
            "arg filter, nnp={nnp}: {}",
            o.stdout
        );
    }
}

fn seccomp_notify_is_refused() {
    let b = bundle("seccompnotify", &["true"], |v| {
        v["linux"]["seccomp"] =
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"});
    });
    let err = run(&b, "seccompnotify").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&b);
    assert!(err.contains("listenerPath"), "{err}");
}

fn concurrent_creates_from_threads() {
    // 20 containers created from 20 threads of this (multi-threaded) process at once.
    let handles: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let name = format!("conc{i}");
                let o = sh(&name, "echo $$");
                assert_eq!(o.stdout, "1\n", "{name}: {}", o.stderr);
            })
        })
        .collect();
    // Join all before failing, so no thread is cut off mid-cleanup.
    let failures = handles
        .into_iter()
        .map(|h| h.join())
        .filter(|r| r.is_err())
        .count();
    assert_eq!(failures, 0, "{failures} of 20 concurrent containers failed");
}

fn main() {
    runtime_core::init::main_if_helper();
    let tests: &[(&str, fn())] = &[
        ("exit_code_and_stdio", exit_code_and_stdio),
        (
            "init_is_pid1_with_own_hostname",
            init_is_pid1_with_own_hostname,
        ),
        ("only_stdio_fds_open", only_stdio_fds_open),
        (
            "mount_table_is_the_containers",
            mount_table_is_the_containers,
        ),
        ("default_devices_and_symlinks", default_devices_and_symlinks),
        ("user_caps_and_nnp", user_caps_and_nnp),
        (
            "cgroup_is_made_joined_and_removed",
            cgroup_is_made_joined_and_removed,
        ),
        (
            "missing_rootfs_is_one_clear_error",
            missing_rootfs_is_one_clear_error,
        ),
        ("missing_command_fails_create", missing_command_fails_create),
        ("unknown_namespace_is_refused", unknown_namespace_is_refused),
        (
            "raising_hard_rlimit_is_a_clear_error",
            raising_hard_rlimit_is_a_clear_error,
        ),
        (
            "oom_score_adj_raised_and_lowering_refused_clearly",
            oom_score_adj_raised_and_lowering_refused_clearly,
        ),
        ("joins_namespaces_by_path", joins_namespaces_by_path),
        ("exec_joins_the_container", exec_joins_the_container),
        ("user_namespace_maps_root", user_namespace_maps_root),
        ("seccomp_filter_applies", seccomp_filter_applies),
        ("seccomp_notify_is_refused", seccomp_notify_is_refused),
        ("personality_and_io_priority", personality_and_io_priority),
        (
            "mount_target_symlink_cannot_escape",
            mount_target_symlink_cannot_escape,
        ),
        ("cwd_cannot_leave_the_rootfs", cwd_cannot_leave_the_rootfs),
        (
            "init_binary_is_sealed_before_start",
            init_binary_is_sealed_before_start,
        ),
        (
            "hooks_run_in_order_with_state",
            hooks_run_in_order_with_state,
        ),
        (
            "failing_or_slow_hook_fails_create",
            failing_or_slow_hook_fails_create,
        ),
        (
            "namespaced_sysctls_applied_others_refused",
            namespaced_sysctls_applied_others_refused,
        ),
        (
            "net_sysctls_in_a_joined_network_namespace",
            net_sysctls_in_a_joined_network_namespace,
        ),
        (
            "user_namespace_without_maps_is_refused",
            user_namespace_without_maps_is_refused,
        ),
        (
            "concurrent_creates_from_threads",
            concurrent_creates_from_threads,
        ),
    ];
    common::main(PARENT, tests);
}
