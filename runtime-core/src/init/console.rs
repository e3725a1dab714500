//! A terminal for the container's process (`process.terminal`).
//!
//! The pty is allocated inside the container, from its own devpts instance
//! (`/dev/ptmx` → `pts/ptmx`), so the slave is a `/dev/pts/N` the container
//! can see. The slave becomes the process's controlling terminal and stdio
//! (and, for the init, `/dev/console`); the master goes to the shim over the
//! control channel.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use oci_spec::runtime::Process;

use crate::channel::{Channel, FromInit};
use crate::error::{last, Error, Result};

/// Opens a pty in the current mount namespace; returns (master, slave).
fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let master = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        return Err(last(
            "open",
            "/dev/ptmx (process.terminal needs a devpts mount at /dev/pts)",
        ));
    }
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    if unsafe { libc::unlockpt(master.as_raw_fd()) } < 0 {
        return Err(last("unlockpt", "/dev/ptmx"));
    }
    // TIOCGPTPEER opens the slave through the master: no path lookup to race.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(last("ioctl(TIOCGPTPEER)", "/dev/ptmx"));
    }
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

pub fn set_size(fd: i32, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(last("ioctl(TIOCSWINSZ)", "terminal"));
    }
    Ok(())
}

/// Gives the process a terminal: sends the master to the shim, makes the
/// slave the controlling terminal and fds 0, 1, 2. For the init, also bind
/// mounts it on `/dev/console`. Must run in a new session (after `setsid`).
pub fn setup(chan: &Channel, p: &Process, console: bool) -> Result<()> {
    let (master, slave) = open_pty()?;
    if let Some(size) = p.console_size() {
        set_size(slave.as_raw_fd(), size.height() as u16, size.width() as u16)?;
    }
    if console {
        bind_console(&slave)?;
    }
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(last("ioctl(TIOCSCTTY)", "terminal"));
    }
    for fd in 0..3 {
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(last("dup2", "terminal to stdio"));
        }
    }
    chan.send(&FromInit::Console, Some(master.as_raw_fd()))
}

/// `/dev/console` is the terminal's slave, as the runtime spec asks.
fn bind_console(slave: &OwnedFd) -> Result<()> {
    let target = c"/dev/console";
    let fd = unsafe {
        libc::open(
            target.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o600,
        )
    };
    if fd >= 0 {
        unsafe { libc::close(fd) };
    } else {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(Error::sys("create", "/dev/console", e));
        }
    }
    let src = std::ffi::CString::new(format!("/proc/self/fd/{}", slave.as_raw_fd())).unwrap();
    super::fsutil::mount(
        Some(&src),
        target,
        None,
        libc::MS_BIND,
        None,
        &"/dev/console",
    )
}
