//! The control channel between the shim (parent) and the container init.
//!
//! A `SOCK_SEQPACKET` socketpair: message boundaries come for free, the init's
//! end is close-on-exec so a successful `execve` shows up as EOF, and the pidfd
//! of the new init travels back with `SCM_RIGHTS`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest message we exchange (errors and configs are small).
const MAX_MSG: usize = 64 * 1024;

/// A cgroup the init must join, and how it appears inside the container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupDir {
    /// Name under /sys/fs/cgroup in the container (`memory`, `cpu,cpuacct`, `unified`, or `` for v2).
    pub name: String,
    /// Absolute host path of the container's cgroup in that hierarchy.
    pub host_dir: PathBuf,
}

/// What the parent tells the helper before it creates the container.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitConfig {
    pub id: String,
    pub bundle: PathBuf,
    pub cgroups: Vec<CgroupDir>,
    /// Wait for start on this FIFO (opened by a later `start` command)
    /// instead of on the channel: for a CLI whose `create` process exits.
    pub exec_fifo: Option<PathBuf>,
}

/// What the parent tells the helper to run an extra process in a container;
/// the container init's pidfd travels with it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecConfig {
    /// The container's id (names the exec's session keyring).
    pub id: String,
    pub process: oci_spec::runtime::Process,
    /// The container's seccomp profile applies to execs too.
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    pub cgroups: Vec<CgroupDir>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ToInit {
    Config(InitConfig),
    Exec(Box<ExecConfig>),
    /// Release the init from its wait: `execve` the user process.
    Start,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum FromInit {
    /// From the helper, with the init's pidfd attached.
    Pid(i32),
    /// The process's terminal master (attached), when `process.terminal` is set.
    Console,
    /// The init finished set-up and waits for [`ToInit::Start`].
    Ready,
    /// Set-up or `execve` failed; the message names what and why.
    Error(String),
}

pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair; both ends close-on-exec (the helper's end is dup'ed to fd 3).
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::nix("socketpair", "init channel", e))?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Adopts an inherited fd (the helper's fd 3).
    ///
    /// # Safety
    /// `fd` must be an open socket owned by nobody else.
    pub unsafe fn from_raw(fd: RawFd) -> Channel {
        Channel {
            // SAFETY: the caller guarantees that `fd` is an open socket nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send<T: Serialize>(&self, msg: &T, fd: Option<RawFd>) -> Result<()> {
        let buf = serde_json::to_vec(msg).map_err(|e| Error::Protocol(e.to_string()))?;
        let iov = [IoSlice::new(&buf)];
        let fds: Vec<RawFd> = fd.into_iter().collect();
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        loop {
            match sendmsg::<()>(self.raw(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(Error::nix("sendmsg", "init channel", e)),
            }
        }
    }

    /// Receives one message; `Ok(None)` on EOF (peer closed, e.g. after a successful exec).
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<(T, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.raw(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs().map_err(|e| Error::nix("recvmsg", "cmsgs", e))? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for raw in fds {
                                // SAFETY: the SCM_RIGHTS fds were just installed in our fd table by
                                // this recvmsg and nothing else refers to them; each is wrapped
                                // exactly once (any beyond the first is closed on drop).
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(Error::nix("recvmsg", "init channel", e)),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::Protocol(format!("bad message: {e}")))?;
        Ok(Some((msg, fd)))
    }
}
