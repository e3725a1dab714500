//! runc's command line: global flags, a command, its flags and arguments.

use crate::error::Error;

/// Global flags (before the command), as runc and go-runc use them.
#[derive(Debug, Default)]
pub struct Global {
    pub root: String,
    pub log: Option<String>,
    pub log_json: bool,
    pub debug: bool,
}

#[derive(Debug, Default)]
pub struct Cmd {
    pub name: String,
    /// `--flag value` and bare `--flag` (value "true").
    pub flags: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl Cmd {
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.flag(name).is_some_and(|v| v != "false")
    }

    pub fn arg(&self, i: usize, what: &str) -> Result<&str, Error> {
        self.args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| Error::Usage(format!("{}: missing {what}", self.name)))
    }
}

/// Flags of each command that take no value.
fn is_bool(cmd: &str, flag: &str) -> bool {
    matches!(
        flag,
        "all"
            | "a"
            | "force"
            | "f"
            | "detach"
            | "d"
            | "no-pivot"
            | "no-new-keyring"
            | "tty"
            | "t"
            | "stats"
            | "debug"
            | "systemd-cgroup"
            | "help"
            | "h"
            | "version"
            | "v"
            | "rootless"
    ) || (cmd == "ps" && flag == "json")
}

/// The flags each command implements. Every other flag is refused by name:
/// a runc flag we accepted and ignored would silently change behaviour.
fn supported(cmd: &str) -> &'static [&'static str] {
    match cmd {
        "create" => &["bundle", "b", "pid-file", "console-socket", "preserve-fds"],
        "run" => &["bundle", "b", "pid-file", "console-socket", "preserve-fds"],
        "kill" => &["all", "a"],
        "delete" => &["force", "f"],
        "ps" => &["format", "f"],
        "exec" => &[
            "process",
            "p",
            "detach",
            "d",
            "pid-file",
            "console-socket",
            "tty",
            "t",
            "cwd",
            "env",
            "e",
            "user",
            "u",
            "preserve-fds",
        ],
        "update" => &["resources", "r"],
        _ => &[],
    }
}

/// Why a runc flag we know is not supported.
fn refused(flag: &str) -> Option<&'static str> {
    Some(match flag {
        "no-pivot" => "runtime-core always uses pivot_root in a mount namespace",
        "no-new-keyring" => "runtime-core always gives the container its own session keyring",
        "detach" | "d" => "`run --detach` is not supported: use create and start",
        "keep" => "`run --keep` is not supported",
        "no-subreaper" => "not supported",
        "cap" | "c" | "additional-gids" | "g" | "apparmor" | "process-label" | "no-new-privs" => {
            "give the exec process as --process FILE instead"
        }
        "systemd-cgroup" => "the systemd cgroup driver is not supported",
        _ => return None,
    })
}

/// Refuses flags `cmd` does not implement, naming each.
pub fn check_flags(cmd: &Cmd) -> Result<(), Error> {
    check_flags_of(cmd).map_err(Error::Usage)
}

fn check_flags_of(cmd: &Cmd) -> Result<(), String> {
    for (name, value) in &cmd.flags {
        if supported(&cmd.name).contains(&name.as_str()) {
            if name == "preserve-fds" && value != "0" {
                return Err(format!(
                    "{}: --preserve-fds {value}: passing extra fds is not supported",
                    cmd.name
                ));
            }
            continue;
        }
        return Err(match refused(name) {
            Some(why) => format!("{}: --{name}: {why}", cmd.name),
            None => format!("{}: flag --{name} is not supported by rshim-runc", cmd.name),
        });
    }
    Ok(())
}

pub fn parse(argv: &[String]) -> Result<(Global, Cmd), Error> {
    parse_words(argv).map_err(Error::Usage)
}

fn parse_words(argv: &[String]) -> Result<(Global, Cmd), String> {
    let mut g = Global {
        root: "/run/rshim-runc".into(),
        ..Default::default()
    };
    let mut it = argv.iter().peekable();
    let mut cmd = Cmd::default();
    // Global flags until the first non-flag word (the command).
    while let Some(a) = it.next() {
        let Some(f) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            cmd.name = a.clone();
            break;
        };
        let (name, inline) = match f.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (f.to_string(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or(format!("--{name} needs a value"))
        };
        match name.as_str() {
            "root" => g.root = value()?,
            "log" => g.log = Some(value()?),
            "log-format" => g.log_json = value()? == "json",
            "debug" => g.debug = true,
            "systemd-cgroup" => {
                return Err("--systemd-cgroup: the systemd cgroup driver is not supported".into())
            }
            // Global flags go-runc may pass that change nothing for us.
            "criu" => {
                value()?;
            }
            "rootless" => {
                if value()? == "true" {
                    return Err("--rootless true: rootless containers are not supported".into());
                }
            }
            "version" | "v" => cmd.name = "--version".into(),
            "help" | "h" => cmd.name = "--help".into(),
            other => return Err(format!("flag provided but not defined: --{other}")),
        }
    }
    let mut rest = false;
    while let Some(a) = it.next() {
        if rest || !a.starts_with('-') || a == "-" {
            cmd.args.push(a.clone());
            // `exec ID CMD ARGS...`: everything after the id belongs to CMD.
            rest |= cmd.name == "exec";
            continue;
        }
        if a == "--" {
            rest = true;
            continue;
        }
        let f = a.trim_start_matches('-');
        let (name, inline) = match f.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (f.to_string(), None),
        };
        let value = if let Some(v) = inline {
            v
        } else if is_bool(&cmd.name, &name) {
            "true".into()
        } else {
            it.next()
                .cloned()
                .ok_or(format!("{}: --{name} needs a value", cmd.name))?
        };
        cmd.flags.push((name, value));
    }
    Ok((g, cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (Global, Cmd) {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn go_runc_create_line() {
        let (g, c) = p("--root /run/r --log /b/log.json --log-format json create --bundle /b --pid-file /b/pid --console-socket /s c1");
        assert_eq!(
            (g.root.as_str(), g.log.as_deref(), g.log_json),
            ("/run/r", Some("/b/log.json"), true)
        );
        assert_eq!(
            (c.name.as_str(), c.flag("bundle"), c.flag("pid-file")),
            ("create", Some("/b"), Some("/b/pid"))
        );
        assert_eq!(c.args, ["c1"]);
    }

    #[test]
    fn unimplemented_flags_are_refused_by_name() {
        for (line, want) in [
            (
                "create --bundle /b --no-pivot c1",
                "--no-pivot: runtime-core always uses pivot_root",
            ),
            (
                "create --bundle /b --no-new-keyring c1",
                "own session keyring",
            ),
            ("create --bundle /b --preserve-fds 2 c1", "--preserve-fds 2"),
            ("run -d --bundle /b c1", "use create and start"),
            ("update --memory 100 c1", "flag --memory is not supported"),
            ("exec --cap CAP_SYS_ADMIN c1 sh", "--process FILE"),
        ] {
            let (_, c) = p(line);
            let e = check_flags(&c).unwrap_err();
            assert!(e.to_string().contains(want), "{line}: {e}");
        }
        let (_, c) = p("create --bundle /b --pid-file /p --console-socket /s --preserve-fds 0 c1");
        check_flags(&c).unwrap();
        assert!(parse(&["--rootless".into(), "true".into(), "state".into()]).is_err());
    }

    #[test]
    fn kill_all_and_exec_command() {
        let (_, c) = p("kill --all c1 9");
        assert!(c.has("all"));
        assert_eq!(c.args, ["c1", "9"]);
        let (_, c) = p("exec --detach --pid-file /p c1 sh -c true");
        assert!(c.has("detach"));
        assert_eq!(c.args, ["c1", "sh", "-c", "true"]);
    }
}
