//! `containerd-shim-rust-v1 check`: a diagnosis of this host for the person
//! installing the shim. One line per check, machine-checkable:
//!
//! ```text
//! ok|warn|fail <name>: <detail> [fix: <what to do>]
//! ```
//!
//! `fail` means no container can run here (exit status 1); `warn` names a
//! feature that is unavailable and how to get it. Kernel features are probed
//! by trying them (`runtime_core::probe`); nothing here runs when containers
//! are made.

mod cgroups;
mod containerd;
mod criu;
mod kernel;
mod systemd;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug)]
pub struct Check {
    pub level: Level,
    pub name: &'static str,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            level: Level::Ok,
            name,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(crate) fn bad(
        level: Level,
        name: &'static str,
        detail: impl Into<String>,
        fix: &str,
    ) -> Check {
        Check {
            level,
            name,
            detail: detail.into(),
            fix: Some(fix.to_string()),
        }
    }

    pub fn line(&self) -> String {
        let level = match self.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        };
        let mut s = format!("{level} {}: {}", self.name, self.detail);
        if let Some(fix) = &self.fix {
            let _ = write!(s, " fix: {fix}");
        }
        s
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Every check, in the order printed.
pub fn checks(config: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    kernel::checks(&mut out);
    cgroups::checks(&mut out);
    systemd::checks(&mut out);
    criu::check(&mut out);
    containerd::config_check(&mut out, config);
    containerd::binary_check(&mut out);
    out
}

/// Prints the checks; the exit status is 1 when a container could not run.
pub fn run(config: Option<&str>) -> i32 {
    let config = config.map_or_else(
        || PathBuf::from("/etc/containerd/config.toml"),
        PathBuf::from,
    );
    let all = checks(&config);
    for c in &all {
        println!("{}", c.line());
    }
    let fails = all.iter().filter(|c| c.level == Level::Fail).count();
    let warns = all.iter().filter(|c| c.level == Level::Warn).count();
    println!(
        "{} checks: {fails} fail, {warns} warn{}",
        all.len(),
        if fails > 0 {
            ": containers cannot run on this host"
        } else {
            ""
        }
    );
    i32::from(fails > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let c = Check::bad(Level::Warn, "x", "y is off", "turn it on");
        assert_eq!(c.line(), "warn x: y is off fix: turn it on");
        assert_eq!(Check::ok("a", "b").line(), "ok a: b");
    }
}
