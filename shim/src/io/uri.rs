//! Parsing of the stdio URIs containerd passes (as Go's `url.Parse` does).

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use super::logger::LoggerCmd;

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidInput, msg)
}

/// A stdio URI split the way Go's `url.Parse` does (only what we use).
pub(super) struct Uri<'a> {
    pub(super) scheme: &'a str,
    pub(super) path: Vec<u8>,
    pub(super) query: &'a str,
}

pub(super) fn parse_uri(uri: &str) -> std::io::Result<Uri<'_>> {
    let scheme_end = uri.find(':').filter(|&i| {
        let s = &uri.as_bytes()[..i];
        !s.is_empty()
            && s[0].is_ascii_alphabetic()
            && s.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
    });
    let Some(i) = scheme_end else {
        // No scheme: a FIFO path, taken verbatim.
        return Ok(Uri {
            scheme: "",
            path: uri.as_bytes().to_vec(),
            query: "",
        });
    };
    let scheme = &uri[..i];
    let mut rest = &uri[i + 1..];
    if let Some(h) = rest.find('#') {
        rest = &rest[..h];
    }
    let (mut path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some(after) = path.strip_prefix("//") {
        let host_end = after.find('/').unwrap_or(after.len());
        if host_end != 0 {
            return Err(invalid(format!(
                "stdio URI {uri}: a host ({}) is not supported; write {scheme}:///absolute/path",
                &after[..host_end]
            )));
        }
        path = &after[host_end..];
    }
    let path = unescape(path, false)
        .ok_or_else(|| invalid(format!("stdio URI {uri}: bad %-escape in the path")))?;
    if !path.starts_with(b"/") {
        return Err(invalid(format!(
            "stdio URI {uri}: the path must be absolute ({scheme}:///absolute/path)"
        )));
    }
    Ok(Uri {
        scheme,
        path,
        query,
    })
}

/// Percent-decoding; in a query, `+` is a space too.
pub(super) fn unescape(s: &str, query: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = b.get(i + 1..i + 3)?;
                if !h.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Where a process's output goes.
pub(super) enum Target {
    /// FIFO paths; empty = not attached.
    Fifos(String, String),
    File(PathBuf),
    Binary(LoggerCmd),
}

const SUPPORTED: &str = "supported are FIFO paths (plain or fifo://), binary:// and file://";

pub(super) fn fifo_path(uri: &str) -> std::io::Result<String> {
    if uri.is_empty() {
        return Ok(String::new());
    }
    let u = parse_uri(uri)?;
    match u.scheme {
        "" | "fifo" => {
            String::from_utf8(u.path).map_err(|_| invalid(format!("FIFO path {uri} is not UTF-8")))
        }
        "binary" | "file" => Err(invalid(format!(
            "stdio URI {uri}: {}:// is for stdout and stderr only",
            u.scheme
        ))),
        s => Err(invalid(format!(
            "stdio URI {uri}: unsupported scheme \"{s}\"; {SUPPORTED}"
        ))),
    }
}

pub(super) fn target(stdout: &str, stderr: &str) -> std::io::Result<Target> {
    let main = if stdout.is_empty() { stderr } else { stdout };
    if main.is_empty() {
        return Ok(Target::Fifos(String::new(), String::new()));
    }
    let u = parse_uri(main)?;
    let t = match u.scheme {
        "" | "fifo" => return Ok(Target::Fifos(fifo_path(stdout)?, fifo_path(stderr)?)),
        "file" => Target::File(PathBuf::from(OsString::from_vec(u.path))),
        "binary" => Target::Binary(LoggerCmd::new(&u)),
        s => {
            return Err(invalid(format!(
                "stdio URI {main}: unsupported scheme \"{s}\"; {SUPPORTED}"
            )))
        }
    };
    if !stdout.is_empty() && !stderr.is_empty() && stdout != stderr {
        return Err(invalid(format!(
            "stdout {stdout} and stderr {stderr}: a {}:// URI must be the same for both",
            u.scheme
        )));
    }
    Ok(t)
}
