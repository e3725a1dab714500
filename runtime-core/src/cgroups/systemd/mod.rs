//! The systemd cgroup driver: a `linux.cgroupsPath` of the form
//! `slice:prefix:name` makes the container a transient systemd unit — a
//! scope `prefix-name.scope` in that slice (or a slice, for a name ending in
//! `.slice`) — created through systemd's D-Bus API, so systemd knows the
//! container's cgroup, its limits and its processes (what the kubelet's
//! `cgroupDriver: systemd` and containerd's `SystemdCgroup = true` expect).
//!
//! The interface to the rest of runtime-core is narrow:
//! [`Systemd::from_cgroups_path`] (parse, validate, check the host),
//! [`Systemd::cgroup`] (where the cgroupfs code finds the unit's cgroup),
//! [`Systemd::start`] with the first process, [`Systemd::update`] and
//! [`Systemd::stop`]. Limits systemd manages are unit properties
//! ([`properties`]); the caller also writes every limit into the delegated
//! cgroup with the cgroupfs code, and puts processes there itself.
//!
//! Which process starts the scope: the container's init is cloned by the
//! single-threaded helper, after the helper joined the container's cgroup.
//! So the scope is started with the *helper's* pid, while the helper still
//! waits for its config: systemd moves it into the scope before the job
//! completes, and the init is then born in the scope (no migration, no window
//! in which the container's first process runs outside its limits). The helper
//! exits right after the clone; the init keeps the scope alive. systemd's
//! property errors (a bad slice, a value out of range) come back from
//! `StartTransientUnit` before anything of the container exists.

mod dbus;
pub mod properties;
pub mod unit;

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

pub use unit::{is_systemd_form, Unit};

use crate::error::{Error, Result};

const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";

/// sd_booted(3): systemd is PID 1 exactly when this directory exists.
const BOOTED: &str = "/run/systemd/system";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A container's systemd unit.
#[derive(Debug, Clone)]
pub struct Systemd {
    unit: Unit,
    id: String,
}

/// Why this host cannot run the systemd driver, or `None` when it can.
fn host_refusal() -> Option<String> {
    if !std::path::Path::new(BOOTED).is_dir() {
        return Some(format!(
            "systemd is not running on this host ({BOOTED} does not exist), and the systemd cgroup \
             driver (cgroupsPath \"slice:prefix:name\") needs it: give a cgroupfs path instead \
             (containerd: SystemdCgroup = false; kubelet: cgroupDriver: cgroupfs)"
        ));
    }
    match nix::sys::statfs::statfs(CGROUP_ROOT) {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => None,
        Ok(_) => Some(format!(
            "{CGROUP_ROOT} is cgroup v1 (a legacy or hybrid systemd host): this runtime's systemd \
             driver supports the unified cgroup v2 hierarchy only (boot with \
             systemd.unified_cgroup_hierarchy=1, or use a cgroupfs path)"
        )),
        Err(e) => Some(format!("statfs {CGROUP_ROOT}: {e}")),
    }
}

fn err(unit: &str, msg: impl Into<String>) -> Error {
    Error::Systemd {
        unit: unit.to_string(),
        msg: msg.into(),
    }
}

impl Systemd {
    /// `None` for a cgroupfs path. For the systemd form: the unit, after the
    /// name is validated and the host checked (one error naming the unit and
    /// why otherwise; nothing is created here).
    pub fn from_cgroups_path(path: &str, id: &str) -> Result<Option<Systemd>> {
        if !is_systemd_form(path) {
            return Ok(None);
        }
        let unit = unit::parse(path)?;
        if let Some(why) = host_refusal() {
            return Err(err(&unit.name, why));
        }
        Ok(Some(Systemd {
            unit,
            id: id.to_string(),
        }))
    }

    /// The unit without the host check (to clean up after a container made
    /// earlier: the host cannot have changed in between).
    pub fn parse(path: &str, id: &str) -> Result<Option<Systemd>> {
        if !is_systemd_form(path) {
            return Ok(None);
        }
        Ok(Some(Systemd {
            unit: unit::parse(path)?,
            id: id.to_string(),
        }))
    }

    pub fn unit(&self) -> &Unit {
        &self.unit
    }

    /// The unit's cgroup relative to the hierarchy root, as `Cgroup::open` takes it.
    pub fn cgroup(&self) -> PathBuf {
        PathBuf::from("/").join(&self.unit.cgroup)
    }

    fn connect(&self) -> Result<dbus::Bus> {
        dbus::Bus::connect().map_err(|e| {
            err(
                &self.unit.name,
                format!("cannot reach systemd over D-Bus ({BUS_SOCKET}): {e}"),
            )
        })
    }

    /// Starts the unit, with `pid` as the scope's first process, and the
    /// limits systemd manages as properties; returns once the job is done
    /// and the cgroup exists. On error nothing of the unit is left.
    pub fn start(&self, pid: Option<u32>, res: Option<&LinuxResources>) -> Result<()> {
        let name = &self.unit.name;
        let mut props = properties::base(&self.unit, &self.id, pid);
        if let Some(r) = res {
            props.extend(properties::resources(r)?);
        }
        let mut bus = self.connect()?;
        let job = match bus.start_transient(name, &props) {
            // A failed unit of an earlier container of the same name: free the name, retry once.
            Err(e) if e.is(UNIT_EXISTS) => {
                let _ = bus.reset_failed(name);
                bus.start_transient(name, &props)
            }
            other => other,
        }
        .map_err(|e| err(name, format!("systemd refused to start it: {e}")))?;
        let result = bus.wait(&job).map_err(|e| {
            let _ = self.stop_with(&mut bus);
            err(name, e.to_string())
        })?;
        if result != "done" {
            let _ = self.stop_with(&mut bus);
            return Err(err(
                name,
                format!(
                    "systemd's start job ended with result \"{result}\" (journalctl -u {name} says why)"
                ),
            ));
        }
        let dir = PathBuf::from(CGROUP_ROOT).join(&self.unit.cgroup);
        if !dir.is_dir() {
            let _ = self.stop_with(&mut bus);
            return Err(err(
                name,
                format!("started, but its cgroup {} does not exist", dir.display()),
            ));
        }
        log::debug!("systemd: started {name}");
        Ok(())
    }

    /// Sets the limits systemd manages on the running unit (runtime only:
    /// they go with the unit). The caller writes the files as well.
    pub fn update(&self, res: &LinuxResources) -> Result<()> {
        let props = properties::resources(res)?;
        if props.is_empty() {
            return Ok(());
        }
        let name = &self.unit.name;
        self.connect()?
            .set_properties(name, &props)
            .map_err(|e| err(name, format!("systemd refused the new limits: {e}")))
    }

    /// Stops the unit and waits until it is gone (a unit systemd already
    /// collected, because its last process exited, is fine).
    pub fn stop(&self) -> Result<()> {
        let mut bus = self.connect()?;
        self.stop_with(&mut bus)
    }

    fn stop_with(&self, bus: &mut dbus::Bus) -> Result<()> {
        let name = &self.unit.name;
        let job = match bus.stop(name) {
            Ok(job) => job,
            Err(e) if e.is(NO_SUCH_UNIT) => return Ok(()),
            Err(e) => return Err(err(name, format!("StopUnit: {e}"))),
        };
        let result = bus.wait(&job).map_err(|e| err(name, e.to_string()))?;
        if result != "done" {
            // A failed unit lingers until reset (CollectMode covers new systemds).
            let _ = bus.reset_failed(name);
        }
        Ok(())
    }
}

/// For error messages: where the driver reaches systemd.
const BUS_SOCKET: &str = "the system bus /run/dbus/system_bus_socket";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroupfs_paths_are_not_systemd() {
        assert!(Systemd::from_cgroups_path("/rshim-test/c1", "c1")
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_names_fail_before_the_host_check() {
        let e = Systemd::from_cgroups_path("sys--tem.slice:rshim:c1", "c1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.cgroupsPath"), "{e}");
    }

    /// The host check answers for the host it runs on, each shape asserted
    /// (no skip): without systemd (this project's CI host) one error that
    /// says so, naming the unit; on a v1/hybrid systemd host one error naming
    /// cgroup v1; on a unified systemd host (the guest) the unit.
    #[test]
    fn host_check_names_the_unit_and_the_hosts_shape() {
        let r = Systemd::from_cgroups_path("system.slice:rshim:c1", "c1");
        let booted = std::path::Path::new(BOOTED).is_dir();
        let unified = nix::sys::statfs::statfs(CGROUP_ROOT)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        match (booted, unified) {
            (true, true) => assert!(r.unwrap().is_some()),
            (true, false) => {
                let e = r.unwrap_err().to_string();
                assert!(
                    e.contains("rshim-c1.scope") && e.contains("cgroup v1"),
                    "{e}"
                );
            }
            (false, _) => {
                let e = r.unwrap_err().to_string();
                assert!(
                    e.contains("rshim-c1.scope") && e.contains("systemd is not running"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn cgroup_path_is_absolute_under_the_slices() {
        let s = Systemd::parse("kubepods-besteffort-pod1.slice:cri-containerd:ab", "ab")
            .unwrap()
            .unwrap();
        assert_eq!(
            s.cgroup(),
            PathBuf::from("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-ab.scope")
        );
    }
}
