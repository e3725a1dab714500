//! Cgroups for one container, on v1 (incl. hybrid) and v2 hosts.
//!
//! One file per controller (`memory`, `cpu`, `cpuset`, `pids`, `blkio`,
//! `hugetlb`, `rdma`, `network`, `devices/`, `freezer`, `unified` keys), each
//! with its v1 and v2 forms side by side; [`hierarchy`] finds the mounts and
//! resolves the container's path; [`oom`] watches for OOM kills.
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

mod blkio;
mod cpu;
mod cpuset;
pub mod devices;
mod freezer;
pub mod hierarchy;
mod hugetlb;
mod memory;
mod network;
mod oom;
mod pids;
mod rdma;
mod resources;
pub mod systemd;
mod unified;

pub use oom::OomWatch;

use crate::channel::CgroupDir;
use crate::error::{Error, Result};
use hierarchy::Hierarchy;

#[derive(Debug)]
pub struct Cgroup {
    rel: PathBuf,
    dirs: Vec<(Hierarchy, PathBuf)>,
    /// Attach device programs with bpf(2): false only for a pretend tree of
    /// plain directories (unit tests), where there is no cgroup to attach to.
    bpf: bool,
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
    /// `rel` is resolved lexically under each hierarchy's root ([`hierarchy::clean`]).
    pub fn open(rel: &Path) -> Result<Cgroup> {
        Ok(Cgroup::in_hierarchies(hierarchy::mounted()?, rel, true))
    }

    /// [`Cgroup::open`] on the given hierarchies (a temporary tree in tests).
    pub fn in_hierarchies(hs: Vec<Hierarchy>, rel: &Path, bpf: bool) -> Cgroup {
        let rel = hierarchy::clean(rel);
        let dirs = hs
            .into_iter()
            .map(|h| {
                let d = h.mount.join(&rel);
                (h, d)
            })
            .collect();
        Cgroup { rel, dirs, bpf }
    }

    /// Creates the cgroup in every hierarchy and applies `resources`.
    /// On error everything created so far is removed again.
    pub fn create(rel: &Path, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        let cg = Cgroup::open(rel)?;
        cg.create_here(resources)?;
        Ok(cg)
    }

    fn create_here(&self, resources: Option<&LinuxResources>) -> Result<()> {
        if self.rel.as_os_str().is_empty() {
            return Err(Error::unsupported(
                "linux.cgroupsPath",
                "resolves to the root of the cgroup hierarchy: name a cgroup below it",
            ));
        }
        let mut made: Vec<PathBuf> = Vec::new();
        let res = self
            .make_dirs(&mut made)
            .and_then(|_| self.apply_at_create(resources));
        if let Err(e) = res {
            for d in made.iter().rev() {
                let _ = fs::remove_dir(d);
            }
            return Err(e);
        }
        Ok(())
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
                        if h.has("cpuset") {
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
            .find(|(h, _)| h.has(controller))
            .map(|(_, d)| d.as_path())
    }

    /// The container's cgroup in the v2 hierarchy (v2-only and hybrid hosts).
    pub fn unified(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| h.v2)
            .map(|(_, d)| d.as_path())
    }

    /// True on a host whose cgroup tree is v2 only.
    pub fn v2_only(&self) -> bool {
        !self.dirs.is_empty() && self.dirs.iter().all(|(h, _)| h.v2)
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
            .find(|(h, _)| h.has("pids") || h.v2)
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
        // A task outside our pid namespace reads as 0: never a pid to signal
        // (kill(0, …) would hit our own process group).
        Ok(data
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|&p: &i32| p > 0)
            .collect())
    }

    /// Sends `sig` to every process in the cgroup. SIGKILL goes through the
    /// v2 `cgroup.kill` where the kernel has it (5.14+): it reaches every task
    /// at once, including ones forked while we would read `cgroup.procs`, and
    /// frozen ones. A frozen v1 freezer still holds its tasks until thawed:
    /// after a SIGKILL the cgroup is thawed, as runc does, so they die now.
    pub fn signal_all(&self, sig: i32) -> Result<()> {
        let killed = sig == libc::SIGKILL
            && self
                .unified()
                .filter(|d| d.join("cgroup.kill").exists())
                .is_some_and(|d| write(d, "cgroup.kill", "1").is_ok());
        if !killed {
            for pid in self.procs()? {
                // A stray signal to a pid recycled between read and kill stays
                // inside this container's cgroup's namespace of pids, as runc accepts too.
                // SAFETY: kill(2) takes plain integers and touches no memory of ours.
                unsafe { libc::kill(pid, sig) };
            }
        }
        if sig == libc::SIGKILL {
            self.thaw_if_frozen();
        }
        Ok(())
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
        if self.v2_only() {
            return crate::stats::read_v2(self.unified().unwrap());
        }
        crate::stats::read_v1(|c| self.dir_of(c))
    }

    /// Kills what is left and removes the leaf directories (never a parent).
    pub fn destroy(&self) -> Result<()> {
        let mut errors = Vec::new();
        for attempt in 0..50 {
            // Also thaws a paused container: frozen tasks cannot die.
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
