//! The CLI's one error type: what failed, on which object, and (for the
//! runtime's own errors) the runtime's message unchanged. Every message reads
//! as it did when these were strings: go-runc and the tests match on them.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line: an unknown command or flag, a missing argument.
    #[error("{0}")]
    Usage(String),
    /// The container is missing or in a status the command cannot act on.
    #[error("{0}")]
    Status(String),
    /// A file, FIFO or socket operation; `what` names the operation and path.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// An I/O error with nothing more to name (the process's own cwd, stdin).
    #[error(transparent)]
    BareIo(#[from] io::Error),
    /// A JSON document we read (`--process`, `--resources`, state.json).
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A syscall through nix; `what` names it and its object.
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    /// The runtime refused or failed; its message is already complete.
    #[error(transparent)]
    Runtime(#[from] runtime_core::Error),
}

impl Error {
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    pub fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
        let what = what.into();
        move |source| Error::Json { what, source }
    }

    pub fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
        let what = what.into();
        move |source| Error::Sys { what, source }
    }
}

pub type Res = Result<(), Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_before() {
        let e = Error::io("pid file /x.tmp")(io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            e.to_string(),
            "pid file /x.tmp: No such file or directory (os error 2)"
        );
        let e = Error::sys("mkfifo /f")(nix::Error::EEXIST);
        assert_eq!(e.to_string(), "mkfifo /f: EEXIST: File exists");
        let j = serde_json::from_slice::<serde_json::Value>(b"{").unwrap_err();
        let e = Error::json("--process p.json")(j);
        assert!(e.to_string().starts_with("--process p.json: EOF"), "{e}");
        assert_eq!(
            Error::Usage("x: missing id".into()).to_string(),
            "x: missing id"
        );
    }
}
