//! One error type for the crate: every variant names what failed and where.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syscall failed; `what` names the object (path, pid, field).
    #[error("{syscall} {what}: {source}")]
    Sys {
        syscall: &'static str,
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The bundle's config.json cannot be used; the message names the field and the fix.
    #[error("invalid OCI spec {path}: {msg}")]
    Spec { path: PathBuf, msg: String },
    /// Something in the spec that this runtime does not (yet) support.
    #[error("unsupported OCI spec field {field}: {msg}")]
    Unsupported { field: String, msg: String },
    /// Container set-up failed inside the init helper; its message is relayed as is.
    #[error("{0}")]
    Init(String),
    /// The parent/child protocol broke (helper died, bad message).
    #[error("container init protocol: {0}")]
    Protocol(String),
    #[error("cgroup {path}: {msg}")]
    Cgroup { path: String, msg: String },
    /// The systemd cgroup driver: the unit and what systemd (or its absence) said.
    #[error("systemd unit {unit}: {msg}")]
    Systemd { unit: String, msg: String },
    /// CRIU failed: `log` is its log file, `msg` what failed and its last errors.
    #[error("criu {what} (log {log}): {msg}")]
    Criu {
        what: String,
        log: PathBuf,
        msg: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an `errno`-style failure with the syscall name and its object.
    pub fn sys(
        syscall: &'static str,
        what: impl std::fmt::Display,
        source: std::io::Error,
    ) -> Self {
        Error::Sys {
            syscall,
            what: what.to_string(),
            source,
        }
    }

    /// The same, from a `nix` errno.
    pub fn nix(syscall: &'static str, what: impl std::fmt::Display, e: nix::Error) -> Self {
        Self::sys(syscall, what, std::io::Error::from_raw_os_error(e as i32))
    }

    pub fn unsupported(field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Unsupported {
            field: field.into(),
            msg: msg.into(),
        }
    }
}

/// `io::Error::last_os_error()` helper for raw `libc` calls.
pub(crate) fn last(syscall: &'static str, what: impl std::fmt::Display) -> Error {
    Error::sys(syscall, what, std::io::Error::last_os_error())
}
