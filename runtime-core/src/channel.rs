//! The control channel between the shim (parent) and the container init.
//!
//! A `SOCK_SEQPACKET` socketpair: message boundaries come for free, the init's
//! end is close-on-exec so a successful `execve` shows up as EOF, and the pidfd
//! of the new init travels back with `SCM_RIGHTS`.
//!
//! # Framing
//! One datagram of a `SOCK_SEQPACKET` socket must fit the sender's socket
//! buffer (`net.core.wmem_default`, about 208 KiB): a larger `sendmsg` fails
//! with `EMSGSIZE`. An exec's process (args and env up to the kernel's 6 MiB
//! `execve` limit) is larger than that, so a message is sent as frames:
//! the first carries an 8-byte header with the total length, the message's
//! fds and the start of the payload; continuation frames carry the rest.
//! The receiver refuses a truncated frame, fds on a continuation frame, an
//! early EOF and a length over [`MAX_MSG`], each with an error naming it.
//!
//! Two processes share the init's end (the helper reports the pid, the init
//! its set-up): frames of two senders could interleave, so only messages that
//! fit one frame may be sent from there. Those are all small ([`FromInit`]);
//! [`FromInit::Error`] texts are cut to fit (see [`error_report`]).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bytes in one datagram, header included: well under the smallest default
/// socket buffer of the kernels we run on, so a frame never gets `EMSGSIZE`.
pub const FRAME: usize = 32 * 1024;

/// Size of the length header that opens every message.
const HEADER: usize = 8;

/// Largest message accepted. The kernel caps what `execve` takes at 6 MiB of
/// args and env; JSON escaping can grow a string sixfold (`\u0001`).
pub const MAX_MSG: usize = 64 * 1024 * 1024;

/// At most this many fds travel with one message; more is a protocol error.
pub const MAX_FDS: usize = 2;

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

/// [`FromInit::Error`] with the text cut (at a char boundary) so that the
/// message fits one frame: it is sent from an end two processes share.
pub fn error_report(msg: String) -> FromInit {
    // JSON escaping may grow the text: leave room for it within the frame.
    const ROOM: usize = (FRAME - HEADER - 64) / 6;
    if msg.len() <= ROOM {
        return FromInit::Error(msg);
    }
    let mut cut = ROOM - 4;
    while !msg.is_char_boundary(cut) {
        cut -= 1;
    }
    FromInit::Error(format!("{} ...", &msg[..cut]))
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
            // SAFETY: the caller promises `fd` is open and owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends `msg` with `fd` attached (see the module docs for the framing).
    pub fn send<T: Serialize>(&self, msg: &T, fd: Option<RawFd>) -> Result<()> {
        let payload = serde_json::to_vec(msg).map_err(|e| Error::Protocol(e.to_string()))?;
        let fds: Vec<RawFd> = fd.into_iter().collect();
        self.send_bytes(&payload, &fds)
    }

    /// Sends raw `payload` bytes as one message with `fds` attached.
    pub fn send_bytes(&self, payload: &[u8], fds: &[RawFd]) -> Result<()> {
        if payload.len() > MAX_MSG {
            return Err(Error::Protocol(format!(
                "message of {} bytes is over the channel's limit of {MAX_MSG} bytes",
                payload.len()
            )));
        }
        if fds.len() > MAX_FDS {
            return Err(Error::Protocol(format!(
                "{} fds in one message, at most {MAX_FDS}",
                fds.len()
            )));
        }
        let header = (payload.len() as u64).to_le_bytes();
        let first = payload.len().min(FRAME - HEADER);
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        self.send_frame(
            &[IoSlice::new(&header), IoSlice::new(&payload[..first])],
            cmsgs,
        )?;
        for chunk in payload[first..].chunks(FRAME) {
            self.send_frame(&[IoSlice::new(chunk)], &[])?;
        }
        Ok(())
    }

    fn send_frame(&self, iov: &[IoSlice], cmsgs: &[ControlMessage]) -> Result<()> {
        loop {
            match sendmsg::<()>(self.raw(), iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(Error::nix("sendmsg", "init channel", e)),
            }
        }
    }

    /// Receives one message; `Ok(None)` on EOF (peer closed, e.g. after a successful exec).
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<(T, Option<OwnedFd>)>> {
        let Some((payload, mut fds)) = self.recv_bytes()? else {
            return Ok(None);
        };
        let msg = serde_json::from_slice(&payload)
            .map_err(|e| Error::Protocol(format!("bad message: {e}")))?;
        let fd = (!fds.is_empty()).then(|| fds.remove(0));
        if !fds.is_empty() {
            return Err(Error::Protocol(format!(
                "{} fds with one message, expected at most 1",
                fds.len() + 1
            )));
        }
        Ok(Some((msg, fd)))
    }

    /// Receives one message's bytes and fds; `Ok(None)` on EOF before it.
    pub fn recv_bytes(&self) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        let mut frame = vec![0u8; FRAME];
        let (n, fds) = self.recv_frame(&mut frame, true)?;
        if n == 0 {
            return Ok(None);
        }
        if n < HEADER {
            return Err(Error::Protocol(format!(
                "frame of {n} bytes, shorter than the {HEADER}-byte header"
            )));
        }
        let total = u64::from_le_bytes(frame[..HEADER].try_into().expect("8 bytes"));
        if total > MAX_MSG as u64 {
            return Err(Error::Protocol(format!(
                "message of {total} bytes announced, over the channel's limit of {MAX_MSG} bytes"
            )));
        }
        let total = total as usize;
        let first = n - HEADER;
        if first > total || (first < total && n < FRAME) {
            return Err(Error::Protocol(format!(
                "first frame holds {first} bytes of a {total}-byte message"
            )));
        }
        let mut payload = Vec::with_capacity(total);
        payload.extend_from_slice(&frame[HEADER..n]);
        while payload.len() < total {
            let (n, extra) = self.recv_frame(&mut frame, false)?;
            if !extra.is_empty() {
                return Err(Error::Protocol("fds on a continuation frame".into()));
            }
            if n == 0 {
                return Err(Error::Protocol(format!(
                    "channel closed after {} of {total} bytes of a message",
                    payload.len()
                )));
            }
            let want = (total - payload.len()).min(FRAME);
            if n != want {
                return Err(Error::Protocol(format!(
                    "continuation frame of {n} bytes where {want} were due"
                )));
            }
            payload.extend_from_slice(&frame[..n]);
        }
        Ok(Some((payload, fds)))
    }

    /// One datagram into `buf`, with the fds it carried (owned, close-on-exec).
    fn recv_frame(&self, buf: &mut [u8], first: bool) -> Result<(usize, Vec<OwnedFd>)> {
        // Room for one fd more than allowed, so that too many shows as too
        // many (and is closed) rather than as a truncated control message.
        let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS + 1]);
        loop {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = match recvmsg::<()>(
                self.raw(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => msg,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(Error::nix("recvmsg", "init channel", e)),
            };
            let mut fds = Vec::new();
            for c in msg.cmsgs().map_err(|e| Error::nix("recvmsg", "cmsgs", e))? {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    for fd in raw {
                        // SAFETY: SCM_RIGHTS just installed `fd` in our table;
                        // nothing else refers to it.
                        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }
            }
            // Dropping `fds` on the error paths below closes what did arrive.
            if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                return Err(Error::Protocol(format!(
                    "frame longer than {} bytes (truncated)",
                    buf.len()
                )));
            }
            if msg.flags.contains(MsgFlags::MSG_CTRUNC) || fds.len() > MAX_FDS {
                return Err(Error::Protocol(format!(
                    "more than {MAX_FDS} fds with one message"
                )));
            }
            if !first && !fds.is_empty() {
                return Err(Error::Protocol("fds on a continuation frame".into()));
            }
            return Ok((msg.bytes, fds));
        }
    }
}

#[cfg(test)]
mod tests;
