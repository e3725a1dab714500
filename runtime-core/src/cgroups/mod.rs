//! Cgroups for one container, on v1 (incl. hybrid) and v2 hosts.
//!
//! Only what this module created is ever removed: the leaf directory made for
//! the container (and, on a failed create, any parent it had to make).
//!
//! We read the hierarchies from `/proc/self/mountinfo` and write the
//! interface files directly instead of using `cgroups-rs`: version 0.5 pulls in
//! a whole D-Bus stack (`zbus`) unconditionally, which more than doubles the
//! shim's build time and size for nothing we use.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

mod resources;

use crate::channel::CgroupDir;
use crate::error::{Error, Result};

/// One mounted hierarchy: its mount point and the name it gets in a container.
#[derive(Debug, Clone)]
struct Hierarchy {
    mount: PathBuf,
    /// `memory`, `cpu,cpuacct`, `name=systemd`, or `` for the v2 (unified) tree.
    name: String,
    v2: bool,
}

fn hierarchies() -> Result<Vec<Hierarchy>> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::sys("read", "/proc/self/mountinfo", e))?;
    let mut out = Vec::new();
    for line in info.lines() {
        // "id parent maj:min root mountpoint opts [optional...] - fstype source superopts"
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mount = pre.split(' ').nth(4).unwrap_or_default();
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or_default();
        let superopts = post.nth(1).unwrap_or_default();
        match fstype {
            "cgroup2" => out.push(Hierarchy {
                mount: mount.into(),
                name: String::new(),
                v2: true,
            }),
            "cgroup" => {
                let name: Vec<&str> = superopts
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro")
                            && !o.starts_with("release_agent")
                            && *o != "clone_children"
                            && *o != "noprefix"
                            && *o != "xattr"
                    })
                    .collect();
                out.push(Hierarchy {
                    mount: mount.into(),
                    name: name.join(","),
                    v2: false,
                });
            }
            _ => {}
        }
    }
    // A hierarchy can be mounted twice; keep the first mount point of each.
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| seen.insert((h.name.clone(), h.v2)));
    Ok(out)
}

#[derive(Debug)]
pub struct Cgroup {
    rel: PathBuf,
    dirs: Vec<(Hierarchy, PathBuf)>,
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    fs::write(&p, value).map_err(|e| Error::sys("write", format!("{} ({value})", p.display()), e))
}

/// On v2, a cgroup gets only the controllers its parent enables in
/// `cgroup.subtree_control`: enable, in every intermediate directory we made
/// (never in one we did not), all the controllers it has itself.
fn delegate(made: &[PathBuf], leaf: &Path) -> Result<()> {
    for d in made
        .iter()
        .filter(|d| leaf.starts_with(d) && d.as_path() != leaf)
    {
        let have = fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default();
        for c in have.split_whitespace() {
            write(d, "cgroup.subtree_control", &format!("+{c}"))?;
        }
    }
    Ok(())
}

impl Cgroup {
    /// Paths of this container's cgroup in every hierarchy (nothing is created).
    pub fn open(rel: &Path) -> Result<Cgroup> {
        let rel = rel.strip_prefix("/").unwrap_or(rel).to_path_buf();
        let dirs = hierarchies()?
            .into_iter()
            .map(|h| {
                let d = h.mount.join(&rel);
                (h, d)
            })
            .collect();
        Ok(Cgroup { rel, dirs })
    }

    /// Creates the cgroup in every hierarchy and applies `resources`.
    /// On error everything created so far is removed again.
    pub fn create(rel: &Path, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        let cg = Cgroup::open(rel)?;
        let mut made: Vec<PathBuf> = Vec::new();
        let res = cg.make_dirs(&mut made).and_then(|_| cg.apply(resources));
        if let Err(e) = res {
            for d in made.iter().rev() {
                let _ = fs::remove_dir(d);
            }
            return Err(e);
        }
        Ok(cg)
    }

    fn make_dirs(&self, made: &mut Vec<PathBuf>) -> Result<()> {
        for (h, dir) in &self.dirs {
            let mut cur = h.mount.clone();
            for comp in self.rel.components() {
                cur.push(comp);
                match fs::create_dir(&cur) {
                    Ok(()) => {
                        made.push(cur.clone());
                        // A new v1 cpuset starts empty and refuses tasks until filled from its parent.
                        if h.name.split(',').any(|c| c == "cpuset") {
                            let parent = cur.parent().unwrap();
                            for f in ["cpuset.cpus", "cpuset.mems"] {
                                let v = fs::read_to_string(parent.join(f))
                                    .map_err(|e| Error::sys("read", parent.join(f).display(), e))?;
                                write(&cur, f, v.trim())?;
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::sys("mkdir", cur.display(), e)),
                }
            }
            debug_assert_eq!(&cur, dir);
            if h.v2 {
                delegate(made, dir)?;
            }
        }
        Ok(())
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| !h.v2 && h.name.split(',').any(|c| c == controller))
            .map(|(_, d)| d.as_path())
    }

    fn unified(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| h.v2)
            .map(|(_, d)| d.as_path())
    }

    /// True on a host whose cgroup tree is v2 only.
    fn v2_only(&self) -> bool {
        self.dirs.iter().all(|(h, _)| h.v2)
    }

    /// What the init must join, and how each hierarchy appears in the container.
    pub fn dirs(&self) -> Vec<CgroupDir> {
        self.dirs
            .iter()
            .map(|(h, d)| CgroupDir {
                name: if h.v2 && !self.v2_only() {
                    "unified".into()
                } else {
                    h.name.clone()
                },
                host_dir: d.clone(),
            })
            .collect()
    }

    /// Pids in the cgroup (from the first hierarchy that lists any).
    pub fn procs(&self) -> Result<Vec<i32>> {
        let (_, d) = self
            .dirs
            .iter()
            .find(|(h, _)| h.name.contains("pids") || h.v2)
            .or_else(|| self.dirs.first())
            .ok_or_else(|| Error::Cgroup {
                path: self.rel.display().to_string(),
                msg: "no cgroup hierarchy mounted".into(),
            })?;
        let p = d.join("cgroup.procs");
        let data = match fs::read_to_string(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::sys("read", p.display(), e)),
        };
        Ok(data.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Sends `sig` to every process in the cgroup.
    pub fn signal_all(&self, sig: i32) -> Result<()> {
        for pid in self.procs()? {
            // A pid in our own cgroup cannot be recycled outside it between read and kill
            // only if frozen; a stray signal to a recycled pid would stay inside this
            // container's cgroup, as runc accepts too.
            // SAFETY: kill takes only integers and touches no memory of ours.
            unsafe { libc::kill(pid, sig) };
        }
        Ok(())
    }

    /// Freezes (`true`) or thaws every process in the cgroup: the v1 freezer or
    /// v2 `cgroup.freeze`. Returns once the kernel reports the new state.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let (dir, file, value, done): (&Path, &str, &str, &str) =
            if let Some(d) = self.dir_of("freezer") {
                let v = if frozen { "FROZEN" } else { "THAWED" };
                (d, "freezer.state", v, v)
            } else if let Some(d) = self.unified() {
                let v = if frozen { "1" } else { "0" };
                (d, "cgroup.freeze", v, v)
            } else {
                return Err(Error::Cgroup {
                    path: self.rel.display().to_string(),
                    msg: "no freezer: neither the v1 freezer nor cgroup v2 is mounted".into(),
                });
            };
        write(dir, file, value)?;
        // Freezing is asynchronous: wait until every task is stopped.
        let state_file = if file == "cgroup.freeze" {
            "cgroup.events"
        } else {
            file
        };
        for _ in 0..1000 {
            let state = fs::read_to_string(dir.join(state_file)).unwrap_or_default();
            let reached = if state_file == "cgroup.events" {
                state.lines().any(|l| l == format!("frozen {done}"))
            } else {
                state.trim() == done
            };
            if reached {
                return Ok(());
            }
            if frozen && state.trim() == "FREEZING" {
                // Retrying the write nudges tasks that were in an uninterruptible sleep.
                write(dir, file, value)?;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(Error::Cgroup {
            path: self.rel.display().to_string(),
            msg: format!("{file} did not reach {done}"),
        })
    }

    /// An eventfd that becomes readable when the kernel's OOM killer acts in
    /// this cgroup (v1: `memory.oom_control` through `cgroup.event_control`).
    /// `None` where not available (no v1 memory hierarchy).
    pub fn oom_eventfd(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let Some(dir) = self.dir_of("memory") else {
            return Ok(None);
        };
        // SAFETY: eventfd takes only integers.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(crate::error::last("eventfd", "OOM notification"));
        }
        // SAFETY: `efd` was just returned by eventfd (checked >= 0 above) and is owned by nobody
        // else.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        let ctl = dir.join("memory.oom_control");
        let oc = fs::File::open(&ctl).map_err(|e| Error::sys("open", ctl.display(), e))?;
        // The registration holds its own references: both fds can be closed later.
        write(
            dir,
            "cgroup.event_control",
            &format!("{} {}", efd.as_raw_fd(), oc.as_raw_fd()),
        )?;
        Ok(Some(efd))
    }

    /// How many processes the OOM killer killed in this cgroup (None: unknown).
    pub fn oom_kills(&self) -> Option<u64> {
        let (dir, file) = match self.dir_of("memory") {
            Some(d) => (d, "memory.oom_control"),
            None => (self.unified()?, "memory.events"),
        };
        crate::stats::read_keyed(dir, file).get("oom_kill").copied()
    }

    /// Current resource usage.
    pub fn stats(&self) -> crate::stats::Stats {
        use crate::stats::{read_keyed, read_u64, Stats};
        let mut st = Stats::default();
        if self.v2_only() {
            let d = self.unified().unwrap();
            st.v2 = true;
            st.pids_current = read_u64(d, "pids.current");
            st.pids_limit = read_u64(d, "pids.max");
            st.cpu_stat = read_keyed(d, "cpu.stat");
            st.cpu_usage_ns = st.cpu_stat.get("usage_usec").copied().unwrap_or(0) * 1000;
            st.cpu_user_ns = st.cpu_stat.get("user_usec").copied().unwrap_or(0) * 1000;
            st.cpu_kernel_ns = st.cpu_stat.get("system_usec").copied().unwrap_or(0) * 1000;
            st.memory_usage = read_u64(d, "memory.current");
            st.memory_limit = read_u64(d, "memory.max");
            st.memory_max_usage = read_u64(d, "memory.peak");
            st.memory_stat = read_keyed(d, "memory.stat");
            return st;
        }
        if let Some(d) = self.dir_of("pids") {
            st.pids_current = read_u64(d, "pids.current");
            st.pids_limit = read_u64(d, "pids.max");
        }
        if let Some(d) = self.dir_of("cpuacct") {
            st.cpu_usage_ns = read_u64(d, "cpuacct.usage");
            // cpuacct.stat counts USER_HZ ticks (100 per second on Linux).
            let ticks = read_keyed(d, "cpuacct.stat");
            st.cpu_user_ns = ticks.get("user").copied().unwrap_or(0) * 10_000_000;
            st.cpu_kernel_ns = ticks.get("system").copied().unwrap_or(0) * 10_000_000;
            st.per_cpu_ns = fs::read_to_string(d.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
        }
        if let Some(d) = self.dir_of("memory") {
            st.memory_usage = read_u64(d, "memory.usage_in_bytes");
            st.memory_limit = read_u64(d, "memory.limit_in_bytes");
            st.memory_max_usage = read_u64(d, "memory.max_usage_in_bytes");
            st.memory_failcnt = read_u64(d, "memory.failcnt");
            st.memory_stat = read_keyed(d, "memory.stat");
        }
        st
    }

    /// Kills what is left and removes the leaf directories (never a parent).
    pub fn destroy(&self) -> Result<()> {
        // Frozen tasks cannot die: thaw first (a paused container may be deleted).
        let _ = self.freeze(false);
        let mut errors = Vec::new();
        for attempt in 0..50 {
            let _ = self.signal_all(libc::SIGKILL);
            errors.clear();
            for (_, d) in &self.dirs {
                match fs::remove_dir(d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => errors.push(format!("rmdir {}: {e}", d.display())),
                }
            }
            if errors.is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(if attempt < 10 { 5 } else { 20 }));
        }
        Err(Error::Cgroup {
            path: self.rel.display().to_string(),
            msg: errors.join("; "),
        })
    }
}
