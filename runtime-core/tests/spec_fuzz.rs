//! Fuzzing of what runs before any syscall of a create or an exec: spec
//! loading (`spec::load`), refusal (`spec::check_supported`,
//! `spec::check_process`), `spec::rootfs` and `spec::cgroup_path`.
//! Arbitrary mutations of a valid config.json (values replaced by any JSON,
//! fields removed or added, the text cut or its bytes changed) must give an
//! `Ok` or an error, never a panic. A fixed case count keeps it a few seconds
//! of `cargo test`; no root needed.

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{json, Value};

/// A valid config.json, like the one `ctr` writes for a busybox image.
fn valid() -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0, "additionalGids": [10], "umask": 18},
            "args": ["sh", "-c", "echo hi"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL"],
                "effective": ["CAP_CHOWN", "CAP_KILL"],
                "permitted": ["CAP_CHOWN", "CAP_KILL"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true,
            "oomScoreAdj": 0
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "fuzz",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/data", "type": "bind", "source": "/tmp",
             "options": ["rbind", "rshared", "ro"]}
        ],
        "hooks": {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]},
        "annotations": {"a": "b"},
        "linux": {
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}],
                "memory": {"limit": 104857600, "swap": 209715200},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
                "pids": {"limit": 64},
                "unified": {"memory.high": "max"}
            },
            "cgroupsPath": "/fuzz/c1",
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}, {"type": "network"}, {"type": "user"}
            ],
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
            "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]},
            "rootfsPropagation": "rslave",
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
            "personality": {"domain": "LINUX"}
        }
    })
}

/// Field names of the runtime spec (and a few near misses) for added keys.
const NAMES: &[&str] = &[
    "uid",
    "gid",
    "additionalGids",
    "args",
    "env",
    "cwd",
    "terminal",
    "user",
    "path",
    "type",
    "options",
    "source",
    "destination",
    "rootfsPropagation",
    "cgroupsPath",
    "namespaces",
    "uidMappings",
    "gidMappings",
    "size",
    "hostID",
    "containerID",
    "limit",
    "solaris",
    "windows",
    "vm",
    "zos",
    "mountLabel",
    "intelRdt",
    "memoryPolicy",
    "netDevices",
    "username",
    "commandLine",
    "apparmorProfile",
    "selinuxLabel",
    "timeOffsets",
    "rlimits",
    "soft",
    "hard",
    "seccomp",
    "hooks",
    "timeout",
    "personality",
    "",
    "\u{0}",
    "ＵＩＤ",
];

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just(u32::MAX as u64),
            Just(u32::MAX as u64 + 1),
            Just(i32::MAX as u64 + 1),
            Just(0u64)
        ]
        .prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "/",
            "..",
            "../../etc",
            "/proc/self/exe",
            "rshared",
            "runbindable",
            "r",
            "slave:x",
            "\u{0}",
            "a:b:c",
            "SCMP_ACT_KILL",
            "mount",
            "user",
            "RLIMIT_STACK",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(NAMES), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// One change at the node that `path` (indices, taken modulo each node's
/// size) leads to.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Value),
    Remove,
    Add(&'static str, Value),
}

fn edit() -> impl Strategy<Value = (Vec<usize>, Edit)> {
    let e = prop_oneof![
        any_json().prop_map(Edit::Replace),
        Just(Edit::Remove),
        (prop::sample::select(NAMES), any_json()).prop_map(|(k, v)| Edit::Add(k, v)),
    ];
    (prop::collection::vec(any::<usize>(), 0..6), e)
}

fn apply(v: &mut Value, path: &[usize], e: Edit) {
    let Some((&first, rest)) = path.split_first() else {
        match e {
            Edit::Replace(n) => *v = n,
            Edit::Add(k, n) => {
                if let Value::Object(m) = v {
                    m.insert(k.to_string(), n);
                }
            }
            Edit::Remove => *v = Value::Null,
        }
        return;
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(first % m.len()).unwrap().clone();
            if rest.is_empty() && matches!(e, Edit::Remove) {
                m.remove(&key);
            } else {
                apply(m.get_mut(&key).unwrap(), rest, e);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = first % a.len();
            if rest.is_empty() && matches!(e, Edit::Remove) {
                a.remove(i);
            } else {
                apply(&mut a[i], rest, e);
            }
        }
        _ => apply(v, &[], e),
    }
}

/// A bundle dir of this process and test, with an empty rootfs.
fn bundle(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rshim-spec-fuzz-{}-{test}", std::process::id()));
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    dir
}

/// Everything that runs before the first syscall of a create, and the exec check.
fn validate(test: &str, config: &[u8]) {
    let dir = bundle(test);
    std::fs::write(dir.join("config.json"), config).unwrap();
    if let Ok(spec) = runtime_core::spec::load(&dir) {
        let _ = runtime_core::spec::check_supported(&spec);
        let _ = runtime_core::spec::rootfs(&dir, &spec);
        let _ = runtime_core::spec::cgroup_path(&spec, "fuzz");
        if let Some(p) = spec.process() {
            let _ = runtime_core::spec::check_process(p, "exec process");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_valid_config_is_accepted() {
    let dir = bundle("valid");
    std::fs::write(dir.join("config.json"), valid().to_string()).unwrap();
    let spec = runtime_core::spec::load(&dir).unwrap();
    runtime_core::spec::check_supported(&spec).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn json_mutations_never_panic(edits in prop::collection::vec(edit(), 1..8)) {
        let mut v = valid();
        for (path, e) in edits {
            apply(&mut v, &path, e);
        }
        validate("json", v.to_string().as_bytes());
    }

    #[test]
    fn byte_mutations_never_panic(
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let mut text = valid().to_string().into_bytes();
        for (at, b) in flips {
            let i = at.index(text.len());
            text[i] = b;
        }
        text.truncate(cut.index(text.len() + 1));
        validate("bytes", &text);
    }
}
