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
    // SAFETY: a NUL-terminated literal path and integer flags; the fd it returns is checked and
    // wrapped below.
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
    // SAFETY: `master` was just returned by open (checked >= 0 above) and is owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // SAFETY: unlockpt takes only an fd: the pty master that `master` owns.
    if unsafe { libc::unlockpt(master.as_raw_fd()) } < 0 {
        return Err(last("unlockpt", "/dev/ptmx"));
    }
    // TIOCGPTPEER opens the slave through the master: no path lookup to race.
    // SAFETY: TIOCGPTPEER takes its open flags as an integer, on the master fd that `master` owns.
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
    // SAFETY: `slave` was just returned by TIOCGPTPEER (checked >= 0 above), a new fd owned by
    // nobody else.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

pub fn set_size(fd: i32, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `struct winsize`, and `ws` is a live, initialised one.
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
    // SAFETY: TIOCSCTTY takes an integer argument (0: steal from nobody), on the slave fd that
    // `slave` owns.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(last("ioctl(TIOCSCTTY)", "terminal"));
    }
    for fd in 0..3 {
        // SAFETY: dup2 takes integers; `slave` stays open across it, and no Rust object owns fds 0,
        // 1, 2, which are meant to be replaced.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(last("dup2", "terminal to stdio"));
        }
    }
    chan.send(&FromInit::Console, Some(master.as_raw_fd()))
}

/// `/dev/console` is the terminal's slave, as the runtime spec asks.
fn bind_console(slave: &OwnedFd) -> Result<()> {
    let target = c"/dev/console";
    // SAFETY: a NUL-terminated literal path, integer flags and mode; the fd is closed below without
    // being wrapped.
    let fd = unsafe {
        libc::open(
            target.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o600,
        )
    };
    if fd >= 0 {
        // SAFETY: `fd` was just returned by open and never wrapped, so this close releases only our
        // own fd.
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
