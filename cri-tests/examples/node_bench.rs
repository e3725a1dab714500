//! Benchmark (not a test), run by `scripts/bench --node N`: a full node through the CRI.
//!
//! For each pod count n of the sweep (1, 10, 50, 110, capped at N, N always included) and
//! each runtime handler (`rust`, `runc`; alternating which goes first), as the kubelet
//! would: start n pods (a sandbox + one busybox container each) with 10 in flight at a
//! time, then measure
//! - the time until all are Ready (every container started),
//! - the shims' memory per pod: the sum of every shim process's PSS / n, and of its
//!   private part (Private_Clean + Private_Dirty) and anonymous part,
//! - at the largest n only: the shims' CPU time (utime + stime) over 60 s of idle with the
//!   kubelet's stats poll simulated (ListContainerStats every 10 s),
//! - the time to remove all pods (10 at a time), and that nothing is left (no shim, no
//!   cgroup under the instance's pod cgroup root).
//!
//! Prints a text table and writes it, with an SVG plot of PSS per pod and time-to-Ready
//! against n for both handlers, into the output dir.
//!   node_bench [N] [--out DIR] [--idle SECONDS]    (defaults: 110, target/bench-node, 60)

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cri_tests::host;
use cri_tests::*;

/// Pods in flight at once, as the kubelet's pod workers start them.
const PARALLEL: usize = 10;

#[derive(Default, Clone)]
struct Row {
    handler: String,
    pods: usize,
    ready_s: f64,
    /// Time until n sandboxes alone are Ready: the CRI plugin + CNI + shim start floor.
    sandbox_s: f64,
    /// 1-minute load average when the round ended (the machine is shared).
    load: f64,
    pss_kib: f64,
    private_kib: f64,
    anon_kib: f64,
    shims: usize,
    idle_cpu_ms: Option<f64>,
    remove_s: f64,
    left: usize,
}

/// `(Pss, Private_Clean + Private_Dirty, Anonymous)` of a process in KiB.
fn mem_kib(pid: i32) -> (u64, u64, u64) {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        field("Pss:"),
        field("Private_Clean:") + field("Private_Dirty:"),
        field("Anonymous:"),
    )
}

/// utime + stime of a process in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15.
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Runs `f(i)` for i in 0..n with `PARALLEL` workers; panics on the first error.
fn in_parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, T)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..PARALLEL.min(n.max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break mine;
                        }
                        mine.push((i, f(i)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("bench worker panicked"))
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

/// The 1-minute load average.
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(-1.0)
}

/// Time until n pod sandboxes alone (no container) are Ready, then removes them.
fn sandboxes_only(c: &Cri, handler: &str, n: usize) -> f64 {
    let t = Instant::now();
    let pods: Vec<(String, cri::PodSandboxConfig)> = in_parallel(n, |_| {
        let cfg = pod_config("floor");
        let id = c
            .run_pod(&cfg, handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox ({handler}): {e}"));
        (id, cfg)
    });
    let s = t.elapsed().as_secs_f64();
    in_parallel(pods.len(), |i| c.destroy_pod(&pods[i].0));
    for (_, cfg) in &pods {
        host::remove_cgroup_parent(&cfg.linux.as_ref().unwrap().cgroup_parent);
    }
    s
}

fn round(c: &Cri, handler: &str, n: usize, idle: Option<Duration>) -> Row {
    let sandbox_s = sandboxes_only(c, handler, n);
    let t = Instant::now();
    let pods: Vec<(String, cri::PodSandboxConfig)> = in_parallel(n, |_| {
        let cfg = pod_config("node");
        let id = c
            .run_pod(&cfg, handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox ({handler}): {e}"));
        let cc = container_config("app", "exec sleep 100000");
        c.run(&id, &cc, &cfg)
            .unwrap_or_else(|e| panic!("container in {id} ({handler}): {e}"));
        (id, cfg)
    });
    let ready_s = t.elapsed().as_secs_f64();
    // Let the shims settle (the last container's start finishes its bookkeeping).
    std::thread::sleep(Duration::from_millis(500));
    let ids: Vec<&str> = pods.iter().map(|(id, _)| id.as_str()).collect();
    let shims = host::shims_of(&ids);
    let (mut pss, mut private, mut anon) = (0u64, 0u64, 0u64);
    for s in &shims {
        let (p, pr, a) = mem_kib(s.pid);
        pss += p;
        private += pr;
        anon += a;
    }
    let idle_cpu_ms = idle.map(|idle| {
        let before: u64 = shims.iter().map(|s| cpu_ticks(s.pid)).sum();
        let t0 = Instant::now();
        while t0.elapsed() < idle {
            c.call(
                c.rs()
                    .list_container_stats(cri::ListContainerStatsRequest { filter: None }),
            )
            .expect("ListContainerStats");
            let left = idle.saturating_sub(t0.elapsed());
            std::thread::sleep(left.min(Duration::from_secs(10)));
        }
        let after: u64 = shims.iter().map(|s| cpu_ticks(s.pid)).sum();
        (after - before) as f64 * 1000.0 / ticks_per_second()
    });
    let t = Instant::now();
    in_parallel(pods.len(), |i| c.destroy_pod(&pods[i].0));
    let remove_s = t.elapsed().as_secs_f64();
    let mut left = host::shims_of(&ids).len();
    for (_, cfg) in &pods {
        let parent = &cfg.linux.as_ref().unwrap().cgroup_parent;
        left += host::cgroups_below(parent).len();
        host::remove_cgroup_parent(parent);
    }
    let div = n as f64;
    Row {
        handler: handler.to_string(),
        pods: n,
        ready_s,
        sandbox_s,
        load: load1(),
        pss_kib: pss as f64 / div,
        private_kib: private as f64 / div,
        anon_kib: anon as f64 / div,
        shims: shims.len(),
        idle_cpu_ms,
        remove_s,
        left,
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "containerd {}: {PARALLEL} pods in flight, pause + 1 busybox container per pod; \
         sandbox s = the same n pods without their container (CRI plugin + CNI + shim start); \
         load = 1-min load average after the round",
        env().version
    );
    let _ = writeln!(
        s,
        "{:<6} {:>5} {:>6} {:>9} {:>10} {:>9} {:>10} {:>9} {:>12} {:>9} {:>5} {:>5}",
        "handler",
        "pods",
        "shims",
        "ready s",
        "sandbox s",
        "PSS/pod",
        "priv/pod",
        "anon/pod",
        "idle cpu ms",
        "remove s",
        "left",
        "load"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<6} {:>5} {:>6} {:>9.2} {:>10.2} {:>7.0}kB {:>8.0}kB {:>7.0}kB {:>12} {:>9.2} {:>5} {:>5.1}",
            r.handler,
            r.pods,
            r.shims,
            r.ready_s,
            r.sandbox_s,
            r.pss_kib,
            r.private_kib,
            r.anon_kib,
            r.idle_cpu_ms.map_or("-".into(), |v| format!("{v:.0}")),
            r.remove_s,
            r.left,
            r.load
        );
    }
    let get = |h: &str, n: usize| rows.iter().find(|r| r.handler == h && r.pods == n);
    let mut ns: Vec<usize> = rows.iter().map(|r| r.pods).collect();
    ns.dedup();
    for n in ns {
        if let (Some(a), Some(b)) = (get("rust", n), get("runc", n)) {
            let _ = write!(
                s,
                "ratio rust/runc at {n} pods: ready {:.2} (above the sandbox-only floor: {:.2}), PSS/pod {:.2}, private/pod {:.2}",
                a.ready_s / b.ready_s,
                (a.ready_s - a.sandbox_s).max(0.0) / (b.ready_s - b.sandbox_s).max(1e-9),
                a.pss_kib / b.pss_kib,
                a.private_kib / b.private_kib
            );
            if let (Some(x), Some(y)) = (a.idle_cpu_ms, b.idle_cpu_ms) {
                let _ = write!(s, ", idle cpu {:.2}", x / y.max(1.0));
            }
            let _ = writeln!(s);
        }
    }
    s
}

/// Two line charts side by side (PSS per pod, time to Ready) against the pod count.
fn svg(rows: &[Row]) -> String {
    let (w, h, pad) = (360.0, 240.0, 48.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n",
        2.0 * w + 20.0,
        h + 30.0
    );
    let max_n = rows.iter().map(|r| r.pods).max().unwrap_or(1) as f64;
    type Value = fn(&Row) -> f64;
    let panels: [(&str, Value); 2] = [
        ("shim PSS per pod (kB)", |r| r.pss_kib),
        ("time until all Ready (s)", |r| r.ready_s),
    ];
    for (p, (title, value)) in panels.iter().enumerate() {
        let x0 = p as f64 * (w + 20.0);
        let max_v = rows.iter().map(value).fold(0.0f64, f64::max).max(1e-9) * 1.1;
        let px = |n: f64| x0 + pad + (n / max_n) * (w - 1.5 * pad);
        let py = |v: f64| h - pad + 20.0 - (v / max_v) * (h - 1.5 * pad);
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"14\" font-weight=\"bold\">{title} vs pods</text>",
            x0 + pad
        );
        let _ = writeln!(
            out,
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/><line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{3}\" stroke=\"black\"/>",
            px(0.0),
            py(0.0),
            px(max_n),
            py(max_v)
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0}</text><text x=\"{}\" y=\"{}\">{max_n}</text>",
            px(0.0) - 4.0,
            py(max_v) + 4.0,
            max_v,
            px(max_n) - 10.0,
            py(0.0) + 14.0
        );
        for (handler, colour) in [("rust", "#c0392b"), ("runc", "#2c3e50")] {
            let pts: Vec<String> = rows
                .iter()
                .filter(|r| r.handler == handler)
                .map(|r| format!("{:.1},{:.1}", px(r.pods as f64), py(value(r))))
                .collect();
            let _ = writeln!(
                out,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                pts.join(" ")
            );
            for pt in &pts {
                let (x, y) = pt.split_once(',').unwrap();
                let _ = writeln!(
                    out,
                    "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>"
                );
            }
            let ly = if handler == "rust" { 30.0 } else { 44.0 };
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{ly}\" fill=\"{colour}\">{handler}</text>",
                x0 + w - 60.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut n, mut out, mut idle) = (110usize, PathBuf::from("target/bench-node"), 60u64);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().expect("--out DIR").into(),
            "--idle" => {
                idle = args
                    .next()
                    .expect("--idle SECONDS")
                    .parse()
                    .expect("seconds")
            }
            v => n = v.parse().expect("N: the number of pods"),
        }
    }
    let mut sweep: Vec<usize> = [1, 10, 50, 110].into_iter().filter(|&k| k < n).collect();
    sweep.push(n);
    let c = Cri::connect();
    let mut rows = Vec::new();
    for (i, &k) in sweep.iter().enumerate() {
        let last = i + 1 == sweep.len();
        // Alternate which handler goes first so neither always meets a cold machine.
        let order: [&str; 2] = if i % 2 == 0 {
            ["rust", "runc"]
        } else {
            ["runc", "rust"]
        };
        for handler in order {
            let idle = last.then(|| Duration::from_secs(idle));
            let r = round(&c, handler, k, idle);
            eprintln!(
                "{handler} {k} pods: ready in {:.2} s, PSS/pod {:.0} kB",
                r.ready_s, r.pss_kib
            );
            rows.push(r);
        }
    }
    rows.sort_by_key(|r| (r.pods, r.handler != "rust"));
    let text = table(&rows);
    print!("{text}");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("mkdir {}: {e}", out.display()));
    // Not with_extension: the version ("2.1") has a dot of its own.
    let txt = out.join(format!("node-{}.txt", env().version));
    let plot = out.join(format!("node-{}.svg", env().version));
    std::fs::write(&txt, &text).expect("write table");
    std::fs::write(&plot, svg(&rows)).expect("write plot");
    println!("wrote {} and {}", txt.display(), plot.display());
    if rows.iter().any(|r| r.left > 0) {
        eprintln!("node_bench: something was left behind (see the `left` column)");
        std::process::exit(1);
    }
}
