//! A process handle that cannot be confused with a recycled pid.
//!
//! Every signal and every wait of a container process goes through its pidfd,
//! so the shim never needs a global `waitpid(-1)` reaper that could steal the
//! status of a process it does not own.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::error::{Error, Result};
use crate::sys;

/// How a process ended, in the form containerd reports (`128 + signal` when killed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus(pub u32);

impl ExitStatus {
    fn from_siginfo(info: &libc::siginfo_t) -> Self {
        // SAFETY: callers pass only a siginfo that waitid filled for an exited child (waitid_pidfd
        // returns None when si_pid is 0), so it has the SIGCHLD layout whose status field
        // si_status() reads.
        let status = unsafe { info.si_status() };
        match info.si_code {
            libc::CLD_EXITED => ExitStatus(status as u32),
            _ => ExitStatus(128 + status as u32),
        }
    }
}

#[derive(Debug)]
pub struct Pidfd {
    pid: i32,
    fd: OwnedFd,
}

impl Pidfd {
    pub(crate) fn new(pid: i32, fd: OwnedFd) -> Self {
        Pidfd { pid, fd }
    }

    /// Opens a pidfd for a pid we know to be alive and ours (our unreaped child).
    pub fn open(pid: i32) -> Result<Self> {
        let fd = sys::pidfd_open(pid).map_err(|e| Error::sys("pidfd_open", pid, e))?;
        Ok(Pidfd { pid, fd })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `sig`; a process that already exited is not an error (ESRCH → Ok(false)).
    pub fn signal(&self, sig: i32) -> Result<bool> {
        match sys::pidfd_send_signal(self.fd.as_raw_fd(), sig) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(Error::sys("pidfd_send_signal", self.pid, e)),
        }
    }

    /// Reaps the process if it has exited (the fd turns readable when it does).
    pub fn try_reap(&self) -> Result<Option<ExitStatus>> {
        match sys::waitid_pidfd(self.fd.as_raw_fd(), true) {
            Ok(info) => Ok(info.as_ref().map(ExitStatus::from_siginfo)),
            Err(e) => Err(Error::sys("waitid(P_PIDFD)", self.pid, e)),
        }
    }

    /// Blocks until the process exits and reaps it.
    pub fn reap_blocking(&self) -> Result<ExitStatus> {
        match sys::waitid_pidfd(self.fd.as_raw_fd(), false) {
            Ok(Some(info)) => Ok(ExitStatus::from_siginfo(&info)),
            Ok(None) => Err(Error::Protocol(format!(
                "waitid: no status for {}",
                self.pid
            ))),
            Err(e) => Err(Error::sys("waitid(P_PIDFD)", self.pid, e)),
        }
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Pidfd {
    fn as_raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}
