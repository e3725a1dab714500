//! Pods with a systemd slice as cgroup parent, as the kubelet's `cgroupDriver: systemd`
//! gives them (`<root>-burstable-pod<uid>.slice`), each under our handler `rust` and under
//! `runc` in the same run. containerd's CRI then hands either runtime the cgroupsPath
//! `<slice>:cri-containerd:<id>`, and each container is a transient scope
//! `cri-containerd-<id>.scope` in the pod's slice. Needs a systemd host and a containerd
//! started with `scripts/containerd start --cri --systemd` (the guest, see
//! scripts/guest-suite); every check reads systemd (`systemctl show`) and the scope's own
//! cgroup files, of whichever cgroup version is mounted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cri_tests::both_handlers;
use cri_tests::*;

both_handlers!(
    scope_has_the_limits_execs_updates_and_stats,
    oom_killed_in_a_scope,
    two_containers_share_one_shim_and_the_pod_slice,
);

const WAIT: Duration = Duration::from_secs(30);

/// `systemctl show UNIT -p ...`.
fn show(unit: &str, props: &[&str]) -> HashMap<String, String> {
    let mut cmd = std::process::Command::new("systemctl");
    cmd.args(["show", unit]);
    for p in props {
        cmd.args(["-p", p]);
    }
    let out = cmd.output().expect("run systemctl");
    assert!(out.status.success(), "systemctl show {unit}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Whether the unit is stopped (a stopped transient scope is also unloaded soon after;
/// a `failed` one would stay, and counts as left behind).
fn unit_gone(unit: &str) -> bool {
    show(unit, &["ActiveState"])["ActiveState"] == "inactive"
}

fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A pod with a slice parent, as the kubelet runs it: the kubelet makes the pod's slice,
/// containerd the scopes in it.
struct SlicePod {
    id: String,
    config: cri::PodSandboxConfig,
    containers: Vec<String>,
}

impl SlicePod {
    fn run(c: &Cri, name: &str, qos: Qos, handler: &str) -> SlicePod {
        assert!(
            env().systemd,
            "the systemd pod tests need a containerd started with --cri --systemd"
        );
        let mut config = pod_config(name);
        let uid = config.metadata.as_ref().unwrap().uid.clone();
        config.linux.as_mut().unwrap().cgroup_parent = pod_cgroup_parent(&uid, qos);
        let id = c
            .run_pod(&config, handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox ({handler}): {e}"));
        SlicePod {
            id,
            config,
            containers: Vec::new(),
        }
    }

    fn slice(&self) -> String {
        self.config.linux.as_ref().unwrap().cgroup_parent.clone()
    }

    fn container(&mut self, c: &Cri, config: &cri::ContainerConfig) -> String {
        let id = c
            .run(&self.id, config, &self.config)
            .unwrap_or_else(|e| panic!("container {:?}: {e}", config.metadata));
        self.containers.push(id.clone());
        id
    }

    /// The scope's dir in the hierarchy of `controller` (v1), or the unified one.
    fn scope_dir(&self, id: &str, controller: &str) -> PathBuf {
        let rel = format!("{}/{}", cgroup_dir(&self.slice()), scope_of(id));
        if is_v2() {
            Path::new("/sys/fs/cgroup").join(rel)
        } else {
            Path::new("/sys/fs/cgroup").join(controller).join(rel)
        }
    }

    fn read(&self, id: &str, controller: &str, file: &str) -> String {
        let p = self.scope_dir(id, controller).join(file);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    }

    /// The scope is systemd's, running, in the pod's slice, with its cgroup where
    /// systemd puts it, and the container's init is in it.
    fn assert_scope(&self, c: &Cri, id: &str) {
        let unit = scope_of(id);
        let s = show(&unit, &["ActiveState", "Slice", "ControlGroup"]);
        assert_eq!(s["ActiveState"], "active", "{unit}: {s:?}");
        assert_eq!(s["Slice"], self.slice(), "{unit}: {s:?}");
        let cg = format!("/{}/{unit}", cgroup_dir(&self.slice()));
        assert_eq!(s["ControlGroup"], cg, "{unit}: {s:?}");
        let pid = host_pid(c, id);
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let line = if is_v2() { "0::" } else { ":name=systemd:" };
        assert!(
            own.lines().any(|l| l.contains(line) && l.ends_with(&cg)),
            "init {pid} of {id} is not in {cg}: {own}"
        );
    }

    /// StopPodSandbox + RemovePodSandbox, then: no shim, no scope of the pod's, no cgroup
    /// in its slice; then the slice is stopped (the kubelet's part) and its dir is gone.
    fn destroy(self, c: &Cri) {
        c.destroy_pod(&self.id);
        let ids: Vec<&str> = std::iter::once(self.id.as_str())
            .chain(self.containers.iter().map(String::as_str))
            .collect();
        wait_for("the pod's shim to exit", WAIT, || {
            host::shims_of(&ids).is_empty()
        });
        for id in &ids {
            wait_for(&format!("scope of {id} to stop"), WAIT, || {
                unit_gone(&scope_of(id))
            });
            assert!(!host::bundle_dir(id).exists(), "bundle of {id} left behind");
        }
        let left = host::cgroups_below(&self.slice());
        assert!(left.is_empty(), "cgroups left in the pod slice: {left:#?}");
        host::remove_cgroup_parent(&self.slice());
        assert!(unit_gone(&self.slice()), "pod slice still loaded");
        let dir = Path::new("/sys/fs/cgroup").join(cgroup_dir(&self.slice()));
        assert!(!dir.exists() || !is_v2(), "{} left", dir.display());
    }
}

/// The init of a container, or of a pod's sandbox, as the host sees it (the verbose
/// status's `pid`).
fn host_pid(c: &Cri, id: &str) -> u32 {
    let req = cri::ContainerStatusRequest {
        container_id: id.to_string(),
        verbose: true,
    };
    let info = match c.call(c.rs().container_status(req)) {
        Ok(st) => st.info["info"].clone(),
        Err(_) => c.pod_status(id).unwrap().info["info"].clone(),
    };
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    info["pid"].as_u64().expect("pid in verbose status") as u32
}

fn update(c: &Cri, id: &str, memory: i64, quota: i64) {
    let req = cri::UpdateContainerResourcesRequest {
        container_id: id.to_string(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: memory,
            cpu_period: 100_000,
            cpu_quota: quota,
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    };
    c.call(c.rs().update_container_resources(req))
        .unwrap_or_else(|e| panic!("UpdateContainerResources {id}: {e}"));
}

/// Memory limit and CPU quota, in the scope's files and in systemd's unit.
fn assert_limits(pod: &SlicePod, id: &str, memory: i64, quota: i64) {
    let unit = scope_of(id);
    if is_v2() {
        assert_eq!(pod.read(id, "memory", "memory.max"), memory.to_string());
        assert_eq!(pod.read(id, "cpu", "cpu.max"), format!("{quota} 100000"));
    } else {
        let mem = pod.read(id, "memory", "memory.limit_in_bytes");
        assert_eq!(mem, memory.to_string());
        assert_eq!(pod.read(id, "cpu", "cpu.cfs_quota_us"), quota.to_string());
    }
    let s = show(&unit, &["MemoryMax", "MemoryLimit", "CPUQuotaPerSecUSec"]);
    let prop = if is_v2() { "MemoryMax" } else { "MemoryLimit" };
    assert_eq!(s[prop], memory.to_string(), "{unit}: {s:?}");
    // quota/period of a second: 50000/100000 is 500ms per second.
    let per_sec = format!("{}ms", quota * 1000 / 100_000);
    assert_eq!(s["CPUQuotaPerSecUSec"], per_sec, "{unit}: {s:?}");
}

fn scope_has_the_limits_execs_updates_and_stats(c: &Cri, handler: &str) {
    let mut pod = SlicePod::run(c, "sdres", Qos::Burstable, handler);
    // The pause container is a scope of the pod's slice too.
    pod.assert_scope(c, &pod.id.clone());
    let mut cfg = container_config(
        "main",
        "x=$(head -c 4000000 /dev/zero | tr '\\0' a); exec sleep 100000",
    );
    let r = resources(&mut cfg);
    r.memory_limit_in_bytes = 64 << 20;
    r.cpu_period = 100_000;
    r.cpu_quota = 50_000;
    r.cpu_shares = 512;
    let id = pod.container(c, &cfg);
    pod.assert_scope(c, &id);
    assert_limits(&pod, &id, 64 << 20, 50_000);
    if is_v2() {
        // shares 512 → weight 1 + (512 - 2) * 9999 / 262142, the kernel's mapping as runc
        // and systemd's CPUShares→CPUWeight use.
        assert_eq!(pod.read(&id, "cpu", "cpu.weight"), "20");
    } else {
        assert_eq!(pod.read(&id, "cpu", "cpu.shares"), "512");
    }

    // An exec joins the scope: the same cgroup as the init (pid 1 of its pid namespace).
    assert_eq!(
        c.sh(
            &id,
            "[ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] && echo same"
        ),
        "same"
    );

    update(c, &id, 128 << 20, 25_000);
    assert_limits(&pod, &id, 128 << 20, 25_000);
    assert_eq!(c.sh(&id, "echo alive"), "alive");

    wait_for("cpu and memory in ContainerStats", WAIT, || {
        let s = c.stats(&id).unwrap();
        let cpu = s
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map_or(0, |v| v.value);
        let mem = s
            .memory
            .and_then(|m| m.working_set_bytes)
            .map_or(0, |v| v.value);
        cpu > 0 && mem > 0
    });
    pod.destroy(c);
}

fn oom_killed_in_a_scope(c: &Cri, handler: &str) {
    let mut pod = SlicePod::run(c, "sdoom", Qos::Burstable, handler);
    let mut cfg = container_config("hog", "x=a; while true; do x=$x$x; done");
    resources(&mut cfg).memory_limit_in_bytes = 24 << 20;
    let id = pod.container(c, &cfg);
    let st = c.wait_exited(&id, Duration::from_secs(60));
    // The Go runc shim (containerd 1.6 and 2.1) with runc's systemd driver sometimes
    // misses this OOM (seen in the guest on both: exit 137, reason "Error"; the hog dies
    // within a second of its start); the reference, not ours: ours must say OOMKilled.
    if handler == "runc" && st.reason == "Error" {
        eprintln!("note: the runc shim reported no OOM for {id}: {st:?}");
        assert_eq!(st.exit_code, 137, "{st:?}");
    } else {
        assert_eq!(
            (st.exit_code, st.reason.as_str()),
            (137, "OOMKilled"),
            "{st:?}"
        );
    }
    pod.destroy(c);
}

fn two_containers_share_one_shim_and_the_pod_slice(c: &Cri, handler: &str) {
    let mut pod = SlicePod::run(c, "sdduo", Qos::BestEffort, handler);
    let c1 = pod.container(c, &container_config("one", "exec sleep 100000"));
    let c2 = pod.container(c, &container_config("two", "exec sleep 100000"));
    let ids = [pod.id.as_str(), c1.as_str(), c2.as_str()];
    let shims = host::shims_of(&ids);
    assert_eq!(shims.len(), 1, "shims for the pod: {shims:?}");
    for id in &ids {
        pod.assert_scope(c, id);
    }
    // The slice's cgroup holds exactly the pod's three scopes.
    let mut below: Vec<String> = host::cgroups_below(&pod.slice())
        .iter()
        .filter(|d| d.starts_with("/sys/fs/cgroup/memory") || is_v2())
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    below.sort();
    let mut want: Vec<String> = ids.iter().map(|id| scope_of(id)).collect();
    want.sort();
    assert_eq!(below, want);

    // One container removed: its scope is gone, the pod's shim and other scopes stay.
    c.stop_container(&c2, 2).unwrap();
    c.wait_exited(&c2, WAIT);
    c.remove_container(&c2).unwrap();
    wait_for("the removed container's scope to go", WAIT, || {
        unit_gone(&scope_of(&c2))
    });
    assert!(
        !pod.scope_dir(&c2, "memory").exists(),
        "cgroup of {c2} left"
    );
    pod.assert_scope(c, &c1);
    assert_eq!(host::shims_of(&ids).len(), 1);
    pod.destroy(c);
}
