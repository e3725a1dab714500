//! Hostile input through `rshim-runc`, one process per command as OCI
//! tooling drives it: large exec args, ids of -1, every rootfsPropagation
//! value on a rootfs that is a shared mount. Needs root (CI is root).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One test's state root, bundle and cgroup parent, removed on drop.
struct Case {
    dir: PathBuf,
    cg_parent: String,
}

impl Case {
    fn new(name: &str) -> Case {
        let dir =
            std::env::temp_dir().join(format!("rshim-cli-hostile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Case {
            dir,
            // Outside the rshim-test* names `scripts/containerd stop` sweeps.
            cg_parent: format!("rshim-core-cli-hostile-{}-{name}", std::process::id()),
        }
    }

    /// A bundle running `args`, its config edited by `edit`.
    fn bundle(&self, args: &[&str], edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
        let b = self.dir.join("bundle");
        let st = Command::new(repo().join("test-bundles/gen"))
            .arg("bundle")
            .arg(&b)
            .arg("--")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let cfg = b.join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        v["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/c", self.cg_parent));
        edit(&mut v);
        std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
        b
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rshim-runc"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `create` with files for stdio (the container outlives the command).
    fn create(&self, bundle: &Path, id: &str) -> (bool, String) {
        let log = self.dir.join("create.log");
        let f = || std::fs::File::create(&log).unwrap();
        let st = Command::new(env!("CARGO_BIN_EXE_rshim-runc"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .args(["create", "--bundle", bundle.to_str().unwrap(), id])
            .stdin(Stdio::null())
            .stdout(f())
            .stderr(f())
            .status()
            .unwrap();
        (st.success(), std::fs::read_to_string(&log).unwrap())
    }

    fn kill_and_delete(&self, id: &str) {
        let _ = self.cli(&["kill", id, "KILL"]);
        let o = self.cli(&["delete", "--force", id]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        self.assert_nothing_left(id);
    }

    fn assert_nothing_left(&self, id: &str) {
        assert!(
            !self.cli(&["state", id]).status.success(),
            "{id} still known"
        );
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let cg = h.path().join(&self.cg_parent).join("c");
            assert!(!cg.exists(), "cgroup {} left behind", cg.display());
        }
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = std::fs::remove_dir(h.path().join(&self.cg_parent));
        }
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("h"))
            .status();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("rootfs"))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn exec_with_one_and_a_half_mebibytes_of_args_then_exec_and_kill() {
    needs_root!();
    let c = Case::new("bigexec");
    let b = c.bundle(&["sleep", "1000"], |_| {});
    let (ok, log) = c.create(&b, "bigexec");
    assert!(ok, "{log}");
    assert!(c.cli(&["start", "bigexec"]).status.success());
    let filler = "a".repeat(1023);
    let mut args = vec!["exec", "bigexec", "sh", "-c", "echo $#", "x"];
    args.extend(std::iter::repeat_n(filler.as_str(), 1536));
    let o = c.cli(&args);
    assert_eq!(text(&o.stdout), "1536\n", "{}", text(&o.stderr));
    let o = c.cli(&["exec", "bigexec", "echo", "hi"]);
    assert_eq!(text(&o.stdout), "hi\n", "{}", text(&o.stderr));
    c.kill_and_delete("bigexec");
}

#[test]
fn ids_of_minus_one_are_refused_at_create() {
    needs_root!();
    for (field, user) in [
        (
            "process.user.uid",
            serde_json::json!({"uid": 4294967295u32, "gid": 0}),
        ),
        (
            "process.user.gid",
            serde_json::json!({"uid": 0, "gid": 4294967295u32}),
        ),
        (
            "process.user.additionalGids[0]",
            serde_json::json!({"uid": 0, "gid": 0, "additionalGids": [4294967295u32]}),
        ),
    ] {
        let c = Case::new("uid");
        let b = c.bundle(&["id"], |v| v["process"]["user"] = user);
        let (ok, log) = c.create(&b, "uid");
        assert!(!ok, "created with {field} -1");
        assert!(log.contains(field), "{field} not in: {log}");
        c.assert_nothing_left("uid");
    }
}

/// The volume is mounted over the image's /tmp and the host mounts on its
/// /var, so that nothing is created in the shared test rootfs.
/// The rootfs is a shared mount (as containerd's overlay is on a host whose
/// mounts are shared, e.g. under systemd) and a volume comes from a shared
/// host mount: every value starts (private, slave and unbindable failed
/// pivot_root, runbindable the rootfs bind), and mounts propagate between
/// the volume and the host as under runc 1.1.5.
#[test]
fn every_rootfs_propagation_value_on_a_shared_rootfs() {
    needs_root!();
    // value, container -> host, host -> container (volume), host -> container (rootfs)
    let cases = [
        ("", false, true, true),
        ("rslave", false, true, true),
        ("rshared", true, true, false),
        ("rprivate", false, false, false),
        ("runbindable", false, false, false),
        ("slave", true, true, false),
        ("shared", true, true, false),
        ("private", true, true, false),
        ("unbindable", true, true, false),
    ];
    for (value, to_host, to_vol, to_rootfs) in cases {
        let name = if value.is_empty() { "default" } else { value };
        let c = Case::new(&format!("prop-{name}"));
        let (h, r) = (c.dir.join("h"), c.dir.join("rootfs"));
        std::fs::create_dir_all(&h).unwrap();
        std::fs::create_dir_all(&r).unwrap();
        let sh = |cmd: String| {
            let st = Command::new("sh").args(["-c", &cmd]).status().unwrap();
            assert!(st.success(), "{cmd}");
        };
        sh(format!(
            "mount -t tmpfs vol {h} && mount --make-shared {h} && mkdir {h}/fromc {h}/fromh && \
             mount --bind {src} {r} && mount --make-shared {r}",
            h = h.display(),
            r = r.display(),
            src = repo().join("test-bundles/out/rootfs").display()
        ));
        let script = "mount -t tmpfs fromc /tmp/fromc && touch /tmp/ready; exec sleep 1000";
        let b = c.bundle(&["sh", "-c", script], |v| {
            v["root"] = serde_json::json!({"path": r, "readonly": true});
            let caps = v["process"]["capabilities"].as_object_mut().unwrap();
            for set in caps.values_mut() {
                set.as_array_mut().unwrap().push("CAP_SYS_ADMIN".into());
            }
            v["mounts"].as_array_mut().unwrap().push(serde_json::json!(
                {"destination": "/tmp", "type": "bind", "source": h, "options": ["rbind"]}
            ));
            if !value.is_empty() {
                v["linux"]["rootfsPropagation"] = serde_json::json!(value);
            }
        });
        let id = format!("prop-{name}");
        let (ok, log) = c.create(&b, &id);
        assert!(ok, "{name}: {log}");
        assert!(c.cli(&["start", &id]).status.success());
        for _ in 0..200 {
            if h.join("ready").exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        assert!(
            h.join("ready").exists(),
            "{name}: the container did not mount"
        );
        sh(format!(
            "mount -t tmpfs fromh {}/fromh && mount -t tmpfs fromr {}/var",
            h.display(),
            r.display()
        ));
        let inside = text(&c.cli(&["exec", &id, "cat", "/proc/self/mountinfo"]).stdout);
        let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let fromc = format!(" {}/fromc ", h.display());
        assert_eq!(host.contains(&fromc), to_host, "{name}: container -> host");
        assert_eq!(
            inside.contains(" /tmp/fromh "),
            to_vol,
            "{name}: host -> volume\n{inside}"
        );
        assert_eq!(
            inside.contains(" /var "),
            to_rootfs,
            "{name}: host -> rootfs\n{inside}"
        );
        c.kill_and_delete(&id);
    }
}
