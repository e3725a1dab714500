//! What the CLI's test binaries share: the skip of a root-only test when not root.

/// Whether test `test` (a path, as [`needs_root!`] gives it) must be skipped: when not
/// root. It then says so by name, `skipped: NAME needs root`, straight to stderr (libtest
/// captures only the print macros), so a non-root `cargo test` lists what it did not run.
/// A root run (scripts/test, CI) runs every test.
pub fn skip_unless_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    // libtest's name is the path without the crate's (the test binary's) name.
    let name = test.split_once("::").map_or(test, |(_, n)| n);
    let line = format!("skipped: {name} needs root\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    true
}

/// First line of a test that needs root (containers, cgroups, a private containerd):
/// returns from it, naming it, when not run as root.
#[macro_export]
macro_rules! needs_root {
    () => {
        if $crate::common::skip_unless_root({
            fn here() {}
            let n = std::any::type_name_of_val(&here);
            n.strip_suffix("::here").unwrap_or(n)
        }) {
            return;
        }
    };
}
