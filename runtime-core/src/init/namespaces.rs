//! Which namespaces the init creates, and which it joins by path.

use std::fs::File;
use std::os::fd::AsRawFd;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

fn clone_flag(t: LinuxNamespaceType) -> Result<u64> {
    Ok(match t {
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
        #[allow(unreachable_patterns)]
        other => {
            return Err(Error::unsupported(
                format!("linux.namespaces[{other}]"),
                "namespace type not supported yet",
            ))
        }
    } as u64)
}

/// The namespace's name under /proc/PID/ns.
fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Time => "time",
    }
}

pub struct Plan {
    /// Flags for the init's `clone3`: the namespaces to create.
    pub clone_flags: u64,
    /// Namespaces to join, already opened.
    joins: Vec<(LinuxNamespaceType, String, File)>,
    types: Vec<LinuxNamespaceType>,
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let mut plan = Plan {
            clone_flags: 0,
            joins: Vec::new(),
            types: Vec::new(),
        };
        let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone());
        for ns in namespaces.iter().flatten() {
            let flag = clone_flag(ns.typ())?;
            if plan.types.contains(&ns.typ()) {
                return Err(Error::unsupported(
                    format!("linux.namespaces[{}]", ns.typ()),
                    "listed twice: keep one entry per type",
                ));
            }
            plan.types.push(ns.typ());
            match ns.path() {
                Some(path) => {
                    // Open every path before joining any: joining a mount namespace
                    // changes what the later paths would resolve to.
                    let f = File::open(path).map_err(|e| {
                        Error::sys(
                            "open",
                            format!("{} namespace {}", ns.typ(), path.display()),
                            e,
                        )
                    })?;
                    plan.joins.push((ns.typ(), path.display().to_string(), f));
                }
                None => plan.clone_flags |= flag,
            }
        }
        Ok(plan)
    }

    /// True when the container gets a new namespace of this type (not joined).
    pub fn is_new(&self, t: LinuxNamespaceType) -> bool {
        self.types.contains(&t) && !self.joins.iter().any(|(j, _, _)| *j == t)
    }

    /// True when the container's namespace of this type is not the host's: a new one, or
    /// one joined by path that is not the namespace we (the runtime) run in. A pod's
    /// sandbox joins the network namespace CNI set up, and its net sysctls belong there.
    pub fn is_private(&self, t: LinuxNamespaceType) -> bool {
        if self.is_new(t) {
            return true;
        }
        let Some((_, _, f)) = self.joins.iter().find(|(j, _, _)| *j == t) else {
            return false;
        };
        let ours = format!("/proc/self/ns/{}", proc_name(t));
        match (f.metadata(), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => {
                use std::os::unix::fs::MetadataExt;
                (a.dev(), a.ino()) != (b.dev(), b.ino())
            }
            _ => false,
        }
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.types.contains(&t)
    }

    /// The namespaces made by the init's `clone3`, and those it `unshare`s
    /// later. With a new user namespace only it (and pid, which must exist
    /// before the init is its pid 1) come with the clone: the rest is made
    /// once the init is mapped root, so that they and the objects the kernel
    /// creates with them (the ipc namespace's mqueue root) belong to mapped IDs.
    ///
    /// A time namespace is always unshared later: its offsets can only be
    /// written before any process is in it, and the init enters it at execve.
    pub fn clone_and_unshare(&self) -> (u64, u64) {
        let time = libc::CLONE_NEWTIME as u64;
        if !self.new_user() {
            return (self.clone_flags & !time, self.clone_flags & time);
        }
        let at_clone = self.clone_flags & (libc::CLONE_NEWUSER | libc::CLONE_NEWPID) as u64;
        (at_clone, self.clone_flags & !at_clone)
    }

    /// True when the init gets a user namespace of its own (ID maps to write).
    pub fn new_user(&self) -> bool {
        self.clone_flags & libc::CLONE_NEWUSER as u64 != 0
    }

    /// `setns` into every namespace given by path: the user namespace first (it
    /// owns the others and grants the rights to join them), the mount one last.
    pub fn join(&self) -> Result<()> {
        let mut joins: Vec<_> = self.joins.iter().collect();
        joins.sort_by_key(|(t, _, _)| match *t {
            LinuxNamespaceType::User => 0,
            LinuxNamespaceType::Mount => 2,
            _ => 1,
        });
        for (t, path, f) in joins {
            let flag = clone_flag(*t)? as i32;
            // SAFETY: `f` is a namespace file the plan owns, open for the whole loop; the flag is
            // an integer.
            if unsafe { libc::setns(f.as_raw_fd(), flag) } < 0 {
                return Err(crate::error::last("setns", format!("{t} namespace {path}")));
            }
        }
        Ok(())
    }
}
