//! The OCI runtime features document (runtime-spec `features.md`): what this
//! runtime recognises, for `rshim-runc features` and the shim's `-info`
//! (containerd 2.x reads it; the kubelet admits user-namespace pods and
//! recursive read-only mounts by it).
//!
//! Every list here states what runtime-core actually applies. When a module
//! learns something new, its entry here changes with it:
//! - mount options: [`MOUNT_OPTIONS`] (one list, checked against
//!   `mountopts::parse_options` by a unit test);
//! - cgroup drivers: [`cgroup`]; ID-mapped mounts: [`mount_extensions`];
//! - seccomp: asked of libseccomp itself ([`seccomp`]).

use std::collections::HashMap;
use std::str::FromStr;

use libseccomp::{ScmpAction, ScmpArch, ScmpFilterAttr, ScmpFilterContext, ScmpVersion};
use oci_spec::runtime::{
    Apparmor, Arch, Cgroup, Features, IDMap, IntelRdt, LinuxFeature, LinuxNamespaceType,
    LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, MemoryPolicy,
    MountExtensions, NetDevices, Seccomp, Selinux,
};

/// The oldest and newest runtime-spec versions a config may name.
pub const OCI_VERSION_MIN: &str = "1.0.0";
pub const OCI_VERSION_MAX: &str = "1.2.0";

/// Mount options applied by `mountopts::parse_options` (flags and
/// propagation); anything else is passed to the filesystem as data.
/// Extend this list where `mountopts.rs` learns an option; the `r*` recursive
/// attributes (`mount_setattr(AT_RECURSIVE)`) come from `mountopts::RECURSIVE_OPTIONS`.
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "relatime",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

/// The hooks `hooks.rs` runs, in spec order.
pub const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Annotations a CRI should not pass through from untrusted pods. runtime-core
/// interprets none of them today; the list is runc's, so a CRI filters the
/// same names for both runtimes (`org.systemd.property.` is a prefix).
pub const POTENTIALLY_UNSAFE_ANNOTATIONS: &[&str] =
    &["bundle", "org.systemd.property.", "org.criu.config"];

fn namespaces() -> Vec<LinuxNamespaceType> {
    use LinuxNamespaceType::*;
    vec![Cgroup, Ipc, Mount, Network, Pid, Time, User, Uts]
}

fn capabilities() -> Vec<String> {
    let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

/// cgroup drivers compiled in: cgroupfs on v1 and v2, and the systemd driver
/// (`slice:prefix:name`, on cgroup v2 hosts; not the user instance).
fn cgroup() -> Cgroup {
    let mut c = Cgroup::default();
    c.set_v1(Some(true));
    c.set_v2(Some(true));
    c.set_systemd(Some(true));
    c.set_systemd_user(Some(false));
    c.set_rdma(Some(true));
    c
}

/// ID-mapped bind mounts (`mounts[].uidMappings/gidMappings`, init/mountattr.rs).
fn mount_extensions() -> MountExtensions {
    let mut idmap = IDMap::default();
    idmap.set_enabled(Some(true));
    let mut m = MountExtensions::default();
    m.set_idmap(Some(idmap));
    m
}

/// Every architecture the runtime-spec names that this libseccomp knows.
fn seccomp_archs() -> Vec<Arch> {
    use Arch::*;
    [
        ScmpArchX86,
        ScmpArchX86_64,
        ScmpArchX32,
        ScmpArchArm,
        ScmpArchAarch64,
        ScmpArchMips,
        ScmpArchMips64,
        ScmpArchMips64n32,
        ScmpArchMipsel,
        ScmpArchMipsel64,
        ScmpArchMipsel64n32,
        ScmpArchPpc,
        ScmpArchPpc64,
        ScmpArchPpc64le,
        ScmpArchS390,
        ScmpArchS390x,
        ScmpArchParisc,
        ScmpArchParisc64,
        ScmpArchRiscv64,
        ScmpArchLoongarch64,
        ScmpArchM68k,
        ScmpArchSh,
        ScmpArchSheb,
    ]
    .into_iter()
    .filter(|a| {
        // The same name mapping as init/seccomp.rs uses to load a filter.
        let name = format!("SCMP_{}", a.to_string().trim_start_matches("SCMP_"));
        ScmpArch::from_str(&name).is_ok()
    })
    .collect()
}

/// The filter flags libseccomp can set here (TSYNC always; LOG, SPEC_ALLOW
/// and WAIT_KILLABLE_RECV need newer libseccomp), probed on a filter that is
/// built and dropped, never loaded.
fn seccomp_flags() -> (Vec<String>, Vec<String>) {
    use LinuxSeccompFilterFlag::*;
    let all = [
        (SeccompFilterFlagTsync, ScmpFilterAttr::CtlTsync),
        (SeccompFilterFlagLog, ScmpFilterAttr::CtlLog),
        (SeccompFilterFlagSpecAllow, ScmpFilterAttr::CtlSsb),
        (
            SeccompFilterFlagWaitKillableRecv,
            ScmpFilterAttr::CtlWaitkill,
        ),
    ];
    let known = all.iter().map(|(f, _)| f.to_string()).collect();
    let supported = match ScmpFilterContext::new(ScmpAction::Allow) {
        Ok(mut ctx) => all
            .iter()
            .filter(|(_, attr)| ctx.set_filter_attr(*attr, 1).is_ok())
            .map(|(f, _)| f.to_string())
            .collect(),
        Err(_) => Vec::new(),
    };
    (known, supported)
}

fn seccomp() -> Seccomp {
    use LinuxSeccompAction::*;
    use LinuxSeccompOperator::*;
    let mut s = Seccomp::default();
    s.set_enabled(Some(true));
    // SCMP_ACT_NOTIFY needs a listenerPath agent: refused by init/seccomp.rs.
    s.set_actions(Some(vec![
        ScmpActAllow,
        ScmpActErrno,
        ScmpActKill,
        ScmpActKillProcess,
        ScmpActKillThread,
        ScmpActLog,
        ScmpActTrace,
        ScmpActTrap,
    ]));
    s.set_operators(Some(
        [
            ScmpCmpEq,
            ScmpCmpGe,
            ScmpCmpGt,
            ScmpCmpLe,
            ScmpCmpLt,
            ScmpCmpMaskedEq,
            ScmpCmpNe,
        ]
        .iter()
        .map(|o| o.to_string())
        .collect(),
    ));
    s.set_archs(Some(seccomp_archs()));
    let (known, supported) = seccomp_flags();
    s.set_known_flags(Some(known));
    s.set_supported_flags(Some(supported));
    s
}

fn disabled<T: Default>(set: impl FnOnce(&mut T)) -> T {
    let mut t = T::default();
    set(&mut t);
    t
}

/// The features document of this runtime.
pub fn features() -> Features {
    let mut linux = LinuxFeature::default();
    linux.set_namespaces(Some(namespaces()));
    linux.set_capabilities(Some(capabilities()));
    linux.set_cgroup(Some(cgroup()));
    linux.set_seccomp(Some(seccomp()));
    // Those LSMs are not applied: labels in a spec are refused by name.
    linux.set_apparmor(Some(disabled(|a: &mut Apparmor| {
        a.set_enabled(Some(false));
    })));
    linux.set_selinux(Some(disabled(|s: &mut Selinux| {
        s.set_enabled(Some(false));
    })));
    linux.set_intel_rdt(Some(disabled(|r: &mut IntelRdt| {
        r.set_enabled(Some(false));
    })));
    // linux.memoryPolicy and linux.netDevices are refused by name: no modes.
    linux.set_memory_policy(Some(disabled(|m: &mut MemoryPolicy| {
        m.set_modes(Some(Vec::new()));
        m.set_flags(Some(Vec::new()));
    })));
    linux.set_net_devices(Some(disabled(|n: &mut NetDevices| {
        n.set_enabled(Some(false));
    })));
    linux.set_mount_extensions(Some(mount_extensions()));

    let mut annotations = HashMap::new();
    if let Ok(v) = ScmpVersion::current() {
        annotations.insert("io.github.seccomp.libseccomp.version".into(), v.to_string());
    }
    annotations.insert(
        "io.containerd.rust.v1.version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );

    let mut f = Features::default();
    f.set_oci_version_min(OCI_VERSION_MIN.into());
    f.set_oci_version_max(OCI_VERSION_MAX.into());
    f.set_hooks(Some(HOOKS.iter().map(|s| s.to_string()).collect()));
    f.set_mount_options(Some(
        MOUNT_OPTIONS
            .iter()
            .chain(crate::mountopts::RECURSIVE_OPTIONS)
            .map(|s| s.to_string())
            .collect(),
    ));
    f.set_linux(Some(linux));
    f.set_annotations(Some(annotations));
    f.set_potentially_unsafe_config_annotations(Some(
        POTENTIALLY_UNSAFE_ANNOTATIONS
            .iter()
            .map(|s| s.to_string())
            .collect(),
    ));
    f
}

/// The document as the runtime-spec's JSON.
pub fn features_json() -> String {
    serde_json::to_string_pretty(&features()).expect("features serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listed option must be one parse_options applies, not filesystem data.
    #[test]
    fn every_listed_mount_option_is_applied() {
        for o in MOUNT_OPTIONS
            .iter()
            .chain(crate::mountopts::RECURSIVE_OPTIONS)
        {
            let parsed = crate::mountopts::parse_options(&[o.to_string()]);
            assert!(
                parsed.data.is_empty(),
                "{o} is listed in features but passed to the filesystem as data"
            );
        }
    }

    #[test]
    fn json_has_the_spec_field_names() {
        let v: serde_json::Value = serde_json::from_str(&features_json()).unwrap();
        assert_eq!(v["ociVersionMin"], OCI_VERSION_MIN);
        let linux = &v["linux"];
        let ns: Vec<&str> = linux["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(
            ns,
            ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]
        );
        assert_eq!(linux["cgroup"]["v1"], true);
        assert_eq!(linux["cgroup"]["systemd"], true);
        assert_eq!(linux["mountExtensions"]["idmap"]["enabled"], true);
        assert_eq!(linux["apparmor"]["enabled"], false);
        assert!(linux["capabilities"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("CAP_SYS_ADMIN")));
        let sc = &linux["seccomp"];
        assert!(sc["actions"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("SCMP_ACT_ERRNO")));
        assert!(!sc["actions"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("SCMP_ACT_NOTIFY")));
        assert!(sc["archs"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("SCMP_ARCH_X86_64")));
        assert!(sc["operators"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("SCMP_CMP_MASKED_EQ")));
        assert!(sc["supportedFlags"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("SECCOMP_FILTER_FLAG_TSYNC")));
        assert_eq!(
            v["potentiallyUnsafeConfigAnnotations"][1],
            "org.systemd.property."
        );
        assert!(v["annotations"]["io.github.seccomp.libseccomp.version"].is_string());
    }
}
