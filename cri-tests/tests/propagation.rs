//! Kubernetes `mountPropagation` through containerd's CRI, under handler `rust`
//! and under `runc` in the same run. `Bidirectional` (CRI
//! PROPAGATION_BIDIRECTIONAL, what CSI node plugins use): a mount made in the
//! container under the volume appears on the host, and one made on the host
//! appears in the container. The instance is started by `scripts/test`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cri_tests::host;
use cri_tests::*;

#[test]
fn bidirectional_rust() {
    needs_root!();
    bidirectional(&Cri::connect(), "rust");
}

#[test]
fn bidirectional_runc() {
    needs_root!();
    bidirectional(&Cri::connect(), "runc");
}

fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(st.success(), "{cmd}");
}

fn host_has_mount(p: &Path) -> bool {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = p.to_str().unwrap();
    mi.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

/// The host dir of the volume: a tmpfs of the test's own, made shared (the
/// kubelet requires a Bidirectional volume's source to be on a shared mount).
/// Unmounted, with what propagated into it, when dropped.
struct HostVolume(PathBuf);

impl Drop for HostVolume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn bidirectional(c: &Cri, handler: &str) {
    let dir = env().scratch.join(unique(&format!("bidi-{handler}")));
    std::fs::create_dir_all(&dir).unwrap();
    sh(&format!(
        "mount -t tmpfs bidi {0} && mount --make-shared {0} && mkdir {0}/fromc {0}/fromh",
        dir.display()
    ));
    let vol = HostVolume(dir.clone());
    let mut pc = pod_config("bidi");
    // CRI allows a privileged container only in a privileged pod.
    pod_security(&mut pc).privileged = true;
    let pod = c.run_pod(&pc, handler).unwrap();
    let mut cfg = container_config("main", "exec sleep 100000");
    security(&mut cfg).privileged = true;
    cfg.mounts = vec![cri::Mount {
        container_path: "/vol".into(),
        host_path: dir.to_string_lossy().into_owned(),
        propagation: cri::MountPropagation::PropagationBidirectional as i32,
        ..Default::default()
    }];
    let id = c.run(&pod, &cfg, &pc).unwrap();

    // Container -> host.
    let out = c.sh(&id, "mount -t tmpfs fromc /vol/fromc && echo mounted");
    assert_eq!(out, "mounted");
    wait_for(
        "the container's mount on the host",
        Duration::from_secs(5),
        || host_has_mount(&dir.join("fromc")),
    );
    // Host -> container.
    sh(&format!("mount -t tmpfs fromh {}/fromh", dir.display()));
    let mi = c.sh(&id, "cat /proc/self/mountinfo");
    assert!(
        mi.contains(" /vol/fromh "),
        "{handler}: host mount not in the container:\n{mi}"
    );
    // Unmounted in the container: gone from the host too.
    assert_eq!(c.sh(&id, "umount /vol/fromc && echo gone"), "gone");
    wait_for(
        "the container's unmount on the host",
        Duration::from_secs(5),
        || !host_has_mount(&dir.join("fromc")),
    );

    c.destroy_pod(&pod);
    let ids = [pod.as_str(), id.as_str()];
    wait_for("the pod's shim to exit", Duration::from_secs(30), || {
        host::shims_of(&ids).is_empty()
    });
    for i in ids {
        assert!(!host::bundle_dir(i).exists(), "bundle of {i} left behind");
        let m = host::mounts_mentioning(i);
        assert!(m.is_empty(), "mounts of {i} left behind: {m:#?}");
    }
    let parent = pc.linux.as_ref().unwrap().cgroup_parent.clone();
    let left = host::cgroups_below(&parent);
    assert!(left.is_empty(), "cgroups left behind: {left:#?}");
    host::remove_cgroup_parent(&parent);
    drop(vol);
    assert!(!host_has_mount(&dir), "the volume is still mounted");
}
