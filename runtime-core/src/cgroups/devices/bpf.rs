//! `bpf(2)` for the device program: load it, attach it to a cgroup v2
//! directory (`BPF_F_ALLOW_MULTI`), replace it atomically on update
//! (`BPF_F_REPLACE`), and list what is attached.
//!
//! No program fd is kept: the attachment holds the program, and removing the
//! cgroup releases it. An update finds the program it replaces through
//! `BPF_PROG_QUERY` and `BPF_PROG_GET_FD_BY_ID`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::program::{self, Insn};
use crate::error::{Error, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;

// The parts of `union bpf_attr` each command reads; the kernel takes a
// shorter attr and treats the rest as zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct Attach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct Query {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable #[repr(C)] prefix of `union bpf_attr`
    // for `cmd`, and its exact size is passed; the kernel reads and writes
    // only within it, and every pointer field in it points to live buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by bpf(2) as a new descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Loads the program; on a verifier refusal the error carries its log.
pub fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let code = program::bytes(insns);
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"rshim_dev");
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(e) => {
            // Again with the verifier's log, to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: String = text.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            Err(Error::sys(
                "bpf(BPF_PROG_LOAD)",
                format!(
                    "cgroup device program ({} instructions){}",
                    insns.len(),
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(", verifier: {tail}")
                    }
                ),
                e,
            ))
        }
    }
}

/// The cgroup directory as bpf(2) wants it: an fd opened for reading.
pub fn open_cgroup(dir: &Path) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| Error::sys("open", dir.display(), e))?;
    Ok(f.into())
}

/// Ids of the device programs attached to the cgroup itself (not inherited).
pub fn attached(cgroup: &OwnedFd) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut q = Query {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut q)?;
    ids.truncate(q.prog_cnt as usize);
    Ok(ids)
}

fn prog_fd(id: u32) -> std::io::Result<OwnedFd> {
    let mut a = GetFdById {
        prog_id: id,
        ..Default::default()
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut a).map(owned)
}

/// Compiles, loads and attaches the program for `rules` to the cgroup at
/// `dir`, replacing the one attached there before (atomically when there is
/// exactly one, as on every update of ours), so the container is never
/// without device rules.
pub fn install(dir: &Path, rules: &[super::Rule]) -> Result<()> {
    let what = |op: &str| format!("{op} device program on {}", dir.display());
    let prog = load(&program::compile(rules))?;
    let cg = open_cgroup(dir)?;
    let old = attached(&cg).map_err(|e| Error::sys("bpf(BPF_PROG_QUERY)", what("list"), e))?;
    let mut attach = Attach {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    if let [id] = old[..] {
        let old_fd =
            prog_fd(id).map_err(|e| Error::sys("bpf(BPF_PROG_GET_FD_BY_ID)", what("find"), e))?;
        attach.attach_flags |= BPF_F_REPLACE;
        attach.replace_bpf_fd = old_fd.as_raw_fd() as u32;
        return bpf(BPF_PROG_ATTACH, &mut attach)
            .map(drop)
            .map_err(|e| Error::sys("bpf(BPF_PROG_ATTACH, BPF_F_REPLACE)", what("replace"), e));
    }
    bpf(BPF_PROG_ATTACH, &mut attach)
        .map_err(|e| Error::sys("bpf(BPF_PROG_ATTACH)", what("attach"), e))?;
    // Several attached (not by us): the new one runs beside them; only then
    // remove them, so there is no moment without rules.
    for id in old {
        let fd =
            prog_fd(id).map_err(|e| Error::sys("bpf(BPF_PROG_GET_FD_BY_ID)", what("find"), e))?;
        let mut detach = Attach {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut detach)
            .map_err(|e| Error::sys("bpf(BPF_PROG_DETACH)", what("detach old"), e))?;
    }
    Ok(())
}
