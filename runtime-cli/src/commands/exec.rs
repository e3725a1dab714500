//! `exec`: a process from `--process FILE`, or `exec ID CMD...` over the
//! container's own process settings with runc's override flags.

use std::path::PathBuf;

use runtime_core::{Container, Stdio};

use super::{dup_stdio, send_console, write_pid_file};
use crate::args::{Cmd, Global};
use crate::error::{Error, Res};
use crate::state;

pub fn exec(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let s = state::load(&g.root, id)?;
    if state::status(&g.root, &s) != "running" {
        return Err(Error::Status(format!(
            "cannot exec in container {id}: it is not running"
        )));
    }
    let process: oci_spec::runtime::Process = match cmd.flag("process").or(cmd.flag("p")) {
        Some(path) => {
            let data = std::fs::read(path).map_err(Error::io(format!("--process {path}")))?;
            serde_json::from_slice(&data).map_err(Error::json(format!("--process {path}")))?
        }
        None => {
            // `exec ID CMD...`: the container's own process settings, another command.
            let spec = runtime_core::spec::load(&s.bundle)?;
            let mut p = spec
                .process()
                .clone()
                .ok_or_else(|| Error::Usage("the container has no process".into()))?;
            if cmd.args.len() < 2 {
                return Err(Error::Usage(
                    "exec: give --process FILE or a command".into(),
                ));
            }
            p.set_args(Some(cmd.args[1..].to_vec()));
            p.set_terminal(Some(cmd.has("tty") || cmd.has("t")));
            overrides(&mut p, cmd)?;
            p
        }
    };
    let terminal = process.terminal() == Some(true);
    let stdio = if terminal {
        Stdio::default()
    } else {
        dup_stdio()?
    };
    let c = Container::attach(id, &s.bundle, s.pid)?;
    let (pidfd, console) = c.exec(&process, stdio)?;
    if let (Some(sock), Some(master)) = (cmd.flag("console-socket"), console) {
        send_console(sock, master)?;
    }
    write_pid_file(cmd.flag("pid-file"), pidfd.pid())?;
    if cmd.has("detach") || cmd.has("d") {
        return Ok(());
    }
    // The process is our child (CLONE_PARENT from the helper): wait for it.
    let status = pidfd.reap_blocking()?;
    std::process::exit(status.0 as i32)
}

/// `exec ID CMD` flags over the container's own process settings, as runc.
fn overrides(p: &mut oci_spec::runtime::Process, cmd: &Cmd) -> Res {
    if let Some(cwd) = cmd.flag("cwd") {
        p.set_cwd(PathBuf::from(cwd));
    }
    let extra: Vec<String> = cmd
        .flags
        .iter()
        .filter(|(k, _)| k == "env" || k == "e")
        .map(|(_, v)| v.clone())
        .collect();
    if !extra.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in extra {
            let key = e.split('=').next().unwrap_or_default().to_string();
            env.retain(|old| old.split('=').next() != Some(key.as_str()));
            env.push(e);
        }
        p.set_env(Some(env));
    }
    if let Some(u) = cmd.flag("user").or(cmd.flag("u")) {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let id = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Error::Usage(format!("exec --user {u}: want UID[:GID] as numbers")))
        };
        let mut user = p.user().clone();
        user.set_uid(id(uid)?);
        user.set_gid(id(gid)?);
        p.set_user(user);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(flags: &[(&str, &str)]) -> Cmd {
        Cmd {
            name: "exec".into(),
            flags: flags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: vec![],
        }
    }

    #[test]
    fn overrides_replace_env_by_key_and_set_user_and_cwd() {
        let mut p = oci_spec::runtime::Process::default();
        p.set_env(Some(vec!["A=1".into(), "B=2".into()]));
        let c = cmd(&[("env", "A=9"), ("e", "C=3"), ("cwd", "/w"), ("u", "5:6")]);
        overrides(&mut p, &c).unwrap();
        assert_eq!(
            p.env().as_deref().unwrap(),
            ["B=2".to_string(), "A=9".into(), "C=3".into()]
        );
        assert_eq!(p.cwd(), &PathBuf::from("/w"));
        assert_eq!((p.user().uid(), p.user().gid()), (5, 6));
        let mut p = oci_spec::runtime::Process::default();
        overrides(&mut p, &cmd(&[("user", "7")])).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (7, 0));
        let e = overrides(&mut p, &cmd(&[("user", "root")])).unwrap_err();
        assert_eq!(e.to_string(), "exec --user root: want UID[:GID] as numbers");
    }
}
