//! `rshim-runc`: a runc-compatible command line over runtime-core, so any OCI
//! tooling (containerd's Go runc shim through `BinaryName`, runtime-tools, runc's
//! own tests) can drive our runtime and be compared with runc on equal terms.
//!
//! Unlike the shim, a CLI's `create` process exits while the container waits
//! to be started: the init then waits on `<root>/<id>/exec.fifo`, which
//! `start` opens (runc's own design), instead of on the control channel.

mod args;
mod logger;
mod state;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use args::{Cmd, Global};
use runtime_core::{Container, CreateOpts, Stdio};

type Res = Result<(), String>;

fn main() {
    // First, before any thread exists: maybe we are the container-init helper.
    runtime_core::init::main_if_helper();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (g, cmd) = match args::parse(&argv) {
        Ok(p) => p,
        Err(e) => fail(&Global::default(), &e),
    };
    logger::init(&g);
    if let Err(e) = args::check_flags(&cmd) {
        fail(&g, &e);
    }
    let r = match cmd.name.as_str() {
        "create" => create(&g, &cmd),
        "start" => start(&g, &cmd),
        "run" => run(&g, &cmd),
        "state" => state_cmd(&g, &cmd),
        "kill" => kill(&g, &cmd),
        "delete" => delete(&g, &cmd),
        "ps" => ps(&g, &cmd),
        "exec" => exec(&g, &cmd),
        "pause" => with_container(&g, &cmd, |c| c.pause()),
        "resume" => with_container(&g, &cmd, |c| c.resume()),
        "update" => update(&g, &cmd),
        "features" => features(),
        "--version" => {
            println!(
                "rshim-runc version {}\nspec: 1.0.2",
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
        "" | "--help" => Err(
            "usage: rshim-runc [--root DIR] [--log FILE] [--log-format json] COMMAND [FLAGS] ID"
                .into(),
        ),
        other => Err(format!("command {other:?} is not supported")),
    };
    if let Err(e) = r {
        fail(&g, &e);
    }
}

/// One error, on stderr and (as go-runc reads it) in the JSON log.
fn fail(g: &Global, msg: &str) -> ! {
    if let Some(log) = &g.log {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let line = if g.log_json {
                serde_json::json!({"level": "error", "msg": msg}).to_string()
            } else {
                format!("level=error msg={msg:?}")
            };
            let _ = writeln!(f, "{line}");
        }
    }
    eprintln!("rshim-runc: {msg}");
    std::process::exit(1)
}

fn dup_stdio() -> Result<Stdio, String> {
    let d = |fd: i32| -> Result<Option<OwnedFd>, String> {
        // SAFETY: fd is 0, 1 or 2: std's start-up reopens any of them that was closed on /dev/null,
        // and nothing in this process closes them, so the fd stays open for the borrow, which ends
        // in this closure.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        b.try_clone_to_owned()
            .map(Some)
            .map_err(|e| format!("dup fd {fd}: {e}"))
    };
    Ok(Stdio {
        stdin: d(0)?,
        stdout: d(1)?,
        stderr: d(2)?,
    })
}

/// Sends the terminal master to `--console-socket`, as runc does.
fn send_console(socket: &str, master: OwnedFd) -> Res {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let s = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| format!("connect console socket {socket}: {e}"))?;
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
    sendmsg::<()>(
        s.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("send console to {socket}: {e}"))?;
    Ok(())
}

fn write_pid_file(path: Option<&str>, pid: i32) -> Res {
    let Some(path) = path else { return Ok(()) };
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, pid.to_string()).map_err(|e| format!("pid file {tmp}: {e}"))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("pid file {path}: {e}"))
}

fn bundle_of(cmd: &Cmd) -> Result<PathBuf, String> {
    let b = cmd.flag("bundle").or(cmd.flag("b")).map(PathBuf::from);
    let b = match b {
        Some(b) => b,
        None => std::env::current_dir().map_err(|e| e.to_string())?,
    };
    std::fs::canonicalize(&b).map_err(|e| format!("bundle {}: {e}", b.display()))
}

/// create: the container waits on its exec FIFO until `start`.
fn create_container(
    g: &Global,
    cmd: &Cmd,
    id: &str,
    fifo_wait: bool,
) -> Result<(Container, state::Saved), String> {
    let bundle = bundle_of(cmd)?;
    let dir = state::dir(&g.root, id);
    if dir.exists() {
        return Err(format!("container with id {id} exists already"));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let fifo = state::fifo(&g.root, id);
    let undo = |e: String| {
        let _ = std::fs::remove_dir_all(&dir);
        e
    };
    let spec = runtime_core::spec::load(&bundle).map_err(|e| undo(e.to_string()))?;
    if fifo_wait {
        state::make_fifo(&fifo, &spec).map_err(undo)?;
    }
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let console_socket = cmd.flag("console-socket");
    if terminal && console_socket.is_none() && fifo_wait {
        return Err(undo("process.terminal needs --console-socket".into()));
    }
    let stdio = if terminal {
        Stdio::default()
    } else {
        dup_stdio().map_err(undo)?
    };
    let opts = CreateOpts {
        id,
        bundle: &bundle,
        stdio,
        exec_fifo: fifo_wait.then_some(fifo.as_path()),
    };
    let mut c = Container::create(opts).map_err(|e| undo(e.to_string()))?;
    if let (Some(sock), Some(master)) = (console_socket, c.take_console()) {
        if let Err(e) = send_console(sock, master) {
            let _ = c.kill(libc::SIGKILL, true);
            let _ = c.delete();
            return Err(undo(e));
        }
    }
    let saved = state::Saved {
        id: id.to_string(),
        pid: c.pid(),
        start_time: state::start_time(c.pid()).unwrap_or(0),
        bundle,
        created: runtime_core::rfc3339::now(),
    };
    state::save(&g.root, &saved).map_err(undo)?;
    write_pid_file(cmd.flag("pid-file"), c.pid())?;
    Ok((c, saved))
}

fn create(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    create_container(g, cmd, id, true).map(|_| ())
}

fn start(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let s = state::load(&g.root, id)?;
    let status = state::status(&g.root, &s);
    if status != "created" {
        return Err(format!("cannot start a container that is {status}"));
    }
    let fifo = state::fifo(&g.root, id);
    // Opening for reading meets the init's pending open for writing.
    let mut f = std::fs::File::open(&fifo).map_err(|e| format!("open {}: {e}", fifo.display()))?;
    let mut b = [0u8; 1];
    let n =
        std::io::Read::read(&mut f, &mut b).map_err(|e| format!("read {}: {e}", fifo.display()))?;
    let _ = std::fs::remove_file(&fifo);
    if n != 1 {
        return Err("the container init exited before it was started".into());
    }
    // The user process runs from here on and may be gone (exited and reaped by our
    // caller, a subreaper) before we look: attach (pidfd_open) only for poststart hooks.
    let spec = runtime_core::spec::load(&s.bundle).map_err(|e| e.to_string())?;
    let has_poststart = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().as_ref())
        .is_some_and(|p| !p.is_empty());
    if !has_poststart {
        return Ok(());
    }
    let c = Container::attach(id, &s.bundle, s.pid).map_err(|e| e.to_string())?;
    if let Err(e) = c.run_hooks("poststart", "running") {
        eprintln!("rshim-runc: warning: {e}");
    }
    Ok(())
}

/// run: create, start, wait; the exit code is the container's.
fn run(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let (mut c, _) = create_container(g, cmd, id, false)?;
    let started = c.start();
    let status = c.init().reap_blocking();
    let deleted = c.delete();
    let _ = std::fs::remove_dir_all(state::dir(&g.root, id));
    started.map_err(|e| e.to_string())?;
    deleted.map_err(|e| e.to_string())?;
    std::process::exit(status.map_err(|e| e.to_string())?.0 as i32)
}

fn state_cmd(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let s = state::load(&g.root, id)?;
    let status = state::status(&g.root, &s);
    let spec = runtime_core::spec::load(&s.bundle).ok();
    let rootfs = spec
        .as_ref()
        .and_then(|sp| runtime_core::spec::rootfs(&s.bundle, sp).ok());
    let out = serde_json::json!({
        "ociVersion": "1.0.2",
        "id": s.id,
        "pid": if status == "stopped" { 0 } else { s.pid },
        "status": status,
        "bundle": s.bundle,
        "rootfs": rootfs,
        "created": s.created,
        "owner": "",
        "annotations": spec.as_ref().and_then(|sp| sp.annotations().clone()),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    Ok(())
}

fn signal_number(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.trim_start_matches("SIG");
    let sig: nix::sys::signal::Signal = format!("SIG{name}")
        .parse()
        .map_err(|_| format!("unknown signal {s:?}"))?;
    Ok(sig as i32)
}

fn with_container(
    g: &Global,
    cmd: &Cmd,
    f: impl FnOnce(&Container) -> runtime_core::Result<()>,
) -> Res {
    let id = cmd.arg(0, "container id")?;
    let s = state::load(&g.root, id)?;
    if state::status(&g.root, &s) == "stopped" {
        return Err(format!("container {id} is not running"));
    }
    let c = Container::attach(id, &s.bundle, s.pid).map_err(|e| e.to_string())?;
    f(&c).map_err(|e| e.to_string())
}

fn kill(g: &Global, cmd: &Cmd) -> Res {
    let sig = signal_number(cmd.args.get(1).map(String::as_str).unwrap_or("SIGTERM"))?;
    let all = cmd.has("all") || cmd.has("a");
    with_container(g, cmd, |c| c.kill(sig, all))
}

fn delete(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let force = cmd.has("force") || cmd.has("f");
    let s = match state::load(&g.root, id) {
        Ok(s) => s,
        Err(e) if force => {
            let _ = std::fs::remove_dir_all(state::dir(&g.root, id));
            return if state::dir(&g.root, id).exists() {
                Err(e)
            } else {
                Ok(())
            };
        }
        Err(e) => return Err(e),
    };
    let status = state::status(&g.root, &s);
    if status != "stopped" && status != "created" && !force {
        return Err(format!(
            "cannot delete container {id} that is not stopped: {status}"
        ));
    }
    let c = Container::attach(id, &s.bundle, s.pid).ok();
    if status != "stopped" {
        if let Some(c) = &c {
            let _ = c.kill(libc::SIGKILL, true);
        }
        for _ in 0..1000 {
            if state::status(&g.root, &s) == "stopped" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let res = match c {
        Some(c) => c.delete().map_err(|e| e.to_string()),
        // The init is gone and so is its pid (its parent reaped it long
        // ago: it is not ours): clean up from the bundle alone.
        None => {
            let r = runtime_core::container::cleanup(&s.bundle, id).map_err(|e| e.to_string());
            poststop_from_bundle(&s);
            r
        }
    };
    std::fs::remove_dir_all(state::dir(&g.root, id))
        .map_err(|e| format!("remove state of {id}: {e}"))?;
    res
}

/// The spec's poststop hooks, for a container whose init is gone, after its
/// cgroup is removed (runtime-spec: after the container is deleted). A
/// failing hook is a warning; the delete goes on (as runc does).
fn poststop_from_bundle(s: &state::Saved) {
    let spec = match runtime_core::spec::load(&s.bundle) {
        Ok(spec) => spec,
        Err(e) => return log::warn!("poststop hooks of {}: {e}", s.id),
    };
    let state = runtime_core::hooks::State {
        oci_version: spec.version(),
        id: &s.id,
        status: "stopped",
        pid: s.pid,
        bundle: &s.bundle,
        annotations: spec.annotations().as_ref(),
    };
    let hooks = spec.hooks().as_ref().and_then(|h| h.poststop().as_ref());
    if let Err(e) = runtime_core::hooks::run("poststop", hooks, &state) {
        log::warn!("container {}: {e}", s.id);
    }
}

fn ps(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let s = state::load(&g.root, id)?;
    let c = Container::attach(id, &s.bundle, s.pid).map_err(|e| e.to_string())?;
    let pids = c.pids().map_err(|e| e.to_string())?;
    if cmd.flag("format") == Some("json") {
        println!("{}", serde_json::to_string(&pids).unwrap());
    } else {
        println!("PID");
        for p in pids {
            println!("{p}");
        }
    }
    Ok(())
}

fn exec(g: &Global, cmd: &Cmd) -> Res {
    let id = cmd.arg(0, "container id")?;
    let s = state::load(&g.root, id)?;
    if state::status(&g.root, &s) != "running" {
        return Err(format!("cannot exec in container {id}: it is not running"));
    }
    let process: oci_spec::runtime::Process = match cmd.flag("process").or(cmd.flag("p")) {
        Some(path) => {
            let data = std::fs::read(path).map_err(|e| format!("--process {path}: {e}"))?;
            serde_json::from_slice(&data).map_err(|e| format!("--process {path}: {e}"))?
        }
        None => {
            // `exec ID CMD...`: the container's own process settings, another command.
            let spec = runtime_core::spec::load(&s.bundle).map_err(|e| e.to_string())?;
            let mut p = spec
                .process()
                .clone()
                .ok_or("the container has no process")?;
            if cmd.args.len() < 2 {
                return Err("exec: give --process FILE or a command".into());
            }
            p.set_args(Some(cmd.args[1..].to_vec()));
            p.set_terminal(Some(cmd.has("tty") || cmd.has("t")));
            exec_overrides(&mut p, cmd)?;
            p
        }
    };
    let terminal = process.terminal() == Some(true);
    let stdio = if terminal {
        Stdio::default()
    } else {
        dup_stdio()?
    };
    let c = Container::attach(id, &s.bundle, s.pid).map_err(|e| e.to_string())?;
    let (pidfd, console) = c.exec(&process, stdio).map_err(|e| e.to_string())?;
    if let (Some(sock), Some(master)) = (cmd.flag("console-socket"), console) {
        send_console(sock, master)?;
    }
    write_pid_file(cmd.flag("pid-file"), pidfd.pid())?;
    if cmd.has("detach") || cmd.has("d") {
        return Ok(());
    }
    // The process is our child (CLONE_PARENT from the helper): wait for it.
    let status = pidfd.reap_blocking().map_err(|e| e.to_string())?;
    std::process::exit(status.0 as i32)
}

/// `exec ID CMD` flags over the container's own process settings, as runc.
fn exec_overrides(p: &mut oci_spec::runtime::Process, cmd: &Cmd) -> Res {
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
                .map_err(|_| format!("exec --user {u}: want UID[:GID] as numbers"))
        };
        let mut user = p.user().clone();
        user.set_uid(id(uid)?);
        user.set_gid(id(gid)?);
        p.set_user(user);
    }
    Ok(())
}

fn update(g: &Global, cmd: &Cmd) -> Res {
    let path = cmd
        .flag("resources")
        .or(cmd.flag("r"))
        .ok_or("update: --resources FILE (or -) is required")?;
    let data = if path == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).map_err(|e| e.to_string())?;
        v
    } else {
        std::fs::read(path).map_err(|e| format!("--resources {path}: {e}"))?
    };
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_slice(&data).map_err(|e| format!("--resources {path}: {e}"))?;
    with_container(g, cmd, |c| c.update(&res))
}

/// The OCI features document, from the same source as the shim's `-info`.
fn features() -> Res {
    println!("{}", runtime_core::features::features_json());
    Ok(())
}
