//! Concurrency and leaks: many Exec, Stats, Pids, Kill and Delete calls at
//! once, on the same and on different containers of one shim, must all
//! finish (no deadlock), and leave the shim's fds, threads and memory where
//! they were. Needs root and scripts/test's private containerd.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use containerd_shim_protos::api::{
    DeleteRequest, ExecProcessRequest, KillRequest, PidsRequest, StartRequest, StateRequest,
    StatsRequest, WaitRequest,
};
use containerd_shim_protos::protobuf::MessageField;

const CONTAINERS: usize = 10;
const ROUNDS: usize = 50;
const POD: &str = "io.kubernetes.cri.sandbox-id=stress-pod";

fn ids() -> Vec<String> {
    (0..CONTAINERS).map(|i| format!("stress{i}")).collect()
}

/// One round: an exec on `a` that is started, watched (State, Stats and Pids
/// on `a` and on `b` meanwhile), killed, waited for and deleted; every fifth
/// exec exits by itself with 3 instead.
async fn round(i: usize, a: String, b: String) {
    let client = task_client(&a).await;
    let exec_id = format!("{}-r{i}", std::process::id());
    let self_exiting = i.is_multiple_of(5);
    let args: &[&str] = if self_exiting {
        &["sh", "-c", "exit 3"]
    } else {
        &["sleep", "1000"]
    };
    let exec = ExecProcessRequest {
        id: a.clone(),
        exec_id: exec_id.clone(),
        spec: MessageField::some(exec_spec(&a, args)),
        ..Default::default()
    };
    client
        .exec(deadline(), &exec)
        .await
        .unwrap_or_else(|e| panic!("round {i}: exec on {a}: {e}"));
    let start = StartRequest {
        id: a.clone(),
        exec_id: exec_id.clone(),
        ..Default::default()
    };
    client
        .start(deadline(), &start)
        .await
        .unwrap_or_else(|e| panic!("round {i}: start exec on {a}: {e}"));
    let stats = |id: &str| StatsRequest {
        id: id.to_string(),
        ..Default::default()
    };
    let (stats_a, stats_b) = (stats(&a), stats(&b));
    let pids_req = PidsRequest {
        id: a.clone(),
        ..Default::default()
    };
    let state_req = StateRequest {
        id: a.clone(),
        exec_id: exec_id.clone(),
        ..Default::default()
    };
    let (sa, sb, pids, state) = tokio::join!(
        client.stats(deadline(), &stats_a),
        client.stats(deadline(), &stats_b),
        client.pids(deadline(), &pids_req),
        client.state(deadline(), &state_req),
    );
    sa.unwrap_or_else(|e| panic!("round {i}: stats {a}: {e}"));
    sb.unwrap_or_else(|e| panic!("round {i}: stats {b}: {e}"));
    assert!(
        !pids.unwrap().processes.is_empty(),
        "round {i}: no pids in {a}"
    );
    assert!(state.unwrap().pid > 0, "round {i}: exec has no pid");
    if !self_exiting {
        let kill = KillRequest {
            id: a.clone(),
            exec_id: exec_id.clone(),
            signal: libc::SIGKILL as u32,
            ..Default::default()
        };
        client
            .kill(deadline(), &kill)
            .await
            .unwrap_or_else(|e| panic!("round {i}: kill exec on {a}: {e}"));
    }
    let waited = client
        .wait(
            deadline(),
            &WaitRequest {
                id: a.clone(),
                exec_id: exec_id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("round {i}: wait exec on {a}: {e}"));
    assert_eq!(
        waited.exit_status,
        if self_exiting { 3 } else { 137 },
        "round {i}"
    );
    client
        .delete(
            deadline(),
            &DeleteRequest {
                id: a.clone(),
                exec_id,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("round {i}: delete exec on {a}: {e}"));
}

/// `ROUNDS` rounds at once over the containers: round i execs in container
/// i % 10 and also reads the stats of container (3i + 1) % 10, so calls meet
/// on the same container and on different ones.
fn rounds(rt: &tokio::runtime::Runtime, ids: &[String]) {
    rt.block_on(async {
        let all: Vec<_> = (0..ROUNDS)
            .map(|i| {
                let a = ids[i % CONTAINERS].clone();
                let b = ids[(3 * i + 1) % CONTAINERS].clone();
                tokio::spawn(round(i, a, b))
            })
            .collect();
        // No timing target: a bound far above any normal run, to name a hang.
        let joined = tokio::time::timeout(Duration::from_secs(600), async {
            for h in all {
                h.await.unwrap();
            }
        })
        .await;
        assert!(joined.is_ok(), "the rounds did not finish: deadlock?");
    });
}

/// Under load too, each exec's events arrive as added, started, exit.
fn assert_events_in_order(events: &str, ids: &[String]) {
    for i in 0..ROUNDS {
        let id = &ids[i % CONTAINERS];
        let topics = task_events(events, id);
        let exec = format!("{}-r{i}", std::process::id());
        let at = |t: &str| {
            topics
                .iter()
                .position(|x| *x == format!("/tasks/{t} {exec}"))
                .unwrap_or_else(|| panic!("no /tasks/{t} for {exec}: {topics:?}"))
        };
        let (added, started, exit) = (at("exec-added"), at("exec-started"), at("exit"));
        assert!(
            added < started && started < exit,
            "{exec} events out of order: {topics:?}"
        );
    }
}

/// The shim's usage once its idle blocking threads have gone (they linger
/// for a moment after use) and its fds are back at `floor` if given.
fn settled(shim: i32, floor: Option<Usage>) -> Usage {
    let mut u = usage(shim);
    wait_for(
        "the shim's threads and fds to settle",
        Duration::from_secs(30),
        || {
            u = usage(shim);
            u.threads == 1 && floor.is_none_or(|f| u.fds <= f.fds)
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    usage(shim)
}

#[test]
fn fifty_concurrent_exec_stats_kill_rounds_leave_no_leak() {
    needs_root!();
    let ids = ids();
    for id in &ids {
        let o = run(&[
            "run",
            "-d",
            "--runtime",
            RUNTIME,
            "--annotation",
            POD,
            IMAGE,
            id,
            "sleep",
            "1000",
        ]);
        assert!(o.status.success(), "{id}: {}", text(&o.stderr));
    }
    for id in &ids {
        wait_for("task running", Duration::from_secs(30), || {
            task_status(id).as_deref() == Some("RUNNING")
        });
    }
    let shims = shim_pids_for(&ids[0]);
    assert_eq!(shims.len(), 1, "one shim serves the pod");
    let shim = shims[0];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The first batch warms up what a shim allocates once (event connection,
    // allocator pools); the second must then leave everything where it was.
    let before = settled(shim, None);
    let events = events_during(|| rounds(&rt, &ids));
    assert_events_in_order(&events, &ids);
    let warm = settled(shim, Some(before));
    rounds(&rt, &ids);
    let after = settled(shim, Some(warm));
    eprintln!("shim usage: before {before:?}, after one batch {warm:?}, after two {after:?}");
    assert_eq!(after.fds, before.fds, "fds leaked: {before:?} -> {after:?}");
    assert_eq!(after.threads, 1, "threads left: {after:?}");
    // 50 rounds leaking even 20 kB each would show as 1 MB here.
    assert!(
        after.rss_kb < warm.rss_kb + 1024,
        "RSS grew by {} kB over 50 rounds: {warm:?} -> {after:?}",
        after.rss_kb.saturating_sub(warm.rss_kb)
    );

    // Kill and Delete of every container at once, with Stats racing them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let ids2 = ids.clone();
    let poller = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = task_client(&ids2[0]).await;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                for id in &ids2 {
                    let req = StatsRequest {
                        id: id.clone(),
                        ..Default::default()
                    };
                    // NOT_FOUND once deleted; a hang would fail the deadline.
                    match client.stats(deadline(), &req).await {
                        Err(ttrpc::Error::RpcStatus(s)) if s.code() == ttrpc::Code::NOT_FOUND => {}
                        // The connection ends only as the shim leaves with the last container.
                        Err(e) => {
                            wait_for(
                                &format!("the shim to exit after stats {id} failed with {e}"),
                                Duration::from_secs(20),
                                || shim_pids_for(&ids2[0]).is_empty(),
                            );
                            return;
                        }
                        Ok(_) => {}
                    }
                }
            }
        });
    });
    let teardown: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            std::thread::spawn(move || {
                let k = run(&["task", "kill", "-s", "KILL", &id]);
                assert!(k.status.success(), "kill {id}: {}", text(&k.stderr));
                wait_for("task stopped", Duration::from_secs(30), || {
                    task_status(&id).as_deref() != Some("RUNNING")
                });
                let rm = run(&["task", "rm", &id]);
                assert!(rm.status.success(), "task rm {id}: {}", text(&rm.stderr));
                let crm = run(&["c", "rm", &id]);
                assert!(crm.status.success(), "c rm {id}: {}", text(&crm.stderr));
            })
        })
        .collect();
    for t in teardown {
        t.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.join().unwrap();
    for id in &ids {
        assert_no_leftovers(id);
    }
}

#[test]
fn twenty_concurrent_containers() {
    needs_root!();
    let children: Vec<_> = (0..20)
        .map(|i| {
            let id = format!("conc{i}");
            let c = ctr(&[
                "run",
                "--rm",
                "--runtime",
                RUNTIME,
                IMAGE,
                &id,
                "sh",
                "-c",
                "echo $$",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
            (id, c)
        })
        .collect();
    for (id, c) in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{id}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "1\n", "{id}");
        assert_no_leftovers(&id);
    }
}
