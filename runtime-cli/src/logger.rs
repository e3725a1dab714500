//! runtime-core's `log` records (warnings about accepted-but-ignored fields,
//! failing poststop hooks) where runc puts its own: on stderr and, with
//! `--log`, in the log file, as JSON with `--log-format json` (go-runc reads it).

use std::io::Write;

struct Logger {
    file: Option<String>,
    json: bool,
    level: log::LevelFilter,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            _ => "debug",
        };
        let msg = r.args().to_string();
        if r.level() <= log::Level::Warn {
            eprintln!("rshim-runc: {level}: {msg}");
        }
        let Some(path) = &self.file else { return };
        let line = if self.json {
            serde_json::json!({"level": level, "msg": msg}).to_string()
        } else {
            format!("level={level} msg={msg:?}")
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }

    fn flush(&self) {}
}

pub fn init(g: &crate::args::Global) {
    let level = if g.debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Warn
    };
    let logger = Logger {
        file: g.log.clone(),
        json: g.log_json,
        level,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}
