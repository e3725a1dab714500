//! Terminals through `ctr -t` (in a pty of script(1)): an init's and an exec's, and
//! their size (consoleSize, ResizePty). The Task API side of exec terminals is
//! exec_terminal.rs. Needs root and scripts/test's private containerd.

mod common;

use std::process::Stdio;

use common::*;

/// Runs a ctr command line inside a pty of `script`'s (ctr -t needs a real
/// terminal), after setting that terminal's size.
fn in_terminal(rows: u16, cols: u16, args: &[&str]) -> std::process::Output {
    let e = env();
    let mut line = format!(
        "stty rows {rows} cols {cols}; exec {} -a {} -n {}",
        e.ctr,
        e.address,
        ns()
    );
    for a in args {
        line.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
    }
    std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script(1)")
}

#[test]
fn run_with_a_terminal_and_its_size() {
    needs_root!();
    let o = in_terminal(
        40,
        100,
        &[
            "run",
            "-t",
            "--rm",
            "--runtime",
            RUNTIME,
            IMAGE,
            "tty",
            "sh",
            "-c",
            // The size comes in the spec (consoleSize) or, racing the start,
            // through ResizePty: wait up to 5 s for it.
            "tty; i=0; while [ \"$(stty size 2>/dev/null)\" != '40 100' ] && [ $i -lt 50 ]; \
             do sleep 0.1; i=$((i+1)); done; stty size; readlink /proc/self/fd/2; exit 4",
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{out}{}", text(&o.stderr));
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(
        out.contains("40 100"),
        "resize did not reach the process: {out}"
    );
    assert_no_leftovers("tty");
}

#[test]
fn exec_with_a_terminal_and_its_size() {
    needs_root!();
    let id = "exectty";
    detached_counter(id);
    let o = in_terminal(
        30,
        90,
        &[
            "task",
            "exec",
            "-t",
            "--exec-id",
            "t1",
            id,
            "sh",
            "-c",
            // ctr sends the size (ResizePty) only after the exec started, as it
            // does with the runc shim: wait up to 5 s for it to arrive.
            "tty; i=0; while [ \"$(stty size 2>/dev/null)\" != '30 90' ] && [ $i -lt 50 ]; \
             do sleep 0.1; i=$((i+1)); done; stty size; exit 3",
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{out}{}", text(&o.stderr));
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(
        out.contains("30 90"),
        "resize did not reach the exec: {out}"
    );
    kill_and_remove(id);
}
