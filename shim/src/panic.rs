//! A panic is a bug; with `panic = "abort"` the process ends right after the
//! hook. The hook puts the message and its location where someone will look:
//! the shim's log (containerd's log, through the `log` FIFO) and stderr,
//! which containerd reports for `start` and `delete`.

use std::panic::PanicHookInfo;

/// One line: thread, message and source location.
pub fn describe(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a non-string panic payload)");
    let at = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_else(|| "an unknown location".into());
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    format!("panic in thread {thread} at {at}: {msg}")
}

/// Installs the hook; call first thing in `main`.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let line = describe(info);
        log::error!("{line}");
        log::logger().flush();
        eprintln!("containerd-shim-rust-v1: {line}");
    }));
}

/// A deliberate panic for the end-to-end test of the hook, compiled only with
/// the `test-panic` feature (never in the shipped binary): `RSHIM_TEST_PANIC`
/// names the place (`start`, `serve`) that panics.
#[cfg(feature = "test-panic")]
#[track_caller]
pub fn test_point(place: &str) {
    if std::env::var("RSHIM_TEST_PANIC").as_deref() == Ok(place) {
        panic!("test-panic at {place}");
    }
}

#[cfg(not(feature = "test-panic"))]
#[inline(always)]
pub fn test_point(_place: &str) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The line the hook writes, from a real panic's PanicHookInfo.
    #[test]
    fn describes_message_and_location() {
        static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| SEEN.lock().unwrap().push(describe(info))));
        let line = line!() + 1;
        let r = std::panic::catch_unwind(|| panic!("boom {}", 7));
        let r2 = std::panic::catch_unwind(|| std::panic::panic_any(42u8));
        std::panic::set_hook(previous);
        assert!(r.is_err() && r2.is_err());
        let seen = SEEN.lock().unwrap();
        assert!(seen[0].ends_with(": boom 7"), "{}", seen[0]);
        assert!(
            seen[0].contains(&format!("shim/src/panic.rs:{line}:")),
            "{}",
            seen[0]
        );
        assert!(seen[1].contains("non-string"), "{}", seen[1]);
    }
}
