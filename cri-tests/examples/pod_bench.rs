//! Benchmark (not a test), run by `scripts/bench-cri`: per runtime handler, the time from
//! RunPodSandbox to a started container (median over sequential pods), then N pods of
//! two containers at once and the memory of the shim serving each (RSS, PSS). Handlers
//! alternate so both see the same machine state.
//!   pod_bench [PODS]   (default 10)

use std::time::Instant;

use cri_tests::host;
use cri_tests::*;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A pod with `containers` sleeping containers; its id.
fn pod(c: &Cri, handler: &str, containers: usize) -> (String, cri::PodSandboxConfig) {
    let cfg = pod_config("bench");
    let id = c.run_pod(&cfg, handler).expect("RunPodSandbox");
    for i in 0..containers {
        let cc = container_config(&format!("c{i}"), "exec sleep 100000");
        c.run(&id, &cc, &cfg).expect("container");
    }
    (id, cfg)
}

fn main() {
    let pods: usize = std::env::args()
        .nth(1)
        .map_or(10, |n| n.parse().expect("PODS: a number"));
    let c = Cri::connect();
    let rounds = 10;
    let mut start_ms = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (h, handler) in HANDLERS.iter().enumerate() {
            let t = Instant::now();
            let (id, cfg) = pod(&c, handler, 1);
            start_ms[h].push(t.elapsed().as_secs_f64() * 1000.0);
            c.destroy_pod(&id);
            host::remove_cgroup_parent(&cfg.linux.unwrap().cgroup_parent);
        }
    }
    println!(
        "containerd {}: pod start (RunPodSandbox + 1 container) median over {rounds}",
        env().version
    );
    let (rust, runc) = (median(start_ms[0].clone()), median(start_ms[1].clone()));
    println!(
        "  rust {rust:.1} ms   runc {runc:.1} ms   ratio rust/runc {:.2}",
        rust / runc
    );
    println!(
        "containerd {}: shim memory with {pods} pods of 2 containers",
        env().version
    );
    let mut rss_per = [0f64; 2];
    for (h, handler) in HANDLERS.iter().enumerate() {
        let made: Vec<_> = (0..pods).map(|_| pod(&c, handler, 2)).collect();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let (mut rss, mut pss, mut shims) = (0, 0, 0);
        for (id, _) in &made {
            for s in host::shims_of(&[id]) {
                rss += host::rss_kib(s.pid);
                pss += host::pss_kib(s.pid);
                shims += 1;
            }
        }
        rss_per[h] = rss as f64 / pods as f64;
        println!(
            "  {handler}: {shims} shims for {pods} pods, per pod RSS {:.0} KiB, PSS {:.0} KiB",
            rss_per[h],
            pss as f64 / pods as f64
        );
        for (id, cfg) in made {
            c.destroy_pod(&id);
            host::remove_cgroup_parent(&cfg.linux.unwrap().cgroup_parent);
        }
    }
    println!("  RSS ratio rust/runc {:.2}", rss_per[0] / rss_per[1]);
}
