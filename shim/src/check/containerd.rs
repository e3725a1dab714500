//! containerd's side: its config names our runtime, and it finds our binary.

use std::path::Path;

use super::{Check, Level};

const RUNTIME_TYPE: &str = "io.containerd.rust.v1";
const CRI_V2: &str = "io.containerd.grpc.v1.cri";
const CRI_V3: &str = "io.containerd.cri.v1.runtime";

/// What containerd's config says about our runtime, by its config version
/// (2: containerd 1.x's form; 3: 2.x's, which still reads version 2 files).
pub fn containerd_config(path: &Path, text: &str) -> Check {
    let fix = format!(
        "add [plugins.\"{CRI_V2}\".containerd.runtimes.rust] runtime_type = \"{RUNTIME_TYPE}\" \
         (version = 2, containerd 1.x) or [plugins.\"{CRI_V3}\".containerd.runtimes.rust] \
         runtime_type = \"{RUNTIME_TYPE}\" (version = 3, containerd 2.x) to {}, and restart containerd",
        path.display()
    );
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            return Check::bad(
                Level::Warn,
                "containerd-config",
                format!("{}: not valid TOML: {e}", path.display()),
                "fix the syntax (containerd will not start with it either)",
            )
        }
    };
    let version = table
        .get("version")
        .and_then(|v| v.as_integer())
        .unwrap_or(1);
    let runtimes = |plugin: &str| {
        table
            .get("plugins")
            .and_then(|p| p.get(plugin))
            .and_then(|p| p.get("containerd"))
            .and_then(|p| p.get("runtimes"))
            .and_then(|r| r.as_table())
            .map(|r| {
                r.iter()
                    .filter(|(_, v)| {
                        v.get("runtime_type").and_then(|t| t.as_str()) == Some(RUNTIME_TYPE)
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let (form, found) = match version {
        3 => ("version 3, containerd 2.x", runtimes(CRI_V3)),
        2 => (
            "version 2, containerd 1.x (2.x migrates it)",
            runtimes(CRI_V2),
        ),
        v => {
            return Check::bad(
                Level::Warn,
                "containerd-config",
                format!(
                    "{}: config version {v} is older than any containerd 1.6 reads",
                    path.display()
                ),
                &fix,
            )
        }
    };
    if found.is_empty() {
        let other = if version == 3 { CRI_V2 } else { CRI_V3 };
        let misplaced = !runtimes(other).is_empty();
        return Check::bad(
            Level::Warn,
            "containerd-config",
            format!(
                "{} ({form}) names no CRI runtime handler with runtime_type {RUNTIME_TYPE}{}: \
                 Kubernetes cannot use it (ctr --runtime {RUNTIME_TYPE} works without)",
                path.display(),
                if misplaced {
                    format!(" in its form; one is under plugins.\"{other}\", which this version ignores")
                } else {
                    String::new()
                }
            ),
            &fix,
        );
    }
    let mut problems = Vec::new();
    for (name, rt) in &found {
        if let Some(opts) = rt.get("options").and_then(|o| o.as_table()) {
            match crate::options::Options::from_table(opts) {
                Ok(o) => {
                    problems.extend(o.refusals().into_iter().map(|r| format!("{name}: {r}")));
                    if o.systemd_cgroup {
                        problems.push(format!(
                            "{name}: runtime option SystemdCgroup is not supported yet"
                        ));
                    }
                }
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
    }
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    if problems.is_empty() {
        Check::ok(
            "containerd-config",
            format!(
                "{} ({form}) names {RUNTIME_TYPE} as CRI handler {}",
                path.display(),
                names.join(", ")
            ),
        )
    } else {
        Check::bad(
            Level::Warn,
            "containerd-config",
            format!(
                "{} ({form}) names handler {}, but containers will be refused: {}",
                path.display(),
                names.join(", "),
                problems.join("; ")
            ),
            "remove those options from the handler's options table",
        )
    }
}

pub(super) fn config_check(out: &mut Vec<Check>, path: &Path) {
    out.push(match std::fs::read_to_string(path) {
        Ok(text) => containerd_config(path, &text),
        Err(e) => Check::bad(
            Level::Warn,
            "containerd-config",
            format!(
                "{}: {e}: containerd runs with its defaults, where only \
                 `ctr run --runtime {RUNTIME_TYPE}` uses this shim",
                path.display()
            ),
            &format!(
                "containerd config default > {} and add a runtimes.rust table with \
                 runtime_type = \"{RUNTIME_TYPE}\"",
                path.display()
            ),
        ),
    });
}

/// containerd finds `containerd-shim-rust-v1` on its PATH.
pub(super) fn binary_check(out: &mut Vec<Check>) {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join("containerd-shim-rust-v1"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    out.push(match found {
        Some(p) => Check::ok("shim-binary", format!("{} is on PATH", p.display())),
        None => Check::bad(
            Level::Warn,
            "shim-binary",
            "containerd-shim-rust-v1 is not on this PATH: containerd looks it up on its own \
             PATH by the runtime name io.containerd.rust.v1",
            "install -m 0755 containerd-shim-rust-v1 /usr/local/bin/",
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Check {
        containerd_config(Path::new("/etc/containerd/config.toml"), text)
    }

    #[test]
    fn containerd_config_forms() {
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rust]\n\
                  runtime_type = \"io.containerd.rust.v1\"\n";
        let c = cfg(v2);
        assert_eq!(c.level, Level::Ok, "{}", c.line());
        assert!(c.detail.contains("handler rust") && c.detail.contains("version 2"));
        let v3 = "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.r]\n\
                  runtime_type = \"io.containerd.rust.v1\"\n";
        assert_eq!(cfg(v3).level, Level::Ok);
        // A 1.x table in a version 3 file is ignored by containerd 2.x.
        let wrong = v2.replace("version = 2", "version = 3");
        let c = cfg(&wrong);
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.contains("ignores"), "{}", c.detail);
        assert_eq!(cfg("version = 2\n").level, Level::Warn);
        assert_eq!(cfg("version = [").level, Level::Warn);
    }

    #[test]
    fn refused_handler_options_are_named() {
        let t = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rust]\n\
                 runtime_type = \"io.containerd.rust.v1\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rust.options]\n\
                 BinaryName = \"crun\"\nSystemdCgroup = true\n";
        let c = cfg(t);
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.contains("BinaryName") && c.detail.contains("SystemdCgroup"));
    }
}
