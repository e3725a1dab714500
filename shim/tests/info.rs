//! `-info` (containerd 2.x's runtime introspection), `check` (the host
//! diagnosis) and the panic hook, each through the binary as its caller runs it.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::*;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use containerd_shim_protos::types::introspection::RuntimeInfo;

fn shim() -> Command {
    Command::new(repo().join("target/release/containerd-shim-rust-v1"))
}

fn info_with(stdin: &[u8]) -> RuntimeInfo {
    let mut c = shim()
        .arg("-info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "-info: {}", text(&o.stderr));
    RuntimeInfo::parse_from_bytes(&o.stdout).expect("-info writes a RuntimeInfo protobuf")
}

/// As containerd 2.x runs it: options on stdin, RuntimeInfo on stdout, with
/// the OCI features document as JSON in an Any of runtime-spec's type URL.
#[test]
fn info_answers_runtime_info_with_features() {
    let info = info_with(&[]);
    assert_eq!(info.name, RUNTIME);
    assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
    assert!(info.options.is_none());
    assert_eq!(
        info.features.type_url,
        "types.containerd.io/opencontainers/runtime-spec/1/features/Features"
    );
    let f: oci_spec::runtime::Features = serde_json::from_slice(&info.features.value).unwrap();
    let linux = f.linux().as_ref().unwrap();
    assert!(linux
        .namespaces()
        .as_ref()
        .unwrap()
        .contains(&oci_spec::runtime::LinuxNamespaceType::User));
    assert!(!linux
        .seccomp()
        .as_ref()
        .unwrap()
        .archs()
        .as_ref()
        .unwrap()
        .is_empty());
    // The options come back, as the runc shim echoes them.
    let opts = Any {
        type_url: "containerd.runc.v1.Options".into(),
        value: RuncOptions {
            io_uid: 7,
            ..Default::default()
        }
        .write_to_bytes()
        .unwrap(),
        ..Default::default()
    };
    let info = info_with(&opts.write_to_bytes().unwrap());
    assert_eq!(info.options.type_url, "containerd.runc.v1.Options");
    assert_eq!(
        RuncOptions::parse_from_bytes(&info.options.value)
            .unwrap()
            .io_uid,
        7
    );
}

/// containerd 2.1's introspection (`ctr plugins inspect-runtime`, the
/// PluginInfo API the CRI uses) shows our runtime and its features.
/// containerd 1.x has no runtime introspection: nothing to ask there.
#[test]
fn containerd_introspection_shows_our_features() {
    needs_root!();
    if env().version.starts_with("1.") {
        eprintln!("containerd {} has no runtime introspection", env().version);
        return;
    }
    let o = run(&["plugins", "inspect-runtime", "--runtime", RUNTIME]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect-runtime prints JSON");
    assert_eq!(v["Name"], RUNTIME, "{out}");
    let features = &v["Features"];
    assert_eq!(features["ociVersionMin"], "1.0.0", "{out}");
    assert!(
        features["linux"]["namespaces"]
            .as_array()
            .is_some_and(|n| n.iter().any(|x| x == "user")),
        "{out}"
    );
    assert_eq!(
        features["linux"]["mountExtensions"]["idmap"]["enabled"],
        true
    );
}

/// `check` on this host: one `ok|warn|fail name: detail` line per check, the
/// host's cgroup mode named, exit 0 (containers run here).
#[test]
fn check_diagnoses_this_host() {
    needs_root!();
    let config = env().state.parent().unwrap().join("config.toml");
    let o = shim()
        .args(["check", "-containerd-config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    let (summary, checks) = lines.split_last().unwrap();
    assert!(summary.contains(" 0 fail"), "{summary}");
    for l in checks {
        let (level, rest) = l.split_once(' ').unwrap();
        let (name, _) = rest
            .split_once(": ")
            .unwrap_or_else(|| panic!("no name: {l}"));
        assert!(["ok", "warn", "fail"].contains(&level), "{l}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'),
            "{l}"
        );
    }
    for name in [
        "clone3",
        "pidfd_open",
        "openat2",
        "mount_setattr",
        "idmapped-mounts",
        "bpf-cgroup-device",
        "seccomp-notify",
        "time-namespace",
        "systemd",
        "criu",
        "containerd-config",
        "cgroup-mode",
    ] {
        assert!(
            checks
                .iter()
                .any(|l| l.split(' ').nth(1) == Some(&format!("{name}:"))),
            "no {name} line: {out}"
        );
    }
    // The mode as the kernel shows it: /sys/fs/cgroup's own filesystem type.
    let fstype = text(
        &Command::new("stat")
            .args(["-f", "-c", "%T", "/sys/fs/cgroup"])
            .output()
            .unwrap()
            .stdout,
    );
    let expected = match fstype.trim() {
        "cgroup2fs" => "v2",
        _ if std::path::Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() => "hybrid",
        _ => "v1",
    };
    let mode = checks
        .iter()
        .find(|l| l.starts_with("ok cgroup-mode:"))
        .unwrap();
    assert!(mode.contains(expected), "{mode} (expected {expected})");
    let cfg = checks
        .iter()
        .find(|l| l.contains(" containerd-config:"))
        .unwrap();
    assert!(cfg.contains(config.to_str().unwrap()), "{cfg}");
}

/// The panic hook, through a build with the `test-panic` feature (scripts/test
/// makes it; the shipped binary has no such path): the message and location
/// reach stderr of `start`, and the shim's log FIFO when serving.
#[test]
fn panic_hook_writes_to_stderr_and_the_log() {
    needs_root!();
    let bin = std::env::var("RSHIM_TEST_PANIC_BIN").expect(
        "RSHIM_TEST_PANIC_BIN is not set: scripts/test builds the shim with --features test-panic and sets it",
    );
    let dir = std::env::temp_dir().join(format!("rshim-panic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let o = Command::new(&bin)
        .args([
            "-namespace",
            "x",
            "-id",
            "p",
            "-address",
            "/nonexistent",
            "start",
        ])
        .current_dir(&dir)
        .env("RSHIM_TEST_PANIC", "start")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("panic in thread main at shim/src/start.rs:")
            && err.contains("test-panic at start"),
        "{err}"
    );

    // Serving: the log FIFO containerd would read.
    let log = dir.join("log");
    let c = std::ffi::CString::new(log.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true) // O_RDWR: no EOF before the shim opens it
        .open(&log)
        .unwrap();
    let o = Command::new(&bin)
        .args(["-namespace", "x", "-id", "p", "-address", "/nonexistent"])
        .current_dir(&dir)
        .env("RSHIM_TEST_PANIC", "serve")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETFL on an fd we own: read what is buffered without blocking.
    unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut buf = vec![0u8; 65536];
    let n = (&reader).read(&mut buf).unwrap_or(0);
    let logged = text(&buf[..n]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        logged.contains("level=error")
            && logged.contains("shim/src/server.rs:")
            && logged.contains("test-panic at serve"),
        "log: {logged:?}, stderr: {}",
        text(&o.stderr)
    );
}
