//! runc's command line: global flags, a command, its flags and arguments.

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

    pub fn arg(&self, i: usize, what: &str) -> Result<&str, String> {
        self.args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("{}: missing {what}", self.name))
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

pub fn parse(argv: &[String]) -> Result<(Global, Cmd), String> {
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
            "criu" | "rootless" => {
                value()?;
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
    fn kill_all_and_exec_command() {
        let (_, c) = p("kill --all c1 9");
        assert!(c.has("all"));
        assert_eq!(c.args, ["c1", "9"]);
        let (_, c) = p("exec --detach --pid-file /p c1 sh -c true");
        assert!(c.has("detach"));
        assert_eq!(c.args, ["c1", "sh", "-c", "true"]);
    }
}
