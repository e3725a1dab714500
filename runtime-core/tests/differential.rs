//! Differential tests against runc (Debian's runc 1.1.5 at /usr/sbin/runc):
//! the same bundle is run by `runc run` and by runtime-core, and what the
//! process sees from inside (tests/differential/probe.sh) is compared section
//! by section, after normalising what must differ (mount ids, paths of the
//! per-runtime copies, cgroup paths, namespace inode numbers).
//!
//! Every difference must be listed in runtime-core/DIFFERENCES.md with its
//! reason; an unlisted one fails the test, and so does a listed one that no
//! case shows any more (the file must stay true). Needs root.
//!
//! Own harness (`harness = false`): the test binary doubles as the init helper.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as PStdio};

use runtime_core::{Container, CreateOpts, Stdio};
use serde_json::{json, Value};

const RUNC: &str = "/usr/sbin/runc";
const PROBE: &str = include_str!("differential/probe.sh");
/// Parent of every cgroup this run makes (its own: removed at the end).
fn cg_parent() -> String {
    format!("rshim-core-diff-{}", std::process::id())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("rshim-diff-{}", std::process::id()))
}

/// One bundle, run by both runtimes.
struct Case {
    name: &'static str,
    /// Changes to the `runc spec`-like config of test-bundles/gen; gets the
    /// runtime's own directory (for host-side mount sources).
    edit: fn(&mut Value, &Path),
    /// Shell run after the common probe (case-specific behaviour).
    extra: &'static str,
    /// Host-side files the case needs under its runtime directory.
    prepare: fn(&Path),
    /// Probe an extra process (`runc exec` / `Container::exec`, the container's
    /// own process settings with the probe as args) instead of the init.
    exec: bool,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Runtime {
    Runc,
    Ours,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Ours => "ours",
        }
    }
}

/// A private copy of the generated rootfs (mount targets get created in it).
fn copy_rootfs(dst: &Path) {
    let src = repo().join("test-bundles/out/rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {}", src.display());
}

/// `<scratch>/<case>/<runtime>/{bundle,rootfs,host}` with the case's config.
fn make_bundle(case: &Case, rt: Runtime) -> (PathBuf, String) {
    let dir = scratch().join(case.name).join(rt.name());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("host")).unwrap();
    let bundle = dir.join("bundle");
    let script = format!("{PROBE}\n{}", case.extra);
    let args: Vec<&str> = if case.exec {
        vec!["sleep", "1000"]
    } else {
        vec!["sh", "-c", &script]
    };
    let st = Command::new(repo().join("test-bundles/gen"))
        .arg("bundle")
        .arg(&bundle)
        .arg("--")
        .args(&args)
        .stdout(PStdio::null())
        .status()
        .expect("run test-bundles/gen");
    assert!(st.success(), "test-bundles/gen bundle failed");
    copy_rootfs(&dir.join("rootfs"));
    (case.prepare)(&dir.join("host"));
    let cfg = bundle.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["root"]["path"] = json!(dir.join("rootfs"));
    let id = format!("{}-{}-{}", case.name, rt.name(), std::process::id());
    v["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", cg_parent()));
    (case.edit)(&mut v, &dir);
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    (bundle, id)
}

fn read_all(fd: OwnedFd) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        std::fs::File::from(fd).read_to_string(&mut s).unwrap();
        s
    })
}

fn run_ours(bundle: &Path, id: &str) -> Result<String, String> {
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let (err_r, err_w) = nix::unistd::pipe().unwrap();
    let mut c = Container::create(CreateOpts {
        exec_fifo: None,
        id,
        bundle,
        stdio: Stdio {
            stdin: None,
            stdout: Some(out_w),
            stderr: Some(err_w),
        },
    })
    .map_err(|e| format!("create: {e}"))?;
    let (o, e) = (read_all(out_r), read_all(err_r));
    let started = c.start();
    let status = c.init().reap_blocking();
    c.delete().map_err(|e| format!("delete: {e}"))?;
    started.map_err(|e| format!("start: {e}"))?;
    let (out, err) = (o.join().unwrap(), e.join().unwrap());
    match status {
        Ok(s) if s.0 == 0 => Ok(out),
        other => Err(format!("exit {other:?}: {err}{out}")),
    }
}

/// The container's process with the probe as its args (what `runc exec ID sh -c …` runs).
fn exec_process(bundle: &Path, script: &str) -> oci_spec::runtime::Process {
    let spec = runtime_core::spec::load(bundle).unwrap();
    let mut p = spec.process().clone().unwrap();
    p.set_args(Some(vec!["sh".into(), "-c".into(), script.into()]));
    p
}

fn exec_ours(bundle: &Path, id: &str, script: &str) -> Result<String, String> {
    let mut c = Container::create(CreateOpts {
        exec_fifo: None,
        id,
        bundle,
        stdio: Stdio::default(),
    })
    .map_err(|e| format!("create: {e}"))?;
    let r = c.start().map_err(|e| format!("start: {e}")).and_then(|()| {
        let (out_r, out_w) = nix::unistd::pipe().unwrap();
        let o = read_all(out_r);
        let (pidfd, _) = c
            .exec(
                &exec_process(bundle, script),
                Stdio {
                    stdin: None,
                    stdout: Some(out_w),
                    stderr: None,
                },
            )
            .map_err(|e| format!("exec: {e}"))?;
        let st = pidfd.reap_blocking().map_err(|e| e.to_string())?;
        let out = o.join().unwrap();
        if st.0 != 0 {
            return Err(format!("exec exit {}: {out}", st.0));
        }
        Ok(out)
    });
    let _ = c.kill(libc::SIGKILL, false);
    let _ = c.init().reap_blocking();
    c.delete().map_err(|e| format!("delete: {e}"))?;
    r
}

fn exec_runc(bundle: &Path, id: &str, script: &str) -> Result<String, String> {
    let root = scratch().join("runc-root");
    let runc = |args: &[&str]| {
        Command::new(RUNC)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(PStdio::null())
            .stderr(PStdio::piped())
            .output()
            .map_err(|e| format!("spawn {RUNC}: {e}"))
    };
    let ok = |what: &str, o: std::process::Output| {
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(format!(
                "runc {what}: {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ))
        }
    };
    // runc create hands its stdio to the init, which outlives it: /dev/null.
    let created = Command::new(RUNC)
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(PStdio::null())
        .stdout(PStdio::null())
        .stderr(PStdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    let r = if !created.success() {
        Err(format!("runc create: {created}"))
    } else {
        runc(&["start", id])
            .and_then(|o| ok("start", o))
            .and_then(|_| {
                // As containerd's runc shim execs: the process as JSON.
                let f = bundle.with_file_name("exec-process.json");
                let p = serde_json::to_vec(&exec_process(bundle, script)).unwrap();
                std::fs::write(&f, p).map_err(|e| e.to_string())?;
                runc(&["exec", "--process", f.to_str().unwrap(), id])
            })
            .and_then(|o| ok("exec", o))
    };
    let _ = runc(&["delete", "--force", id]);
    r
}

fn run_runc(bundle: &Path, id: &str) -> Result<String, String> {
    let root = scratch().join("runc-root");
    let out = Command::new(RUNC)
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(PStdio::null())
        .output()
        .map_err(|e| format!("spawn {RUNC}: {e}"))?;
    // `run` deletes the container when it exits; make sure of it.
    let _ = Command::new(RUNC)
        .arg("--root")
        .arg(&root)
        .args(["delete", "--force", id])
        .stderr(PStdio::null())
        .status();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "runc run: {}: {}{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}

/// What must differ between two runs, replaced by stable names.
struct Norm {
    subs: Vec<(String, String)>,
    host_ns: Vec<String>,
}

impl Norm {
    fn new(rt_dir: &Path, id: &str) -> Norm {
        let host_ns = std::fs::read_dir("/proc/self/ns")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        Norm {
            subs: vec![
                (format!("/{}/{id}", cg_parent()), "<CG>".into()),
                (rt_dir.display().to_string(), "<DIR>".into()),
                (id.to_string(), "<ID>".into()),
            ],
            host_ns,
        }
    }

    fn line(&self, section: &str, l: &str) -> String {
        // Runs of blanks (column padding, tabs) as one space: layout is not behaviour.
        let mut s = l.split_whitespace().collect::<Vec<_>>().join(" ");
        for (from, to) in &self.subs {
            s = s.replace(from, to);
        }
        match section {
            "mountinfo" => mountinfo_line(&s),
            "namespaces" => match s.split_once(' ') {
                Some((n, link)) if link.contains(":[") => {
                    let kind = if self.host_ns.iter().any(|h| h == link) {
                        "host"
                    } else {
                        "new"
                    };
                    format!("{n} {kind}")
                }
                _ => s,
            },
            _ => s,
        }
    }

    /// Sections of the probe's output, normalised.
    fn sections(&self, out: &str) -> BTreeMap<String, Vec<String>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut cur = String::from("preamble");
        for l in out.lines() {
            if let Some(name) = l.strip_prefix("== ") {
                cur = name.to_string();
                map.entry(cur.clone()).or_default();
                continue;
            }
            let n = self.line(&cur, l);
            map.entry(cur.clone()).or_default().push(n);
        }
        map
    }
}

/// `id parent maj:min root mountpoint opts [optional…] - type source superopts`
/// without the numbers that differ from mount to mount (ids, device minors of
/// anonymous filesystems, peer group ids).
fn mountinfo_line(l: &str) -> String {
    let Some((pre, post)) = l.split_once(" - ") else {
        return l.to_string();
    };
    let f: Vec<&str> = pre.split(' ').collect();
    if f.len() < 6 {
        return l.to_string();
    }
    let optional: Vec<&str> = f[6..]
        .iter()
        .map(|o| o.split(':').next().unwrap_or(o))
        .collect();
    let mut s = format!("{} {} {}", f[3], f[4], f[5]);
    if !optional.is_empty() {
        s.push(' ');
        s.push_str(&optional.join(","));
    }
    format!("{s} - {post}")
}

/// Line diff (longest common subsequence): (runc-only, ours-only), in order.
fn diff(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let (n, m) = (a.len(), b.len());
    let mut t = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i][j] = if a[i] == b[j] {
                t[i + 1][j + 1] + 1
            } else {
                t[i + 1][j].max(t[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || t[i][j + 1] >= t[i + 1][j]) {
            only_b.push(b[j].clone());
            j += 1;
        } else {
            only_a.push(a[i].clone());
            i += 1;
        }
    }
    (only_a, only_b)
}

/// One documented difference: `-CASE SECTION: line` (runc) or `+…` (ours).
struct Allowed {
    runc: bool,
    case: String,
    section: String,
    pattern: String,
    heading: String,
    used: bool,
}

/// The ```diff blocks of DIFFERENCES.md.
fn allowed_differences() -> Vec<Allowed> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("DIFFERENCES.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let (mut heading, mut in_block) = (String::new(), false);
    for l in text.lines() {
        if let Some(h) = l.strip_prefix("## ") {
            heading = h.to_string();
        } else if l.starts_with("```diff") {
            in_block = true;
        } else if l.starts_with("```") {
            in_block = false;
        } else if in_block {
            let (runc, rest) = match l.split_at_checked(1) {
                Some(("-", r)) => (true, r),
                Some(("+", r)) => (false, r),
                _ => panic!("DIFFERENCES.md: diff line must start with - or +: {l}"),
            };
            let (scope, pattern) = rest
                .split_once(": ")
                .unwrap_or_else(|| panic!("DIFFERENCES.md: want `CASE SECTION: line`: {l}"));
            let (case, section) = scope
                .split_once(' ')
                .unwrap_or_else(|| panic!("DIFFERENCES.md: want `CASE SECTION: line`: {l}"));
            out.push(Allowed {
                runc,
                case: case.into(),
                section: section.into(),
                pattern: pattern.into(),
                heading: heading.clone(),
                used: false,
            });
        }
    }
    out
}

/// `*` matches any text; everything else literally.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || !s[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// Runs one case by both runtimes; returns the undocumented differences.
fn run_case(case: &Case, allowed: &mut [Allowed]) -> Result<Vec<String>, String> {
    let mut outputs = Vec::new();
    for rt in [Runtime::Runc, Runtime::Ours] {
        let (bundle, id) = make_bundle(case, rt);
        let script = format!("{PROBE}\n{}", case.extra);
        let out = match (rt, case.exec) {
            (Runtime::Runc, false) => run_runc(&bundle, &id),
            (Runtime::Ours, false) => run_ours(&bundle, &id),
            (Runtime::Runc, true) => exec_runc(&bundle, &id, &script),
            (Runtime::Ours, true) => exec_ours(&bundle, &id, &script),
        }
        .map_err(|e| format!("{}: {e}", rt.name()))?;
        let norm = Norm::new(bundle.parent().unwrap(), &id);
        outputs.push(norm.sections(&out));
    }
    let (runc, ours) = (&outputs[0], &outputs[1]);
    // The probe really ran to the end in both: every section it prints is there and
    // not empty (a comparison of two empty outputs would prove nothing).
    let script = format!("{PROBE}\n{}", case.extra);
    for sec in script.lines().filter_map(|l| l.strip_prefix("s ")) {
        for (rt, out) in [("runc", runc), ("ours", ours)] {
            if out.get(sec).is_none_or(|l| l.is_empty()) {
                return Err(format!("{rt}: probe section {sec} missing or empty"));
            }
        }
    }
    let mut bad = Vec::new();
    let sections: std::collections::BTreeSet<&String> = runc.keys().chain(ours.keys()).collect();
    let empty = Vec::new();
    for sec in sections {
        let (a, b) = diff(
            runc.get(sec).unwrap_or(&empty),
            ours.get(sec).unwrap_or(&empty),
        );
        for (is_runc, lines) in [(true, a), (false, b)] {
            for l in lines {
                let hit = allowed.iter_mut().find(|d| {
                    d.runc == is_runc
                        && (d.case == "*" || d.case == case.name)
                        && d.section == *sec
                        && glob(&d.pattern, &l)
                });
                match hit {
                    Some(d) => d.used = true,
                    None => bad.push(format!(
                        "{}{} {sec}: {l}",
                        if is_runc { "-" } else { "+" },
                        case.name
                    )),
                }
            }
        }
    }
    Ok(bad)
}

fn no_prepare(_: &Path) {}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "exec-default",
            edit: |_, _| {},
            extra: "",
            prepare: no_prepare,
            exec: true,
        },
        Case {
            name: "exec-identity",
            edit: |v, _| identity(v, true),
            extra: IDENTITY_PROBE,
            prepare: no_prepare,
            exec: true,
        },
        Case {
            name: "exec-userns",
            edit: userns,
            extra: "",
            prepare: no_prepare,
            exec: true,
        },
        Case {
            name: "default",
            edit: |_, _| {},
            extra: "",
            prepare: no_prepare,
            exec: false,
        },
        Case {
            name: "identity",
            edit: |v, _| identity(v, true),
            extra: IDENTITY_PROBE,
            prepare: no_prepare,
            exec: false,
        },
        Case {
            name: "identity-root-no-nnp",
            edit: |v, _| {
                identity(v, false);
                v["process"]["user"] = json!({"uid": 0, "gid": 0, "additionalGids": [10]});
            },
            extra: IDENTITY_PROBE,
            prepare: no_prepare,
            exec: false,
        },
        Case {
            name: "mounts",
            edit: mounts,
            extra: MOUNTS_PROBE,
            prepare: |host| {
                for d in ["src/sub", "src/masked-dir", "src/ro-sub", "shared"] {
                    std::fs::create_dir_all(host.join(d)).unwrap();
                }
                std::fs::write(host.join("src/masked-dir/secret"), "s").unwrap();
                std::fs::write(host.join("src/masked-file"), "secret").unwrap();
                std::fs::write(host.join("file"), "file contents\n").unwrap();
            },
            exec: false,
        },
        Case {
            name: "resources",
            edit: resources,
            extra: "",
            prepare: no_prepare,
            exec: false,
        },
        Case {
            name: "userns",
            edit: userns,
            extra:
                "s idmaps\ncat /proc/self/uid_map /proc/self/gid_map; cat /proc/self/setgroups\n",
            prepare: no_prepare,
            exec: false,
        },
        Case {
            name: "namespaces-sysctl",
            edit: |v, _| {
                v["linux"]["sysctl"] = json!({
                    "net.ipv4.ip_forward": "1",
                    "net.core.somaxconn": "999",
                    "kernel.shmmni": "1234",
                    "kernel.msgmax": "4321",
                    "fs.mqueue.msg_max": "20",
                });
                v["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "cgroup"}));
            },
            extra: "",
            prepare: no_prepare,
            exec: false,
        },
    ]
}

fn userns(v: &mut Value, _: &Path) {
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
}

const IDENTITY_PROBE: &str = r#"
s seccomp
mkdir /dev/shm/seccomp-test 2>&1; echo "mkdir rc=$?"
s capability-use
chown 1234 /dev/shm 2>&1; echo "chown rc=$?"
"#;

fn identity(v: &mut Value, nnp: bool) {
    let p = &mut v["process"];
    p["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 65534], "umask": 23});
    p["cwd"] = json!("/tmp");
    // No HOME: the runtime finds it in the image's /etc/passwd.
    p["env"] = json!(["PATH=/usr/bin:/bin", "TERM=dumb", "GREETING=hello world"]);
    p["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SYS_ADMIN"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    p["rlimits"] = json!([
        // soft == hard: runc 1.1.5's exec races Go's own raise of the soft NOFILE
        // limit (DIFFERENCES.md), which would make the comparison flaky.
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512},
        {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192}
    ]);
    p["noNewPrivileges"] = json!(nnp);
    p["oomScoreAdj"] = json!(500);
    v["hostname"] = json!("diff-identity");
    v["domainname"] = json!("example.test");
    v["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]
    });
}

const MOUNTS_PROBE: &str = r#"
s mount-behaviour
for p in /x /data/ro/new /data/rw/new /data/tmp/new /data/file /dev/shm/new /tmp/new /data/rel/new; do
  echo "$p: $( (echo 0 >"$p") 2>&1 | sed 's/.*: //')"
done
stat -c '%n %F %a %u:%g' /data /data/ro /data/rw /data/tmp /data/file /data/rw/masked-dir /data/rw/masked-file 2>&1
echo "masked-file: $(wc -c </data/rw/masked-file 2>&1)"
echo "masked-dir: $(ls -A /data/rw/masked-dir 2>&1)"
cat /data/file
"#;

fn mounts(v: &mut Value, dir: &Path) {
    let host = dir.join("host");
    let src = host.join("src");
    v["root"]["readonly"] = json!(true);
    v["linux"]["rootfsPropagation"] = json!("rprivate");
    let m = v["mounts"].as_array_mut().unwrap();
    m.extend([
        json!({"destination": "/data/ro", "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid", "nodev"]}),
        json!({"destination": "/data/rw", "type": "none", "source": src, "options": ["bind", "rw", "noexec", "rprivate"]}),
        json!({"destination": "/data/file", "type": "bind", "source": host.join("file"), "options": ["bind", "ro"]}),
        json!({"destination": "/data/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=1770", "uid=1000", "gid=1000"]}),
        // Relative source: from the bundle directory.
        json!({"destination": "/data/rel", "type": "bind", "source": "../host/src/sub", "options": ["rbind", "rslave"]}),
        json!({"destination": "/data/shared", "type": "bind", "source": host.join("shared"), "options": ["rbind", "rshared"]}),
        json!({"destination": "/data/noatime", "type": "tmpfs", "source": "tmpfs", "options": ["noatime", "nodiratime", "size=64k"]}),
    ]);
    let l = &mut v["linux"];
    for p in [
        "/data/rw/masked-dir",
        "/data/rw/masked-file",
        "/nonexistent",
    ] {
        l["maskedPaths"].as_array_mut().unwrap().push(json!(p));
    }
    for p in ["/data/rw/ro-sub", "/dev/shm", "/nonexistent-ro"] {
        l["readonlyPaths"].as_array_mut().unwrap().push(json!(p));
    }
}

fn resources(v: &mut Value, _: &Path) {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").unwrap().dev();
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    v["linux"]["resources"] = json!({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20, "swappiness": 20,
                   "kernelTCP": 8 << 20, "disableOOMKiller": true},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0",
                "burst": 2000, "realtimePeriod": 400000, "realtimeRuntime": 0},
        "pids": {"limit": 64},
        "blockIO": {"weight": 300,
                    "throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": maj, "minor": min, "rate": 77}]},
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"},
            {"allow": true, "type": "b", "major": 7, "access": "r"}
        ]
    });
    v["linux"]["devices"] = json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 0, "gid": 0},
        {"path": "/dev/loop-diff", "type": "b", "major": 7, "minor": 99, "fileMode": 0o600}
    ]);
}

fn remove_cgroup_parent() {
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(cg_parent()));
    }
}

fn main() {
    runtime_core::init::main_if_helper();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Both runtimes run real containers: as another user every case is named as
        // skipped (counted as ignored), none is run. A root run (scripts/test) runs all.
        let all = cases();
        let mut names: Vec<String> = all
            .iter()
            .filter(|c| filter.is_empty() || filter.iter().any(|f| c.name.contains(f.as_str())))
            .map(|c| format!("differential::{}", c.name))
            .collect();
        if names.len() == all.len() {
            names.push("differential::documented_differences_all_observed".into());
        }
        for name in &names {
            println!("test {name} ... skipped: {name} needs root");
        }
        println!(
            "\ntest result: ok. 0 passed; 0 failed; {} ignored; 0 measured; 0 filtered out\n",
            names.len()
        );
        std::process::exit(0);
    }
    if !Path::new(RUNC).exists() {
        // The suite's reason to exist: no runc, no comparison. Fail loudly.
        eprintln!(
            "{RUNC} is missing: apt-get install runc (the differential tests compare with it)"
        );
        std::process::exit(101);
    }
    let st = Command::new(repo().join("test-bundles/gen"))
        .stdout(PStdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut allowed = allowed_differences();
    let (mut passed, mut failed) = (0, 0);
    let all = cases();
    let selected: Vec<&Case> = all
        .iter()
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.name.contains(f.as_str())))
        .collect();
    for case in &selected {
        let name = format!("differential::{}", case.name);
        match run_case(case, &mut allowed) {
            Ok(bad) if bad.is_empty() => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Ok(bad) => {
                println!("test {name} ... FAILED");
                println!(
                    "  differences not documented in runtime-core/DIFFERENCES.md (- runc, + ours):"
                );
                for b in bad {
                    println!("  {b}");
                }
                failed += 1;
            }
            Err(e) => {
                println!("test {name} ... FAILED\n  {e}");
                failed += 1;
            }
        }
    }
    // A documented difference no case shows any more is stale: the file must stay true.
    if selected.len() == all.len() {
        let stale: Vec<&Allowed> = allowed.iter().filter(|d| !d.used).collect();
        if stale.is_empty() {
            println!("test differential::documented_differences_all_observed ... ok");
            passed += 1;
        } else {
            println!("test differential::documented_differences_all_observed ... FAILED");
            for d in stale {
                println!(
                    "  stale entry under \"{}\": {}{} {}: {}",
                    d.heading,
                    if d.runc { "-" } else { "+" },
                    d.case,
                    d.section,
                    d.pattern
                );
            }
            failed += 1;
        }
    }
    remove_cgroup_parent();
    let _ = std::fs::remove_dir_all(scratch());
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out\n",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    std::process::exit(if failed == 0 { 0 } else { 101 });
}
