use super::*;

struct Fake;

impl Probe for Fake {
    fn is_file(&self, path: &Path) -> bool {
        path == Path::new("/proc/kcore")
    }
    fn ns_inode(&self, path: &Path) -> Result<u64> {
        assert_eq!(path, Path::new("/var/run/netns/pod"));
        Ok(4026532000)
    }
}

fn spec(json: &str) -> Spec {
    serde_json::from_str(json).unwrap()
}

const SPEC: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
 "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/data","type":"none","source":"/srv/data","options":["rbind","ro"]},
  {"destination":"/etc/hosts","type":"bind","source":"/x/hosts"}],
 "linux":{"maskedPaths":["/proc/kcore","/proc/acpi"],
  "namespaces":[{"type":"pid"},{"type":"mount"},
   {"type":"network","path":"/var/run/netns/pod"}]}}"#;

fn args(opts: &DumpOpts) -> Vec<String> {
    dump_args(&spec(SPEC), Path::new("/b/rootfs"), 42, opts, &Fake)
        .unwrap()
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect()
}

fn has(a: &[String], pair: &[&str]) -> bool {
    a.windows(pair.len()).any(|w| w == pair)
}

#[test]
fn dump_names_tree_root_dirs_binds_masked_files_and_joined_netns() {
    let o = DumpOpts {
        image_dir: "/img".into(),
        work_dir: "/work".into(),
        ..Default::default()
    };
    let a = args(&o);
    assert_eq!(&a[..3], ["dump", "--tree", "42"]);
    assert!(has(&a, &["--root", "/b/rootfs"]));
    assert!(has(&a, &["--images-dir", "/img"]));
    assert!(has(&a, &["--work-dir", "/work"]));
    assert!(has(&a, &["--log-file", "dump.log"]));
    assert!(has(&a, &["--ext-mount-map", "/data:/data"]));
    assert!(has(&a, &["--ext-mount-map", "/etc/hosts:/etc/hosts"]));
    assert!(has(&a, &["--ext-mount-map", "/proc/kcore:/dev/null"]));
    assert!(
        !a.iter().any(|s| s.contains("/proc/acpi")),
        "a masked dir is a tmpfs CRIU dumps: {a:?}"
    );
    assert!(
        !a.iter().any(|s| s.starts_with("/proc:")),
        "proc is the container's own"
    );
    assert!(has(&a, &["--external", "net[4026532000]:extRootNetNS"]));
    assert!(a.contains(&"--manage-cgroups".to_string()));
    // exit is the default of DumpOpts: nothing left running.
    assert!(!a.contains(&"--leave-running".to_string()));
    assert!(
        !a.iter().any(|s| s.starts_with("/dev/null:")),
        "no user namespace: devices are mknod'ed"
    );
}

#[test]
fn containerd_options_map_to_criu_flags() {
    let o = DumpOpts {
        leave_running: true,
        tcp_established: true,
        ext_unix_sk: true,
        shell_job: true,
        file_locks: true,
        empty_ns: vec!["network".into()],
        cgroups_mode: "strict".into(),
        ..Default::default()
    };
    let o = DumpOpts {
        freeze_cgroup: Some("/sys/fs/cgroup/default/c1".into()),
        ..o
    };
    let a = args(&o);
    assert!(has(&a, &["--freeze-cgroup", "/sys/fs/cgroup/default/c1"]));
    for f in [
        "--leave-running",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--file-locks",
        "--manage-cgroups=strict",
    ] {
        assert!(a.contains(&f.to_string()), "{f} missing in {a:?}");
    }
    assert!(has(&a, &["--empty-ns", "net"]));
}

#[test]
fn bad_cgroup_mode_and_namespace_are_refused_by_name() {
    let bad = DumpOpts {
        cgroups_mode: "hard".into(),
        ..Default::default()
    };
    let e = dump_args(&spec(SPEC), Path::new("/r"), 1, &bad, &Fake)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cgroups_mode") && e.contains("\"hard\"") && e.contains("soft"),
        "{e}"
    );
    let bad = DumpOpts {
        empty_ns: vec!["cgroupz".into()],
        ..Default::default()
    };
    let e = dump_args(&spec(SPEC), Path::new("/r"), 1, &bad, &Fake)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("empty_namespaces") && e.contains("cgroupz"),
        "{e}"
    );
}

#[test]
fn user_namespace_devices_are_external_binds() {
    let s = spec(
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "linux":{"namespaces":[{"type":"user"},{"type":"mount"}],
        "devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229},
                   {"path":"/dev/fifo","type":"p"}]}}"#,
    );
    let a: Vec<String> = dump_args(&s, Path::new("/r"), 7, &DumpOpts::default(), &Fake)
        .unwrap()
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect();
    assert!(has(&a, &["--ext-mount-map", "/dev/null:/dev/null"]));
    assert!(has(&a, &["--ext-mount-map", "/dev/fuse:/dev/fuse"]));
    assert!(
        !a.iter().any(|s| s.contains("/dev/fifo")),
        "a FIFO is mknod'ed: {a:?}"
    );
}

#[test]
fn last_errors_keeps_the_last_three_error_lines() {
    let log = "(00.1) a\n(00.2) Error (criu/a.c:1): one\n(00.3) b\n\
               (00.4) Error (criu/b.c:2): two\n(00.5) Error (c.c:3): three\n\
               (00.6) Error (d.c:4): four\n(00.7) done\n";
    assert_eq!(
        last_errors(log),
        "(00.4) Error (criu/b.c:2): two | (00.5) Error (c.c:3): three | (00.6) Error (d.c:4): four"
    );
    assert_eq!(last_errors("x\ny\n"), "x | y");
}

#[test]
fn freezer_is_found_on_v2_and_v1() {
    assert_eq!(
        freezer_of("0::/default/c1\n", true),
        Some(PathBuf::from("/sys/fs/cgroup/default/c1"))
    );
    let v1 = "12:pids:/default/c1\n7:freezer:/default/c1\n0::/\n";
    assert_eq!(
        freezer_of(v1, false),
        Some(PathBuf::from("/sys/fs/cgroup/freezer/default/c1"))
    );
    assert_eq!(freezer_of("12:pids:/x\n", false), None);
}

fn restore(spec_json: &str, descriptors: &[&str]) -> Result<Plan> {
    let d: Vec<String> = descriptors.iter().map(|s| s.to_string()).collect();
    restore_args(
        &spec(spec_json),
        &Where {
            root: Path::new("/b/criu-root"),
            cgroup: Path::new("ns/c1"),
            pidfile: Path::new("/w/restore.pid"),
            descriptors: &d,
            first_fd: 7,
        },
        Path::new("/img"),
        Path::new("/w"),
    )
}

fn strings(p: &Plan) -> Vec<String> {
    p.args
        .iter()
        .map(|s| s.clone().into_string().unwrap())
        .collect()
}

#[test]
fn restore_maps_binds_masks_cgroup_stdio_and_joined_netns_back() {
    let p = restore(SPEC, &["/dev/null", "pipe:[123]", "pipe:[124]"]).unwrap();
    let a = strings(&p);
    assert_eq!(a[0], "restore");
    for pair in [
        ["--images-dir", "/img"],
        ["--work-dir", "/w"],
        ["--log-file", "restore.log"],
        ["--root", "/b/criu-root"],
        ["--pidfile", "/w/restore.pid"],
        ["--cgroup-root", "/ns/c1"],
        // Binds by destination to their source on this host.
        ["--ext-mount-map", "/data:/srv/data"],
        ["--ext-mount-map", "/etc/hosts:/x/hosts"],
        // Masked files were dumped under the key /dev/null.
        ["--ext-mount-map", "/dev/null:/dev/null"],
        // The joined network namespace is inherited on the first free fd.
        ["--inherit-fd", "fd[7]:extRootNetNS"],
        // stdout and stderr were pipes: criu's own fds 1 and 2 (the new pipes) replace them.
        ["--inherit-fd", "fd[1]:pipe:[123]"],
        ["--inherit-fd", "fd[2]:pipe:[124]"],
    ] {
        assert!(has(&a, &pair), "{pair:?} missing in {a:?}");
    }
    for f in [
        "--restore-detached",
        "--restore-sibling",
        "--leave-stopped",
        "--manage-cgroups",
    ] {
        assert!(a.contains(&f.to_string()), "{f} missing in {a:?}");
    }
    assert!(
        !a.iter().any(|s| s.contains("fd[0]")),
        "stdin was /dev/null: {a:?}"
    );
    assert!(
        !a.iter().any(|s| s.starts_with("/proc:")),
        "proc is the container's own"
    );
    assert_eq!(p.inherit, vec![(7, PathBuf::from("/var/run/netns/pod"))]);
}

#[test]
fn restore_joins_ipc_and_uts_by_path_and_maps_userns_devices() {
    let p = restore(
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "linux":{"namespaces":[{"type":"user"},{"type":"mount"},
          {"type":"ipc","path":"/proc/9/ns/ipc"},{"type":"uts","path":"/proc/9/ns/uts"},
          {"type":"pid","path":"/proc/9/ns/pid"}],
          "devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]}}"#,
        &[],
    )
    .unwrap();
    let a = strings(&p);
    assert!(has(&a, &["--join-ns", "ipc:/proc/9/ns/ipc"]), "{a:?}");
    assert!(has(&a, &["--join-ns", "uts:/proc/9/ns/uts"]), "{a:?}");
    assert!(has(&a, &["--inherit-fd", "fd[7]:extRootPidNS"]), "{a:?}");
    assert!(
        has(&a, &["--ext-mount-map", "/dev/null:/dev/null"]),
        "{a:?}"
    );
    assert!(
        has(&a, &["--ext-mount-map", "/dev/fuse:/dev/fuse"]),
        "{a:?}"
    );
    assert!(!a.iter().any(|s| s.starts_with("fd[") && s.contains("pipe")));
}

#[test]
fn restore_refuses_terminal_hooks_and_unjoinable_namespaces_by_name() {
    let cases = [
        (
            r#"{"ociVersion":"1.0.2","process":{"terminal":true,"cwd":"/","user":{"uid":0,"gid":0}},"root":{"path":"r"}}"#,
            "process.terminal",
        ),
        (
            r#"{"ociVersion":"1.0.2","root":{"path":"r"},"hooks":{"createRuntime":[{"path":"/bin/true"}]}}"#,
            "hooks.createRuntime",
        ),
        (
            r#"{"ociVersion":"1.0.2","root":{"path":"r"},"hooks":{"prestart":[{"path":"/bin/true"}]}}"#,
            "hooks.prestart",
        ),
        (
            r#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"namespaces":[{"type":"cgroup","path":"/proc/9/ns/cgroup"}]}}"#,
            "linux.namespaces[cgroup].path",
        ),
        (
            r#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"namespaces":[{"type":"user","path":"/proc/9/ns/user"}]}}"#,
            "linux.namespaces[user].path",
        ),
    ];
    for (json, field) in cases {
        let e = restore(json, &[]).unwrap_err().to_string();
        assert!(e.contains(field) && e.contains("runc.v2"), "{field}: {e}");
    }
    // Poststart and poststop hooks run as for a created container: no refusal.
    restore(
        r#"{"ociVersion":"1.0.2","root":{"path":"r"},"hooks":{"poststart":[{"path":"/bin/true"}]}}"#,
        &[],
    )
    .unwrap();
}

#[test]
fn descriptors_are_runcs_json_list() {
    assert_eq!(
        parse_descriptors(r#"["/dev/null","pipe:[5]","pipe:[6]"]"#).unwrap(),
        ["/dev/null", "pipe:[5]", "pipe:[6]"]
    );
    assert!(parse_descriptors("{}").is_err());
}

/// With a user namespace the default device nodes and the spec's (FIFOs excepted:
/// those are made, not bound) are external mounts, on dump and on restore alike;
/// without one there are none.
#[test]
fn userns_device_binds_are_external_mounts() {
    let userns = spec(
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
         "linux":{"namespaces":[{"type":"user"},{"type":"mount"}],
          "devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229},
                     {"path":"/dev/pipe","type":"p"}]}}"#,
    );
    let paths = userns_device_paths(userns.linux().as_ref());
    let want: Vec<std::path::PathBuf> =
        ["null", "zero", "full", "tty", "random", "urandom", "fuse"]
            .iter()
            .map(|d| Path::new("/dev").join(d))
            .collect();
    assert_eq!(paths, want);
    assert!(userns_device_paths(spec(SPEC).linux().as_ref()).is_empty());
}
