//! The mount plan's decisions, without root: specs in, steps out.

use super::*;

fn spec(json: serde_json::Value) -> Spec {
    let mut base = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "mounts": [],
        "linux": {}
    });
    merge(&mut base, json);
    serde_json::from_value(base).expect("a valid spec")
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn v1() -> Vec<CgroupDir> {
    ["memory", "cpu,cpuacct", "name=systemd"]
        .iter()
        .map(|n| CgroupDir {
            name: n.to_string(),
            host_dir: PathBuf::from(format!("/sys/fs/cgroup/{n}/pod/c1")),
        })
        .collect()
}

fn v2() -> Vec<CgroupDir> {
    vec![CgroupDir {
        name: String::new(),
        host_dir: PathBuf::from("/sys/fs/cgroup/pod/c1"),
    }]
}

fn plan_of(json: serde_json::Value) -> Result<MountPlan> {
    plan_with(&spec(json), Path::new("/b"), &v1(), false, false)
}

fn mounts_of(mounts: serde_json::Value) -> Vec<MountStep> {
    plan_of(serde_json::json!({ "mounts": mounts }))
        .expect("a plan")
        .mounts
}

fn new_mount(source: &str, fstype: &str, flags: libc::c_ulong, data: Option<&str>) -> MountKind {
    MountKind::New {
        source: source.into(),
        fstype: fstype.into(),
        flags,
        data: data.map(String::from),
    }
}

/// The mounts containerd's default spec (`oci.WithDefaultSpec`) sends, in its order.
#[test]
fn containerds_default_mounts_keep_their_order_flags_and_data() {
    let m = mounts_of(serde_json::json!([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
    ]));
    let (nosuid, noexec, nodev) = (libc::MS_NOSUID, libc::MS_NOEXEC, libc::MS_NODEV);
    let want = [
        (
            "/proc",
            new_mount("proc", "proc", nosuid | noexec | nodev, None),
        ),
        (
            "/dev",
            new_mount(
                "tmpfs",
                "tmpfs",
                nosuid | libc::MS_STRICTATIME,
                Some("mode=755,size=65536k"),
            ),
        ),
        (
            "/dev/pts",
            new_mount(
                "devpts",
                "devpts",
                nosuid | noexec,
                Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
            ),
        ),
        (
            "/dev/shm",
            new_mount(
                "shm",
                "tmpfs",
                nosuid | noexec | nodev,
                Some("mode=1777,size=65536k"),
            ),
        ),
        (
            "/dev/mqueue",
            new_mount("mqueue", "mqueue", nosuid | noexec | nodev, None),
        ),
        (
            "/sys",
            new_mount(
                "sysfs",
                "sysfs",
                nosuid | noexec | nodev | libc::MS_RDONLY,
                None,
            ),
        ),
        (
            "/run",
            new_mount(
                "tmpfs",
                "tmpfs",
                nosuid | libc::MS_STRICTATIME,
                Some("mode=755,size=65536k"),
            ),
        ),
    ];
    assert_eq!(m.len(), want.len());
    for (i, (step, (dest, kind))) in m.iter().zip(want).enumerate() {
        assert_eq!(step.index, i);
        assert_eq!(step.dest, Path::new(dest));
        assert_eq!(step.what, format!("mounts[{dest}]"));
        assert_eq!(step.kind, kind, "{dest}");
        assert_eq!((step.propagation, step.rec), (0, None), "{dest}");
    }
}

#[test]
fn bind_flags_need_a_remount_and_rbind_is_recursive() {
    let m = mounts_of(serde_json::json!([
        {"destination": "/a", "type": "bind", "source": "/host/a", "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/b", "source": "/host/b", "options": ["bind"]},
        {"destination": "/c", "type": "none", "source": "data/c", "options": ["rbind", "rw", "rprivate"]},
        {"destination": "/etc/hosts", "type": "bind", "source": "/host/hosts", "options": ["bind", "ro", "rw"]}
    ]));
    assert_eq!(
        m[0].kind,
        MountKind::Bind {
            source: "/host/a".into(),
            recursive: true,
            remount: Some(Remount {
                set: libc::MS_RDONLY | libc::MS_NOSUID,
                keep_locked_except: 0
            }),
        }
    );
    // A plain bind: no remount, not recursive.
    assert_eq!(
        m[1].kind,
        MountKind::Bind {
            source: "/host/b".into(),
            recursive: false,
            remount: None
        }
    );
    // A relative source is the bundle's; `rw` only clears; propagation comes after.
    assert_eq!(
        m[2].kind,
        MountKind::Bind {
            source: "/b/data/c".into(),
            recursive: true,
            remount: None
        }
    );
    assert_eq!(m[2].propagation, libc::MS_PRIVATE | libc::MS_REC);
    // `ro` then `rw`: the last wins, nothing to remount.
    assert_eq!(
        m[3].kind,
        MountKind::Bind {
            source: "/host/hosts".into(),
            recursive: false,
            remount: None
        }
    );
}

#[test]
fn a_bind_remount_keeps_the_locked_flags_the_options_do_not_clear() {
    let m = mounts_of(serde_json::json!([
        {"destination": "/v", "type": "bind", "source": "/host/v", "options": ["rbind", "suid", "ro"]}
    ]));
    let MountKind::Bind {
        remount: Some(r), ..
    } = m[0].kind
    else {
        panic!("{:?}", m[0].kind)
    };
    assert_eq!(r.set, libc::MS_RDONLY);
    assert_eq!(r.keep_locked_except, libc::MS_NOSUID);
}

#[test]
fn recursive_attributes_are_planned_after_the_mount() {
    let m = mounts_of(serde_json::json!([
        {"destination": "/r", "type": "bind", "source": "/host/r", "options": ["rbind", "rro", "rnosuid"]},
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["rnoexec"]}
    ]));
    use crate::mountopts::{MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
    assert_eq!(
        m[0].rec,
        Some(RecAttr {
            set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
            clr: 0
        })
    );
    // rro is not the plain read-only flag: the bind itself needs no remount.
    assert!(matches!(m[0].kind, MountKind::Bind { remount: None, .. }));
    assert_eq!(
        m[1].rec,
        Some(RecAttr {
            set: MOUNT_ATTR_NOEXEC,
            clr: 0
        })
    );
    assert_eq!(m[1].kind, new_mount("tmpfs", "tmpfs", 0, None));
}

#[test]
fn a_mount_without_type_or_source_is_named_by_none() {
    let m = mounts_of(serde_json::json!([{"destination": "/x", "options": ["ro"]}]));
    assert_eq!(m[0].kind, new_mount("none", "none", libc::MS_RDONLY, None));
    let m = mounts_of(serde_json::json!([{"destination": "/y", "type": "tmpfs"}]));
    assert_eq!(m[0].kind, new_mount("tmpfs", "tmpfs", 0, None));
}

#[test]
fn refusals_name_the_mount() {
    let err = |mounts: serde_json::Value| {
        plan_of(serde_json::json!({ "mounts": mounts }))
            .unwrap_err()
            .to_string()
    };
    let e = err(serde_json::json!([{"destination": "rel", "type": "tmpfs"}]));
    assert!(e.contains("mounts[rel]") && e.contains("absolute"), "{e}");
    let e = err(serde_json::json!([{"destination": "/", "type": "tmpfs"}]));
    assert!(e.contains("mounts[/]") && e.contains("root.path"), "{e}");
    let e = err(serde_json::json!([{"destination": "/m", "type": "bind", "options": ["rbind"]}]));
    assert!(
        e.contains("mounts[/m]") && e.contains("without source"),
        "{e}"
    );
    // The first bad mount is the one named, before anything is mounted.
    let e = err(serde_json::json!([
        {"destination": "/ok", "type": "tmpfs"},
        {"destination": "bad1", "type": "tmpfs"},
        {"destination": "bad2", "type": "tmpfs"}
    ]));
    assert!(e.contains("bad1") && !e.contains("bad2"), "{e}");
    let e = plan_of(serde_json::json!({"linux": {"rootfsPropagation": "sideways"}}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("linux.rootfsPropagation"), "{e}");
}

#[test]
fn sys_fs_cgroup_takes_the_form_of_the_hierarchy() {
    let s = spec(serde_json::json!({"mounts": [
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    ]}));
    let flags = libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV | libc::MS_RELATIME;
    let ro = flags | libc::MS_RDONLY;
    let kind = |cgroups: &[CgroupDir], cgroupns| {
        plan_with(&s, Path::new("/b"), cgroups, cgroupns, false)
            .unwrap()
            .mounts[0]
            .kind
            .clone()
    };
    assert_eq!(
        kind(&v2(), true),
        MountKind::Cgroup(CgroupMount::Cgroup2 { flags: ro })
    );
    assert_eq!(
        kind(&v2(), false),
        MountKind::Cgroup(CgroupMount::BindV2 {
            host_dir: "/sys/fs/cgroup/pod/c1".into(),
            flags: ro
        })
    );
    // v1 (with or without a cgroup namespace): a tmpfs of the container's own
    // directories, named without `name=`.
    for ns in [false, true] {
        assert_eq!(
            kind(&v1(), ns),
            MountKind::Cgroup(CgroupMount::Tmpfs {
                dirs: vec![
                    ("memory".into(), "/sys/fs/cgroup/memory/pod/c1".into()),
                    (
                        "cpu,cpuacct".into(),
                        "/sys/fs/cgroup/cpu,cpuacct/pod/c1".into()
                    ),
                    (
                        "systemd".into(),
                        "/sys/fs/cgroup/name=systemd/pod/c1".into()
                    ),
                ],
                readonly: true
            })
        );
    }
    // A bind option on a cgroup mount is dropped; rw means a writable tmpfs.
    let s = spec(serde_json::json!({"mounts": [
        {"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup", "options": ["rbind", "rw"]}
    ]}));
    let p = plan_with(&s, Path::new("/b"), &v2(), true, false).unwrap();
    assert_eq!(
        p.mounts[0].kind,
        MountKind::Cgroup(CgroupMount::Cgroup2 { flags: 0 })
    );
    let p = plan_with(&s, Path::new("/b"), &v1(), false, false).unwrap();
    assert!(matches!(
        p.mounts[0].kind,
        MountKind::Cgroup(CgroupMount::Tmpfs {
            readonly: false,
            ..
        })
    ));
}

#[test]
fn readonly_paths_come_before_masked_ones_and_root_readonly_is_planned() {
    let p = plan_of(serde_json::json!({
        "root": {"path": "rootfs", "readonly": true},
        "linux": {
            "maskedPaths": ["/proc/kcore", "/proc/sys"],
            "readonlyPaths": ["/proc/sys", "/proc/bus"]
        }
    }))
    .unwrap();
    assert_eq!(
        p.paths,
        [
            PathStep::Readonly("/proc/sys".into()),
            PathStep::Readonly("/proc/bus".into()),
            PathStep::Mask("/proc/kcore".into()),
            PathStep::Mask("/proc/sys".into()),
        ]
    );
    assert!(p.root_readonly);
    assert!(!p.sysctl);
    let p =
        plan_of(serde_json::json!({"linux": {"sysctl": {"net.ipv4.ip_forward": "1"}}})).unwrap();
    assert!(p.sysctl && !p.root_readonly && p.paths.is_empty());
    let p = plan_of(serde_json::json!({"linux": {"sysctl": {}}})).unwrap();
    assert!(!p.sysctl);
}

#[test]
fn a_masked_directory_gets_a_tmpfs_anything_else_dev_null() {
    assert_eq!(mask_action(true), MaskAction::ReadonlyTmpfs);
    assert_eq!(mask_action(false), MaskAction::BindDevNull);
}

#[test]
fn rootfs_propagation_defaults_to_rslave() {
    let p = plan_of(serde_json::json!({})).unwrap();
    assert_eq!(p.propagation.setup, libc::MS_SLAVE | libc::MS_REC);
    assert_eq!(p.propagation.after_pivot, None);
    let p = plan_of(serde_json::json!({"linux": {"rootfsPropagation": "runbindable"}})).unwrap();
    assert_eq!(p.propagation.setup, libc::MS_PRIVATE | libc::MS_REC);
    assert_eq!(
        p.propagation.after_pivot,
        Some(libc::MS_UNBINDABLE | libc::MS_REC)
    );
}

#[test]
fn dev_gets_the_default_nodes_then_the_specs() {
    let s = serde_json::json!({"linux": {"devices": [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
        {"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 384, "uid": 1000, "gid": 1000}
    ]}});
    let p = plan_of(s.clone()).unwrap();
    let paths: Vec<_> = p
        .devices
        .iter()
        .map(|d| match d {
            DevStep::Node { path, .. } => path.display().to_string(),
            DevStep::BindHost(p) => format!("bind {}", p.display()),
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/dev/null",
            "/dev/random",
            "/dev/full",
            "/dev/tty",
            "/dev/zero",
            "/dev/urandom",
            "/dev/fuse",
            "/dev/loop0",
            "/dev/myfifo"
        ]
    );
    let node = |i: usize| match &p.devices[i] {
        DevStep::Node { node, .. } => *node,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        node(0),
        Node {
            kind: libc::S_IFCHR,
            major: 1,
            minor: 3,
            mode: 0o666,
            uid: 0,
            gid: 0
        }
    );
    assert_eq!((node(3).major, node(3).minor), (5, 0));
    assert_eq!(
        (node(6).kind, node(6).major, node(6).minor),
        (libc::S_IFCHR, 10, 229)
    );
    assert_eq!((node(7).kind, node(7).mode), (libc::S_IFBLK, 0o666));
    assert_eq!(
        node(8),
        Node {
            kind: libc::S_IFIFO,
            major: 0,
            minor: 0,
            mode: 0o600,
            uid: 1000,
            gid: 1000
        }
    );
    // In a user namespace mknod is refused: the host's nodes are bound, FIFOs still made.
    let p = plan_with(&spec(s), Path::new("/b"), &v1(), false, true).unwrap();
    assert_eq!(p.devices.len(), 9);
    assert_eq!(p.devices[0], DevStep::BindHost("/dev/null".into()));
    assert_eq!(p.devices[6], DevStep::BindHost("/dev/fuse".into()));
    assert!(matches!(&p.devices[8], DevStep::Node { node, .. } if node.kind == libc::S_IFIFO));
}

#[test]
fn a_device_of_type_a_is_refused_by_name() {
    let e = plan_of(serde_json::json!({"linux": {"devices": [
        {"path": "/dev/all", "type": "a", "major": 1, "minor": 1}
    ]}}));
    let e = e.unwrap_err().to_string();
    assert!(e.contains("linux.devices[/dev/all].type"), "{e}");
}
