//! Process attributes, identity, capabilities, and the final `execve`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{PosixRlimitType, Process};

use crate::error::{last, Error, Result};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct Exec {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// Loaded right before execve (with noNewPrivileges).
    seccomp: Option<libseccomp::ScmpFilterContext>,
}

impl Exec {
    /// Replaces the init with the user process; returns only on failure.
    pub fn exec(self) -> Error {
        if let Some(f) = &self.seccomp {
            if let Err(e) = super::seccomp::load(f) {
                return e;
            }
        }
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        // SAFETY: `path` and every pointer in `argv` and `envp` point into CStrings owned by
        // `self`, alive during the call, and both arrays end with a null pointer as execve
        // requires.
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        last("execve", format!("process.args[0] {:?}", self.path))
    }
}

fn resource(t: PosixRlimitType) -> Result<libc::__rlimit_resource_t> {
    use PosixRlimitType::*;
    Ok(match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    })
}

fn rlimits(p: &Process) -> Result<()> {
    for rl in p.rlimits().iter().flatten() {
        let lim = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        // SAFETY: `lim` is a live, initialised `struct rlimit` that the kernel only reads.
        if unsafe { libc::setrlimit(resource(rl.typ())?, &lim) } < 0 {
            let e = std::io::Error::last_os_error();
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                ": raising a hard limit needs CAP_SYS_RESOURCE, which this runtime does not have; lower it to the host's hard limit"
            } else {
                ""
            };
            return Err(Error::Init(format!(
                "process.rlimits[{:?}] soft={} hard={}: setrlimit: {e}{hint}",
                rl.typ(),
                rl.soft(),
                rl.hard()
            )));
        }
    }
    Ok(())
}

fn oom_score_adj(p: &Process) -> Result<()> {
    let Some(adj) = p.oom_score_adj() else {
        return Ok(());
    };
    if let Err(e) = std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
        let hint = if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
            ": lowering the OOM score adjustment needs CAP_SYS_RESOURCE, which this runtime does not have; use a value >= the shim's"
        } else {
            ""
        };
        return Err(Error::Init(format!(
            "process.oomScoreAdj {adj}: write /proc/self/oom_score_adj: {e}{hint}"
        )));
    }
    Ok(())
}

fn capset(names: &Option<oci_spec::runtime::Capabilities>) -> CapsHashSet {
    names
        .iter()
        .flatten()
        // oci-spec displays names without the CAP_ prefix that `caps` parses.
        .filter_map(|c| {
            let name = c.to_string();
            Cap::from_str(&name)
                .or_else(|_| Cap::from_str(&format!("CAP_{name}")))
                .ok()
        })
        // Capabilities this kernel does not know are skipped, as runc does.
        .filter(|c| caps::runtime::thread_all_supported().contains(c))
        .collect()
}

/// Capabilities: the bounding set is reduced while we are still root; the
/// other sets after the uid switch (kept across it with `PR_SET_KEEPCAPS`).
fn capabilities_and_user(p: &Process) -> Result<()> {
    let c = p.capabilities().as_ref();
    let bounding = c.map(|c| capset(c.bounding()));
    if let Some(b) = &bounding {
        for cap in caps::runtime::thread_all_supported() {
            if !b.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                    Error::Init(format!("process.capabilities.bounding: drop {cap}: {e}"))
                })?;
            }
        }
    }
    // SAFETY: PR_SET_KEEPCAPS takes only integers.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    super::user::switch(p.user())?;
    // SAFETY: PR_SET_KEEPCAPS takes only integers.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    let (eff, perm, inh, amb) = match c {
        Some(c) => (
            capset(c.effective()),
            capset(c.permitted()),
            capset(c.inheritable()),
            capset(c.ambient()),
        ),
        None => Default::default(),
    };
    // Effective must stay within permitted at every step: shrink effective first.
    for (set, name, value) in [
        (CapSet::Effective, "effective", &eff),
        (CapSet::Permitted, "permitted", &perm),
        (CapSet::Inheritable, "inheritable", &inh),
        (CapSet::Effective, "effective", &eff),
    ] {
        caps::set(None, set, value)
            .map_err(|e| Error::Init(format!("process.capabilities.{name}: capset: {e}")))?;
    }
    // The kernel allows an ambient capability only if it is both permitted and
    // inheritable. Specs (runc's default among them) often list ambient caps
    // without inheritable ones; like runc we raise only those the kernel allows.
    for cap in amb
        .into_iter()
        .filter(|c| perm.contains(c) && inh.contains(c))
    {
        caps::raise(None, CapSet::Ambient, cap)
            .map_err(|e| Error::Init(format!("process.capabilities.ambient: raise {cap}: {e}")))?;
    }
    Ok(())
}

fn env_path(env: &[String]) -> &str {
    env.iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

fn is_executable(p: &Path) -> bool {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: `struct stat` is plain old data (integers only), so all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a live NUL-terminated CString and `st` a live, writable `struct stat`.
    unsafe {
        libc::stat(c.as_ptr(), &mut st) == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFREG
            && libc::access(c.as_ptr(), libc::X_OK) == 0
    }
}

/// Finds `args[0]` in the container as the container user, like `execvp`.
fn find_executable(arg0: &str, env: &[String], cwd: &Path) -> Result<PathBuf> {
    if arg0.contains('/') {
        let p = cwd.join(arg0);
        if is_executable(&p) {
            return Ok(p);
        }
        return Err(Error::Init(format!(
            "exec: {arg0:?}: no such executable file in the container (process.args[0])"
        )));
    }
    env_path(env)
        .split(':')
        .map(|d| Path::new(d).join(arg0))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            Error::Init(format!(
                "exec: {arg0:?}: executable file not found in $PATH (process.args[0])"
            ))
        })
}

/// `process.ioPriority`: `ioprio_set` for this process (inherited by execve).
fn io_priority(p: &Process) -> Result<()> {
    use oci_spec::runtime::IOPriorityClass::*;
    let Some(io) = p.io_priority() else {
        return Ok(());
    };
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let class: libc::c_long = match io.class() {
        IoprioClassRt => 1,
        IoprioClassBe => 2,
        IoprioClassIdle => 3,
    };
    let value = (class << 13) | (io.priority() as libc::c_long & 0x1fff);
    // SAFETY: ioprio_set takes only integers.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) } < 0 {
        return Err(last(
            "ioprio_set",
            format!("process.ioPriority {:?}/{}", io.class(), io.priority()),
        ));
    }
    Ok(())
}

/// `process.scheduler`: `sched_setattr(2)` for this process (kept across execve).
fn scheduler(p: &Process) -> Result<()> {
    use oci_spec::runtime::LinuxSchedulerFlag as F;
    use oci_spec::runtime::LinuxSchedulerPolicy as P;
    let Some(s) = p.scheduler() else {
        return Ok(());
    };
    // The kernel's struct sched_attr (SCHED_ATTR_SIZE_VER1, 56 bytes).
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
        util_min: u32,
        util_max: u32,
    }
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => {
            return Err(Error::unsupported(
                "process.scheduler.policy",
                "SCHED_ISO is not implemented by Linux",
            ))
        }
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: `attr` is a live `struct sched_attr` in the kernel's layout (repr(C),
    // SCHED_ATTR_SIZE_VER1), and its `size` field, which bounds what the kernel reads, is its own
    // size.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } < 0 {
        return Err(last(
            "sched_setattr",
            format!(
                "process.scheduler (policy {:?}, nice {}, priority {})",
                s.policy(),
                attr.nice,
                attr.priority
            ),
        ));
    }
    Ok(())
}

/// `linux.personality`: the execution domain (LINUX or LINUX32).
pub fn personality(p: &oci_spec::runtime::LinuxPersonality) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain::*;
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::unsupported(
            "linux.personality.flags",
            "no personality flags are supported",
        ));
    }
    let persona: libc::c_ulong = match p.domain() {
        PerLinux => 0x0000,
        PerLinux32 => 0x0008,
    };
    // SAFETY: personality takes only an integer.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(last(
            "personality",
            format!("linux.personality {:?}", p.domain()),
        ));
    }
    Ok(())
}

/// `HOME` of `uid` in the container's `/etc/passwd`, `/` when it has none:
/// a process without `HOME` in its env gets it, as runc does (shells, `~`).
fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map(|f| f[5])
        .filter(|h| !h.is_empty())
        .unwrap_or("/")
        .to_string()
}

/// Everything of the process spec up to (not including) `execve`.
///
/// First, every fd but stdio is marked close-on-exec, so nothing of the shim
/// (its sockets, the control channel, FIFOs) reaches the container's process.
/// That must come before the seccomp filter is loaded: a profile whose default
/// is an error and that predates `close_range` (Linux 5.9), as many do, would
/// refuse the call. Anything opened after this point is itself `O_CLOEXEC`
/// (std's files, the exec FIFO, hooks' pipes), so the marking stays complete.
pub fn setup(p: &Process, seccomp: Option<&oci_spec::runtime::LinuxSeccomp>) -> Result<Exec> {
    crate::sys::cloexec_from(3).map_err(|e| Error::sys("close_range", "fds >= 3", e))?;
    // Read while we still see the image's files as root (before the identity switch).
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(p.user().uid())));
    }
    let mut filter = seccomp.map(super::seccomp::build).transpose()?;
    if p.no_new_privileges() != Some(true) {
        // Without NNP the kernel wants CAP_SYS_ADMIN to load a filter: do it
        // now, before capabilities are dropped.
        if let Some(f) = filter.take() {
            super::seccomp::load(&f)?;
        }
    }
    io_priority(p)?;
    // Before the capability drop: real-time policies and negative nice need CAP_SYS_NICE.
    scheduler(p)?;
    rlimits(p)?;
    oom_score_adj(p)?;
    // SAFETY: umask takes only an integer.
    unsafe { libc::umask(p.user().umask().unwrap_or(0o022)) };
    capabilities_and_user(p)?;
    // Still our image until execve, now with the container's identity: make
    // sure a process of the container cannot read or ptrace it (the kernel
    // resets dumpability on an identity change, to fs.suid_dumpable).
    // SAFETY: PR_SET_DUMPABLE takes only integers.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if p.no_new_privileges() == Some(true)
        // SAFETY: PR_SET_NO_NEW_PRIVS takes only integers.
        && unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0
    {
        return Err(last(
            "prctl(PR_SET_NO_NEW_PRIVS)",
            "process.noNewPrivileges",
        ));
    }
    let cwd = p.cwd();
    let cwd_c = CString::new(cwd.as_os_str().as_bytes()).unwrap();
    // SAFETY: `cwd_c` is a live NUL-terminated CString.
    if unsafe { libc::chdir(cwd_c.as_ptr()) } < 0 {
        return Err(last("chdir", format!("process.cwd {}", cwd.display())));
    }
    // A leaked host fd could make the cwd resolve outside the rootfs (runc's
    // CVE-2024-21626); getcwd fails (or says "(unreachable)") in that case.
    match std::env::current_dir() {
        Ok(d) if d.is_absolute() => {}
        other => {
            return Err(Error::Init(format!(
                "process.cwd {}: working directory is outside the container root ({other:?})",
                cwd.display()
            )))
        }
    }
    let args = p.args().as_ref().expect("checked");
    let path = find_executable(&args[0], &env, cwd)?;
    let cs = |s: &str| CString::new(s).map_err(|_| Error::Init(format!("NUL byte in {s:?}")));
    Ok(Exec {
        path: CString::new(path.as_os_str().as_bytes()).unwrap(),
        argv: args.iter().map(|a| cs(a)).collect::<Result<_>>()?,
        envp: env.iter().map(|a| cs(a)).collect::<Result<_>>()?,
        seccomp: filter,
    })
}
