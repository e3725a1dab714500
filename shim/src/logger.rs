//! Logs into containerd's shim log: the `log` FIFO in the bundle directory.
//! Quiet (warnings and errors) unless containerd passed `-debug`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

struct FifoLogger {
    out: Mutex<File>,
    id: String,
}

impl log::Log for FifoLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!(
            "time=\"{}\" level={} runtime=io.containerd.rust.v1 id={} msg={:?}\n",
            runtime_core::rfc3339::rfc3339(now),
            r.level().as_str().to_lowercase(),
            self.id,
            r.args().to_string()
        );
        // Non-blocking: a log line is dropped rather than stalling the shim
        // when containerd is not reading (e.g. while it restarts).
        if let Ok(mut f) = self.out.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Opens `./log` (the FIFO containerd created in the bundle) if present.
pub fn init(id: &str, debug: bool) {
    let file = OpenOptions::new()
        .read(true) // O_RDWR: opening never blocks, even before containerd reads
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("log");
    let Ok(out) = file else { return };
    let logger = FifoLogger {
        out: Mutex::new(out),
        id: id.to_string(),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Warn
        });
    }
}
