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
    assert!(has(&a, &["--ext-mount-map", "/proc/kcore:/proc/kcore"]));
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
