//! containerd-shim-rust-v1: a containerd shim v2 that runs containers in-process
//! through `runtime-core`, without runc.
//!
//! Split as the rust-extensions runc shim: [`service`] (Task API),
//! [`container`] (per-container state), [`io`] (stdio), [`events`]; plus the
//! CLI actions [`start`] and [`delete`] and the daemon in [`server`].

mod address;
mod args;
mod check;
mod checkpoint;
mod container;
mod delete;
mod events;
mod info;
mod io;
mod logger;
mod metrics;
mod options;
mod panic;
mod protocol;
mod reaper;
mod server;
mod service;
mod shim_cgroup;
mod start;
mod workdir;

/// glibc malloc tuned for a long-lived, mostly idle, single-threaded daemon: buffers of
/// 32 kB and more (a bundle's config.json, protobuf payloads) are mmapped and unmapped on
/// free instead of staying resident in the heap, and free space at the heap's top is given
/// back above 64 kB. Measured in scripts/bench (README, Benchmarks).
fn allocator_setup() {
    // SAFETY: mallopt only sets malloc parameters; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_TOP_PAD, 16 * 1024);
    }
}

fn main() {
    // First, before any thread exists: maybe we are the container-init helper.
    runtime_core::init::main_if_helper();
    allocator_setup();
    panic::install();
    let flags = match args::parse(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-rust-v1: {e}");
            std::process::exit(2);
        }
    };
    if flags.version {
        println!(
            "containerd-shim-rust-v1:\n  Version: {}",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    if flags.info {
        if let Err(e) = info::run() {
            eprintln!("containerd-shim-rust-v1 -info: {e}");
            std::process::exit(1);
        }
        return;
    }
    let result = match flags.action.as_deref() {
        Some("start") => {
            // containerd made the log FIFO in the bundle (our cwd) already.
            logger::init(&flags.id, flags.debug);
            start::run(&flags)
        }
        Some("delete") => {
            logger::init(&flags.id, flags.debug);
            delete::run(&flags)
        }
        Some("check") => std::process::exit(check::run(flags.containerd_config.as_deref())),
        None => server::run(flags),
        Some(other) => Err(format!(
            "unknown action {other:?}: expected start, delete or check (a host diagnosis)"
        )
        .into()),
    };
    if let Err(e) = result {
        eprintln!("containerd-shim-rust-v1: {e}");
        std::process::exit(1);
    }
}
