//! `runtime-core`: the in-process OCI runtime behind `containerd-shim-rust-v1`.
//!
//! It turns an OCI bundle (`config.json` + rootfs) into a running container
//! without calling `runc`. Namespaces, mounts, `/dev`, cgroups and process
//! attributes are all set up by this crate.
//!
//! # Fork safety: how the design guarantees it
//!
//! The shim that links this crate is a multi-threaded async process. After
//! `fork()` in a multi-threaded process only async-signal-safe work is allowed:
//! no allocation, no lock (another thread may have held the allocator lock at
//! the moment of the fork, and the child would deadlock on it forever). Known
//! failures of embedded runtimes (runwasi on youki's libcontainer) were hangs in
//! libc's `setgroups`/`setresuid` wrappers (they take a lock to broadcast the
//! change to all threads) and races on the process-wide cwd.
//!
//! This crate therefore never does container set-up after a fork of the shim:
//!
//! 1. The parent side ([`Container::create`]) runs in the shim. It only does
//!    plain, thread-safe syscalls: `mkdir` of cgroups, `socketpair`, and
//!    spawning a helper with `std::process::Command`, whose post-fork child
//!    code calls nothing but `dup2`/`fcntl`/`setsid`/`execve`.
//! 2. The helper is a **re-exec of our own binary** from a sealed memfd copy
//!    ([`sealed`]): a fresh, single-threaded process image. In it, allocation
//!    after `clone3` is safe again, because no other thread exists that could
//!    hold a lock. It is marked non-dumpable before it touches any namespace.
//! 3. The helper joins namespaces given by path, then `clone3`s the container
//!    init with `CLONE_PARENT | CLONE_PIDFD` and the new namespace flags. The
//!    init's parent is therefore the shim itself, and the pidfd (sent back over
//!    the control socket with `SCM_RIGHTS`) is the only handle the shim uses to
//!    signal, wait for and reap it: no pid reuse race, no global `waitpid(-1)`
//!    that could steal another child's status.
//! 4. `set*id`/`setgroups` in the init use raw syscalls ([`init::user`]), which
//!    also makes the single-threaded assumption explicit.
//! 5. Nothing here ever calls `chdir` in the shim: paths are absolute or
//!    resolved from directory fds. Only the helper/init change directory.
//! 6. The init marks every fd but 0, 1, 2 close-on-exec right before `execve`,
//!    so nothing of the shim (tokio's signal pipe, sockets, FIFOs) leaks.
//!
//! # Layout
//! One module per OCI concern, in the spirit of youki's libcontainer:
//! [`spec`] (loading and refusing what is unsupported), [`cgroups`],
//! [`container`] (parent side of the lifecycle), [`init`] (child side:
//! namespaces, rootfs, devices, process), [`channel`] (the parent/child
//! protocol), [`pidfd`], [`sealed`], [`rootfs_mount`] (containerd's rootfs
//! mounts).

pub mod cgroups;
pub mod channel;
pub mod checkpoint;
pub mod container;
pub mod error;
pub mod features;
pub mod hooks;
pub mod init;
pub mod mountinfo;
mod mountopts;
pub mod pidfd;
pub mod probe;
pub mod rfc3339;
pub mod rootfs_idmap;
pub mod rootfs_mount;
pub mod sealed;
pub mod spec;
pub mod stats;
mod sys;

pub use container::{Container, CreateOpts, ExitStatus, Stdio};
pub use error::{Error, Result};
pub use init::set_terminal_size;

/// argv\[1\] that turns our binary into the container-init helper.
///
/// A binary embedding this crate must call [`init::main_if_helper`] first
/// thing in `main`, before any thread is started.
pub const HELPER_ARG: &str = "__rshim_init__";
