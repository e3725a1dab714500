//! One test per OCI spec field beyond the basics: applied ones assert the
//! value from inside the container (or its cgroup file, read from inside);
//! refused ones assert an error naming the field, and that nothing was left
//! behind (no cgroup; the init is reaped by `run`). Needs root.

mod common;

use common::{bundle, cgroup_left, run};
use serde_json::{json, Value};

const PARENT: &str = "rshim-core-fields";

/// Runs `script` in a container with `edit` applied; returns its stdout.
fn applied(name: &str, script: &str, edit: impl FnOnce(&mut Value)) -> String {
    let b = bundle(PARENT, name, &["sh", "-c", script], edit);
    let o = run(&b, name);
    let _ = std::fs::remove_dir_all(&b);
    let o = o.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(o.status, 0, "{name}: {}{}", o.stdout, o.stderr);
    o.stdout
}

/// Asserts that `edit` makes create fail with an error containing every `want`.
fn refused(name: &str, edit: impl FnOnce(&mut Value), want: &[&str]) {
    let b = bundle(PARENT, name, &["true"], edit);
    let r = run(&b, name);
    let _ = std::fs::remove_dir_all(&b);
    let err = match r {
        Ok(o) => panic!("{name}: accepted (exit {}, {})", o.status, o.stderr),
        Err(e) => e.to_string(),
    };
    for w in want {
        assert!(err.contains(w), "{name}: error lacks {w:?}: {err}");
    }
    assert_eq!(
        cgroup_left(PARENT, name),
        None,
        "{name}: cgroup left behind"
    );
}

fn add_ns(v: &mut Value, typ: &str) {
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": typ }));
}

fn time_namespace_with_offsets() {
    let host = std::fs::read_link("/proc/self/ns/time").unwrap();
    let out = applied(
        "timens",
        "readlink /proc/self/ns/time; cut -d' ' -f1 /proc/uptime",
        |v| {
            add_ns(v, "time");
            v["linux"]["timeOffsets"] =
                json!({"boottime": {"secs": 864000}, "monotonic": {"secs": 5}});
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], host.to_str().unwrap(), "not a new time namespace");
    let uptime: f64 = lines[1].parse().unwrap();
    let host_up: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        uptime >= 864000.0 && uptime < host_up + 864000.0 + 60.0,
        "boottime offset: {uptime}"
    );
}

fn exec_joins_the_time_namespace() {
    let name = "timensexec";
    let b = bundle(PARENT, name, &["sleep", "1000"], |v| {
        add_ns(v, "time");
        v["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000}});
    });
    let c = common::start_detached(name, &b);
    let init_ns = std::fs::read_link(format!("/proc/{}/ns/time", c.pid()));
    let p: oci_spec::runtime::Process = serde_json::from_value(json!({
        "args": ["sh", "-c", "readlink /proc/self/ns/time; cut -d' ' -f1 /proc/uptime"],
        "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}
    }))
    .unwrap();
    let (r, w) = nix::unistd::pipe().unwrap();
    let exec = c.exec(
        &p,
        runtime_core::Stdio {
            stdin: None,
            stdout: Some(w),
            stderr: None,
        },
    );
    let mut out = String::new();
    if let Ok((pidfd, _)) = &exec {
        std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
        pidfd.reap_blocking().unwrap();
    }
    c.kill(libc::SIGKILL, false).unwrap();
    c.init().reap_blocking().unwrap();
    c.delete().unwrap();
    let _ = std::fs::remove_dir_all(&b);
    exec.unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        Some(lines[0]),
        init_ns.as_ref().ok().and_then(|p| p.to_str()),
        "{out}"
    );
    let up: f64 = lines[1].parse().unwrap();
    assert!(up >= 864000.0, "exec outside the offset clock: {up}");
}

fn joining_a_pid_namespace_makes_a_member() {
    // A second container joins the first one's pid namespace by path: it is
    // not pid 1 there, and it sees the first container's init as pid 1.
    let first = "pidnsowner";
    let b1 = bundle(PARENT, first, &["sleep", "1000"], |_| {});
    let c = common::start_detached(first, &b1);
    let path = format!("/proc/{}/ns/pid", c.pid());
    let out = std::panic::catch_unwind(|| {
        applied(
            "pidnsjoin",
            "echo $$; cat /proc/1/cmdline | tr '\\0' ' '",
            |v| {
                for ns in v["linux"]["namespaces"].as_array_mut().unwrap() {
                    if ns["type"] == "pid" {
                        ns["path"] = json!(path);
                    }
                }
            },
        )
    });
    c.kill(libc::SIGKILL, false).unwrap();
    c.init().reap_blocking().unwrap();
    c.delete().unwrap();
    let _ = std::fs::remove_dir_all(&b1);
    let out = out.unwrap_or_else(|e| std::panic::resume_unwind(e));
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "1", "the joiner became pid 1 of a new namespace");
    assert_eq!(lines[1].trim(), "sleep 1000", "{out}");
}

fn no_mount_namespace_refused() {
    refused(
        "nomntns",
        |v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "mount")
        },
        // The container would share the host's mount table: no mount of it may be made there.
        &["mounts", "own mount namespace", "add {\"type\": \"mount\"}"],
    );
}

fn seccomp_listener_metadata_alone_refused() {
    refused(
        "seccompmeta",
        |v| {
            v["linux"]["seccomp"] =
                json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"})
        },
        &["linux.seccomp.listenerMetadata"],
    );
}

fn time_offsets_without_time_namespace_refused() {
    refused(
        "timeoffsets",
        |v| v["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}}),
        &["linux.timeOffsets", "time namespace"],
    );
    refused(
        "timeclock",
        |v| {
            add_ns(v, "time");
            v["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
        },
        &["linux.timeOffsets[realtime]"],
    );
}

fn cgroup_namespace_roots_the_cgroups() {
    let out = applied(
        "cgroupns",
        "readlink /proc/self/ns/cgroup; cat /proc/self/cgroup",
        |v| add_ns(v, "cgroup"),
    );
    let host = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    assert!(!out.starts_with(host.to_str().unwrap()), "{out}");
    assert!(
        out.lines()
            .any(|l| l == "4:memory:/" || l.ends_with(":memory:/")),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "0::/"), "{out}");
}

fn rootfs_propagation_shared() {
    let out = applied("rootprop", "awk '$5 == \"/\"' /proc/self/mountinfo", |v| {
        v["linux"]["rootfsPropagation"] = json!("rshared")
    });
    assert!(out.contains(" shared:"), "{out}");
    refused(
        "rootpropbad",
        |v| v["linux"]["rootfsPropagation"] = json!("sideways"),
        &["linux.rootfsPropagation", "sideways"],
    );
}

fn scheduler_policy_and_nice() {
    // Fields 19 and 41 of /proc/PID/stat: nice and policy (3 = SCHED_BATCH, 5 = SCHED_IDLE).
    let out = applied("sched", "cut -d' ' -f19,41 /proc/self/stat", |v| {
        v["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7})
    });
    assert_eq!(out.trim(), "7 3");
    let out = applied("schedidle", "cut -d' ' -f41 /proc/self/stat", |v| {
        v["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"})
    });
    assert_eq!(out.trim(), "5");
    // SCHED_FIFO needs a priority in 1..=99: the kernel's EINVAL, named.
    refused(
        "schedbad",
        |v| v["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 0}),
        &["process.scheduler", "SchedFifo", "sched_setattr"],
    );
}

fn lsm_labels_refused() {
    refused(
        "mountlabel",
        |v| v["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0"),
        &["linux.mountLabel", "SELinux is not enabled on this host"],
    );
    refused(
        "selinux",
        |v| v["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0"),
        &["process.selinuxLabel", "SELinux"],
    );
    refused(
        "apparmor",
        |v| v["process"]["apparmorProfile"] = json!("docker-default"),
        &["process.apparmorProfile", "AppArmor"],
    );
}

fn other_platforms_and_unsupported_linux_fields_refused() {
    refused(
        "windows",
        |v| v["windows"] = json!({"layerFolders": []}),
        &["windows", "Linux runtime"],
    );
    refused(
        "cmdline",
        |v| v["process"]["commandLine"] = json!("cmd /c"),
        &["process.commandLine", "Windows"],
    );
    refused(
        "rdt",
        |v| v["linux"]["intelRdt"] = json!({"closID": "x"}),
        &["linux.intelRdt"],
    );
    refused(
        "mempolicy",
        |v| v["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"}),
        &["linux.memoryPolicy"],
    );
    refused(
        "netdev",
        |v| v["linux"]["netDevices"] = json!({"eth9": {"name": "eth0"}}),
        &["linux.netDevices"],
    );
    // ID-mapped mounts are applied now (tests/conformance.rs); a non-bind one is refused.
    refused(
        "idmapmount",
        |v| {
            v["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}))
        },
        &["mounts[/mnt].uidMappings", "bind mounts only"],
    );
}

/// Reads cgroup files from inside: /sys/fs/cgroup/<controller>/<file> per line.
fn cg_files(files: &[&str]) -> String {
    files
        .iter()
        .map(|f| format!("echo \"{f}=$(cat /sys/fs/cgroup/{f})\";"))
        .collect()
}

fn memory_fields_v1() {
    let script = cg_files(&[
        "memory/memory.limit_in_bytes",
        "memory/memory.soft_limit_in_bytes",
        "memory/memory.memsw.limit_in_bytes",
        "memory/memory.swappiness",
        "memory/memory.kmem.tcp.limit_in_bytes",
        "memory/memory.oom_control",
    ]);
    let out = applied("memory", &script, |v| {
        v["linux"]["resources"]["memory"] = json!({
            "limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20, "swappiness": 10,
            "kernelTCP": 16 << 20, "disableOOMKiller": true, "checkBeforeUpdate": true
        })
    });
    for want in [
        format!("memory.limit_in_bytes={}", 64 << 20),
        format!("memory.soft_limit_in_bytes={}", 32 << 20),
        format!("memory.memsw.limit_in_bytes={}", 128 << 20),
        "memory.swappiness=10".into(),
        format!("memory.kmem.tcp.limit_in_bytes={}", 16 << 20),
        "oom_kill_disable 1".into(),
    ] {
        assert!(out.contains(&want), "{want} missing:\n{out}");
    }
    // memory.kernel is deprecated and accepted with a warning: tests/conformance.rs.
    refused(
        "swappiness",
        |v| v["linux"]["resources"]["memory"] = json!({"swappiness": 101}),
        &["linux.resources.memory.swappiness", "0..=100"],
    );
    refused(
        "usehier",
        |v| v["linux"]["resources"]["memory"] = json!({"useHierarchy": false}),
        &[
            "linux.resources.memory.useHierarchy",
            "memory.use_hierarchy",
        ],
    );
}

fn cpu_fields_v1() {
    let script = cg_files(&[
        "cpu/cpu.shares",
        "cpu/cpu.cfs_quota_us",
        "cpu/cpu.cfs_period_us",
        "cpu/cpu.cfs_burst_us",
        "cpu/cpu.idle",
        "cpu/cpu.rt_period_us",
        "cpu/cpu.rt_runtime_us",
        "cpuset/cpuset.cpus",
        "cpuset/cpuset.mems",
    ]);
    let out = applied("cpu", &script, |v| {
        v["linux"]["resources"]["cpu"] = json!({
            "shares": 256, "quota": 30000, "period": 60000, "burst": 1000, "idle": 0,
            "realtimePeriod": 500000, "realtimeRuntime": 0, "cpus": "0", "mems": "0"
        })
    });
    for want in [
        "cpu.shares=256",
        "cpu.cfs_quota_us=30000",
        "cpu.cfs_period_us=60000",
        "cpu.cfs_burst_us=1000",
        "cpu.idle=0",
        "cpu.rt_period_us=500000",
        "cpu.rt_runtime_us=0",
        "cpuset.cpus=0\n",
        "cpuset.mems=0\n",
    ] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
    // A runtime above the parent's (0 for a new v1 cgroup): the kernel's EINVAL, named.
    refused(
        "rtruntime",
        |v| {
            v["linux"]["resources"]["cpu"] =
                json!({"realtimePeriod": 100000, "realtimeRuntime": 50000})
        },
        &["linux.resources.cpu.realtimeRuntime", "cpu.rt_runtime_us"],
    );
}

/// The major:minor of the block device holding `/`.
fn root_dev() -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").unwrap().dev();
    // Partitions have no throttle of their own; the test disk is a whole device.
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

fn block_io_fields_v1() {
    let dev = root_dev();
    let (maj, min): (i64, i64) = {
        let (a, b) = dev.split_once(':').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    let script = cg_files(&[
        "blkio/blkio.throttle.read_bps_device",
        "blkio/blkio.throttle.write_bps_device",
        "blkio/blkio.throttle.read_iops_device",
        "blkio/blkio.throttle.write_iops_device",
    ]);
    let out = applied("blkio", &script, |v| {
        v["linux"]["resources"]["blockIO"] = json!({
            "throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": maj, "minor": min, "rate": 2097152}],
            "throttleReadIOPSDevice": [{"major": maj, "minor": min, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": maj, "minor": min, "rate": 200}]
        })
    });
    for want in [
        format!("read_bps_device={dev} 1048576"),
        format!("write_bps_device={dev} 2097152"),
        format!("read_iops_device={dev} 100"),
        format!("write_iops_device={dev} 200"),
    ] {
        assert!(out.contains(&want), "{want} missing:\n{out}");
    }
    // Proportional weight: BFQ's files (the kernel has no CFQ any more); leaf
    // weights existed only with CFQ and are refused.
    let out = applied("blkioweight", &cg_files(&["blkio/blkio.bfq.weight"]), |v| {
        v["linux"]["resources"]["blockIO"] = json!({"weight": 500})
    });
    assert!(
        out.contains("blkio.bfq.weight=default 500") || out.contains("blkio.bfq.weight=500"),
        "{out}"
    );
    // A per-device weight needs BFQ on that device; the test disk may use another
    // scheduler, and then the kernel's refusal is reported with the field.
    let sched = std::fs::read_to_string(format!("/sys/dev/block/{dev}/queue/scheduler"))
        .unwrap_or_default();
    if !sched.contains("[bfq]") {
        refused(
            "weightdev",
            |v| {
                v["linux"]["resources"]["blockIO"] =
                    json!({"weightDevice": [{"major": maj, "minor": min, "weight": 300}]})
            },
            &[
                &format!("linux.resources.blockIO.weightDevice[{dev}]"),
                "not supported",
            ],
        );
    }
    refused(
        "leafweight",
        |v| v["linux"]["resources"]["blockIO"] = json!({"leafWeight": 500}),
        &["linux.resources.blockIO.leafWeight", "CFQ"],
    );
}

fn pids_and_devices_v1() {
    let out = applied(
        "pids",
        &cg_files(&["pids/pids.max", "devices/devices.list"]),
        |v| {
            v["linux"]["resources"]["pids"] = json!({"limit": 42});
            v["linux"]["resources"]["devices"] = json!([
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}
            ]);
        },
    );
    assert!(out.contains("pids.max=42"), "{out}");
    assert!(out.contains("c 10:229 rw"), "{out}");
    assert!(!out.contains("a *:* rwm"), "deny-all not applied: {out}");
}

fn unified_key_values_on_the_v2_hierarchy() {
    // cgroup.* core files exist in every v2 cgroup, whatever controllers are enabled.
    let out = applied(
        "unified",
        "cat /sys/fs/cgroup/unified/cgroup.max.descendants /sys/fs/cgroup/unified/cgroup.max.depth",
        |v| {
            v["linux"]["resources"]["unified"] =
                json!({"cgroup.max.descendants": "5", "cgroup.max.depth": "2"})
        },
    );
    assert_eq!(out, "5\n2\n");
    refused(
        "unifiedoff",
        |v| v["linux"]["resources"]["unified"] = json!({"memory.high": "1000000"}),
        &["linux.resources.unified[memory.high]", "not enabled"],
    );
    refused(
        "unifiedpath",
        |v| v["linux"]["resources"]["unified"] = json!({"../cgroup.procs": "1"}),
        &["linux.resources.unified[../cgroup.procs]"],
    );
}

fn controllers_this_host_lacks_are_refused() {
    let lacks = |c: &str| !std::path::Path::new(&format!("/sys/fs/cgroup/{c}")).exists();
    if lacks("hugetlb") {
        refused(
            "hugetlb",
            |v| {
                v["linux"]["resources"]["hugepageLimits"] =
                    json!([{"pageSize": "2MB", "limit": 2097152}])
            },
            &[
                "linux.resources.hugepageLimits[2MB]",
                "no hugetlb controller",
            ],
        );
    }
    if lacks("net_cls") && lacks("net_cls,net_prio") {
        refused(
            "netcls",
            |v| v["linux"]["resources"]["network"] = json!({"classID": 1048577}),
            &["linux.resources.network.classID", "no net_cls controller"],
        );
        refused(
            "netprio",
            |v| {
                v["linux"]["resources"]["network"] =
                    json!({"priorities": [{"name": "eth0", "priority": 5}]})
            },
            &[
                "linux.resources.network.priorities[eth0]",
                "no net_prio controller",
            ],
        );
    }
    if lacks("rdma") {
        refused(
            "rdma",
            |v| v["linux"]["resources"]["rdma"] = json!({"mlx5_0": {"hcaHandles": 1}}),
            &["linux.resources.rdma[mlx5_0]", "no rdma controller"],
        );
    }
}

fn update_applies_to_a_running_container() {
    let name = "update";
    let b = bundle(PARENT, name, &["sleep", "1000"], |_| {});
    let c = common::start_detached(name, &b);
    let res: oci_spec::runtime::LinuxResources = serde_json::from_value(json!({
        "memory": {"limit": 48 << 20, "swap": 96 << 20}, "pids": {"limit": 9}, "cpu": {"shares": 300}
    }))
    .unwrap();
    let r = c.update(&res);
    let cg = common::cgroup_of(PARENT, name);
    let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).unwrap_or_default();
    let got = (
        read(&format!("memory{cg}/memory.limit_in_bytes")),
        read(&format!("memory{cg}/memory.memsw.limit_in_bytes")),
        read(&format!("pids{cg}/pids.max")),
        read(&format!("cpu{cg}/cpu.shares")),
    );
    // A limit below the current usage with checkBeforeUpdate: refused, the old one stays.
    let low: oci_spec::runtime::LinuxResources =
        serde_json::from_value(json!({"memory": {"limit": 4096, "checkBeforeUpdate": true}}))
            .unwrap();
    let e = c.update(&low).map(|_| ()).map_err(|e| e.to_string());
    c.kill(libc::SIGKILL, false).unwrap();
    c.init().reap_blocking().unwrap();
    c.delete().unwrap();
    let _ = std::fs::remove_dir_all(&b);
    r.unwrap();
    assert_eq!(got.0.trim(), (48 << 20).to_string());
    assert_eq!(got.1.trim(), (96 << 20).to_string());
    assert_eq!((got.2.trim(), got.3.trim()), ("9", "300"));
    let e = e.expect_err("limit below usage accepted");
    assert!(
        e.contains("checkBeforeUpdate") && e.contains("linux.resources.memory.limit"),
        "{e}"
    );
}

fn main() {
    runtime_core::init::main_if_helper();
    // The bundles are root's (and only a root run uses them: see common::main).
    if common::is_root() {
        let st = std::process::Command::new(common::repo().join("test-bundles/gen"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
    common::main(
        PARENT,
        &[
            ("time_namespace_with_offsets", time_namespace_with_offsets),
            (
                "exec_joins_the_time_namespace",
                exec_joins_the_time_namespace,
            ),
            (
                "joining_a_pid_namespace_makes_a_member",
                joining_a_pid_namespace_makes_a_member,
            ),
            ("no_mount_namespace_refused", no_mount_namespace_refused),
            (
                "seccomp_listener_metadata_alone_refused",
                seccomp_listener_metadata_alone_refused,
            ),
            (
                "time_offsets_without_time_namespace_refused",
                time_offsets_without_time_namespace_refused,
            ),
            (
                "cgroup_namespace_roots_the_cgroups",
                cgroup_namespace_roots_the_cgroups,
            ),
            ("rootfs_propagation_shared", rootfs_propagation_shared),
            ("scheduler_policy_and_nice", scheduler_policy_and_nice),
            ("lsm_labels_refused", lsm_labels_refused),
            (
                "other_platforms_and_unsupported_linux_fields_refused",
                other_platforms_and_unsupported_linux_fields_refused,
            ),
            ("memory_fields_v1", memory_fields_v1),
            ("cpu_fields_v1", cpu_fields_v1),
            ("block_io_fields_v1", block_io_fields_v1),
            ("pids_and_devices_v1", pids_and_devices_v1),
            (
                "unified_key_values_on_the_v2_hierarchy",
                unified_key_values_on_the_v2_hierarchy,
            ),
            (
                "controllers_this_host_lacks_are_refused",
                controllers_this_host_lacks_are_refused,
            ),
            (
                "update_applies_to_a_running_container",
                update_applies_to_a_running_container,
            ),
        ],
    )
}
