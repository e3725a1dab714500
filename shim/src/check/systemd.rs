//! systemd checks: is it PID 1, and can its bus be reached.

use std::path::Path;

use super::{Check, Level};

fn is_socket(p: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

pub(super) fn checks(out: &mut Vec<Check>) {
    // sd_booted(3): systemd is PID 1 when this directory exists.
    if !Path::new("/run/systemd/system").is_dir() {
        out.push(Check::bad(
            Level::Warn,
            "systemd",
            "not running (no /run/systemd/system): the systemd cgroup driver \
             (SystemdCgroup = true) cannot be used",
            "use the cgroupfs driver (SystemdCgroup = false, kubelet cgroupDriver: cgroupfs)",
        ));
        return;
    }
    out.push(Check::ok("systemd", "running (/run/systemd/system)"));
    let bus = ["/run/systemd/private", "/run/dbus/system_bus_socket"]
        .into_iter()
        .filter(|p| is_socket(p))
        .collect::<Vec<_>>();
    out.push(if bus.is_empty() {
        Check::bad(
            Level::Warn,
            "systemd-bus",
            "neither /run/systemd/private nor /run/dbus/system_bus_socket is a socket: \
             the systemd cgroup driver cannot reach systemd",
            "start dbus (or check that systemd's private socket exists)",
        )
    } else {
        Check::ok("systemd-bus", bus.join(", "))
    });
}
