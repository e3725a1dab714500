//! Kubernetes pods through containerd's CRI, each scenario under our runtime handler
//! `rust` and under `runc` (containerd's Go shim with runc, the reference) in the same
//! run: `<scenario>::rust` and `<scenario>::runc`. The containerd instance is started by
//! `scripts/test` with `scripts/containerd start --cri`.

use std::collections::HashSet;
use std::time::Duration;

use cri_tests::both_handlers;
use cri_tests::host::{self, Shim};
use cri_tests::stream::ExecStream;
use cri_tests::*;

both_handlers!(
    pod_of_two_containers,
    exec_sync_streams_and_exit_code,
    streaming_exec_with_a_terminal,
    attach_to_stdin_and_stdout,
    logs_in_cri_format_and_reopen,
    stats_are_non_zero,
    oom_killed_is_reported,
    update_resources_reach_the_cgroup,
    security_context_reaches_the_container,
    host_namespaces,
    shared_pid_namespace,
    restart_and_bad_command_in_a_pod,
    killed_shim_is_cleaned_up,
    twenty_concurrent_pods,
);

const WAIT: Duration = Duration::from_secs(30);

/// The shim binary a handler runs.
fn shim_binary(handler: &str) -> &'static str {
    match handler {
        "rust" => "containerd-shim-rust-v1",
        _ => "containerd-shim-runc-v2",
    }
}

/// A pod's network namespace path, from the runtime spec in its verbose status.
fn netns_path(c: &Cri, pod: &str) -> Option<String> {
    let st = c.pod_status(pod).unwrap();
    let info: serde_json::Value = serde_json::from_str(st.info.get("info")?).ok()?;
    let nss = info["runtimeSpec"]["linux"]["namespaces"]
        .as_array()?
        .clone();
    nss.iter()
        .find(|n| n["type"] == "network")
        .and_then(|n| n["path"].as_str())
        .map(String::from)
}

/// A pod made and started, with what is needed to check that it leaves nothing behind.
struct Pod {
    id: String,
    config: cri::PodSandboxConfig,
    netns: Option<String>,
    containers: Vec<String>,
}

impl Pod {
    fn run(c: &Cri, config: cri::PodSandboxConfig, handler: &str) -> Pod {
        let id = c
            .run_pod(&config, handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox ({handler}): {e}"));
        let netns = netns_path(c, &id);
        let host_network = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .is_some_and(|n| n.network == cri::NamespaceMode::Node as i32);
        assert_eq!(
            netns.is_some(),
            !host_network,
            "pod network namespace path in the sandbox's runtime spec: {netns:?}"
        );
        Pod {
            id,
            config,
            netns,
            containers: Vec::new(),
        }
    }

    fn container(&mut self, c: &Cri, config: &cri::ContainerConfig) -> String {
        let id = c
            .run(&self.id, config, &self.config)
            .unwrap_or_else(|e| panic!("container {:?}: {e}", config.metadata));
        self.containers.push(id.clone());
        id
    }

    fn ids(&self) -> Vec<&str> {
        std::iter::once(self.id.as_str())
            .chain(self.containers.iter().map(String::as_str))
            .collect()
    }

    fn shims(&self) -> Vec<Shim> {
        host::shims_of(&self.ids())
    }

    fn cgroup_parent(&self) -> String {
        self.config.linux.as_ref().unwrap().cgroup_parent.clone()
    }

    /// StopPodSandbox + RemovePodSandbox, then: no shim, bundle dir, mount, cgroup or
    /// network namespace of the pod is left.
    fn destroy(self, c: &Cri) {
        c.destroy_pod(&self.id);
        let ids = self.ids();
        wait_for("the pod's shim to exit", WAIT, || {
            host::shims_of(&ids).is_empty()
        });
        for id in &ids {
            let b = host::bundle_dir(id);
            assert!(!b.exists(), "bundle dir {} left behind", b.display());
            let m = host::mounts_mentioning(id);
            assert!(m.is_empty(), "mounts of {id} left behind: {m:#?}");
        }
        if let Some(ns) = &self.netns {
            assert!(
                host::mounts_mentioning(ns).is_empty() && !std::path::Path::new(ns).exists(),
                "network namespace {ns} left behind"
            );
        }
        let parent = self.cgroup_parent();
        let left = host::cgroups_below(&parent);
        assert!(left.is_empty(), "cgroups left behind: {left:#?}");
        // The parent is the kubelet's to remove (ours here).
        host::remove_cgroup_parent(&parent);
    }
}

fn stdout_of(r: &cri::ExecSyncResponse) -> String {
    String::from_utf8_lossy(&r.stdout).into_owned()
}

fn pod_of_two_containers(c: &Cri, handler: &str) {
    let mut pod = Pod::run(c, pod_config("duo"), handler);
    let st = c.pod_status(&pod.id).unwrap().status.unwrap();
    assert_eq!(st.state, cri::PodSandboxState::SandboxReady as i32);
    let ip = st.network.unwrap().ip;
    assert!(
        ip.starts_with("10.199."),
        "pod IP {ip:?} not from our CNI range"
    );

    // c1 serves HTTP on the pod's loopback and leaves a file in the pod's /dev/shm.
    let web = container_config(
        "web",
        "mkdir -p /tmp/www && echo hello-from-web > /tmp/www/index.html && \
         echo shared > /dev/shm/from-web && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www",
    );
    let c1 = pod.container(c, &web);
    let c2 = pod.container(c, &container_config("client", "exec sleep 100000"));

    // One shim process serves the whole pod (sandbox and both containers).
    let shims = pod.shims();
    assert_eq!(shims.len(), 1, "shims for the pod: {shims:?}");
    assert_eq!(
        shims[0].id, pod.id,
        "the pod's shim was started for the sandbox"
    );
    assert!(shims[0].binary.ends_with(shim_binary(handler)), "{shims:?}");

    // How the container found the pod's shim: containerd 1.x ran the shim's `start`, which
    // grouped it by the sandbox-id annotation and answered the live shim's address;
    // containerd 2.x routes a container of a sandbox to the sandbox's shim itself (it
    // writes `sandbox` and `bootstrap.json` into the bundle and runs no `start`).
    // Our shim answers `start` with task API version 2 on every containerd that asks
    // (1.7 refuses 3, and 1.7 and 2.x both say MAX_SHIM_VERSION=2), so 2.x runs
    // `start` for it too; the Go runc shim of 2.x answers 3 and is routed.
    let bundle = host::bundle_dir(&c2);
    if env().version.starts_with("1.") || handler == "rust" {
        assert!(bundle.join("address").exists(), "no shim start for {c2}");
    } else {
        let routed = std::fs::read_to_string(bundle.join("sandbox")).unwrap_or_default();
        assert_eq!(
            routed, pod.id,
            "containerd 2 did not route {c2} to the sandbox"
        );
    }

    // Localhost is shared: c2 reaches c1's server on 127.0.0.1.
    wait_for("web server up", WAIT, || {
        c.exec_sync(&c2, &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"])
            .is_ok_and(|r| stdout_of(&r).contains("hello-from-web"))
    });
    // IPC: one ipc namespace (and /dev/shm) for the pod; pid namespaces are per container.
    assert_eq!(c.sh(&c2, "cat /dev/shm/from-web"), "shared");
    let ns = |id: &str| {
        c.sh(
            id,
            "for n in net ipc uts pid; do readlink /proc/self/ns/$n; done",
        )
    };
    let (n1, n2) = (ns(&c1), ns(&c2));
    let (l1, l2): (Vec<&str>, Vec<&str>) = (n1.lines().collect(), n2.lines().collect());
    assert_eq!(
        l1[..3],
        l2[..3],
        "net, ipc, uts differ between the pod's containers"
    );
    assert_ne!(
        l1[3], l2[3],
        "containers share a pid namespace without shareProcessNamespace"
    );
    let own_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(
        l1[0],
        own_net.to_str().unwrap(),
        "the pod is in the host's network"
    );
    // CRI's files: the pod hostname, /etc/hosts and resolv.conf bound in from the sandbox.
    assert_eq!(c.sh(&c2, "hostname"), "duo");
    assert_eq!(c.sh(&c2, "cat /etc/hostname"), "duo");
    let mounts = c.sh(&c2, "cat /proc/self/mounts");
    for f in [
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/hostname",
        "/dev/shm",
    ] {
        assert!(
            mounts.lines().any(|l| l.split(' ').nth(1) == Some(f)),
            "{f} not mounted: {mounts}"
        );
    }
    let listed = c.list_containers(&pod.id).unwrap();
    let running: HashSet<&str> = listed
        .iter()
        .filter(|x| x.state == cri::ContainerState::ContainerRunning as i32)
        .map(|x| x.id.as_str())
        .collect();
    assert_eq!(running, HashSet::from([c1.as_str(), c2.as_str()]));

    // Stop and remove one container: the shim stays for the rest of the pod.
    c.stop_container(&c2, 2).unwrap();
    let st = c.wait_exited(&c2, WAIT);
    assert_eq!(
        st.exit_code, 137,
        "sleep as PID 1 ignores TERM: SIGKILL after the grace period"
    );
    c.remove_container(&c2).unwrap();
    assert!(
        !host::bundle_dir(&c2).exists(),
        "bundle of a removed container"
    );
    assert!(
        host::mounts_mentioning(&c2).is_empty(),
        "mounts of a removed container"
    );
    assert_eq!(
        pod.shims().len(),
        1,
        "the pod's shim left with a container still in it"
    );
    pod.destroy(c);
}

fn exec_sync_streams_and_exit_code(c: &Cri, handler: &str) {
    let mut pod = Pod::run(c, pod_config("execsync"), handler);
    let id = pod.container(c, &container_config("main", "exec sleep 100000"));
    let r = c
        .exec_sync(&id, &["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
        .unwrap();
    assert_eq!(
        (
            stdout_of(&r).as_str(),
            String::from_utf8_lossy(&r.stderr).as_ref(),
            r.exit_code
        ),
        ("to-out\n", "to-err\n", 3)
    );
    // A missing binary is an error of the call (runc and containerd word it differently).
    let r = c.exec_sync(&id, &["/no/such/binary"]);
    assert!(
        r.as_ref().is_err() || r.as_ref().is_ok_and(|r| r.exit_code != 0),
        "{r:?}"
    );
    pod.destroy(c);
}

fn streaming_exec_with_a_terminal(c: &Cri, handler: &str) {
    let mut pod = Pod::run(c, pod_config("exectty"), handler);
    let id = pod.container(c, &container_config("main", "exec sleep 100000"));
    let req = cri::ExecRequest {
        container_id: id.clone(),
        cmd: vec!["sh".into()],
        tty: true,
        stdin: true,
        stdout: true,
        stderr: false,
    };
    let url = c.call(c.rs().exec(req)).unwrap().url;
    let mut s = ExecStream::open(&url);
    // Computed markers: the terminal echoes what we type, the result differs from it.
    s.stdin("[ -t 0 ] && echo TTY$((1+1)); echo $((6*7))X\n");
    let out = s.read_until("42X", WAIT);
    assert!(out.contains("TTY2"), "stdin is not a terminal: {out:?}");
    // containerd applies a resize once the exec process runs, asynchronously to stdin:
    // ask until the size has arrived (as `kubectl exec -t` sends it on every change).
    s.resize(101, 31);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        s.stdin("stty size\n");
        if s.read_for(Duration::from_millis(300)).contains("31 101") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "terminal size did not arrive: {:?}",
            String::from_utf8_lossy(&s.stdout)
        );
    }
    s.stdin("exit 5\n");
    let status = s.wait(WAIT);
    assert!(
        status.contains("NonZeroExitCode") && status.contains("\"5\""),
        "exit status on the error channel: {status}"
    );
    pod.destroy(c);
}

fn attach_to_stdin_and_stdout(c: &Cri, handler: &str) {
    // A container with stdin open (kubectl run -i): Attach reaches its stdio FIFOs.
    let mut pod = Pod::run(c, pod_config("attach"), handler);
    let mut cfg = container_config(
        "reader",
        "while read -r l; do echo got-$l; echo err-$l >&2; done",
    );
    cfg.stdin = true;
    let id = pod.container(c, &cfg);
    let req = cri::AttachRequest {
        container_id: id.clone(),
        stdin: true,
        tty: false,
        stdout: true,
        stderr: true,
    };
    let url = c.call(c.rs().attach(req)).unwrap().url;
    let mut s = ExecStream::open(&url);
    s.stdin("one\n");
    s.read_until("got-one", WAIT);
    s.stdin("two\n");
    // stdout and stderr are separate streams: either may arrive first.
    s.read_until("got-two", WAIT);
    s.read_until("err-two", WAIT);
    // The same lines went to the CRI log.
    let file = log_file(&pod.config, &cfg);
    wait_for("attached lines in the log", WAIT, || {
        let lines = read_log(&file);
        lines
            .iter()
            .any(|l| l.text == "got-two" && l.stream == "stdout")
            && lines
                .iter()
                .any(|l| l.text == "err-two" && l.stream == "stderr")
    });
    pod.destroy(c);
}

fn logs_in_cri_format_and_reopen(c: &Cri, handler: &str) {
    let mut pod = Pod::run(c, pod_config("logs"), handler);
    let cfg = container_config(
        "talker",
        "echo first-out; echo first-err >&2; i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done",
    );
    let id = pod.container(c, &cfg);
    let file = log_file(&pod.config, &cfg);
    wait_for("log lines", WAIT, || read_log(&file).len() >= 4);
    let lines = read_log(&file);
    let find = |text: &str| lines.iter().find(|l| l.text == text).cloned();
    let out = find("first-out").unwrap_or_else(|| panic!("{lines:#?}"));
    let err = find("first-err").unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!((out.stream.as_str(), out.tag.as_str()), ("stdout", "F"));
    assert_eq!((err.stream.as_str(), err.tag.as_str()), ("stderr", "F"));
    // Log rotation as the kubelet does it: rename, then ReopenContainerLog.
    let rotated = file.with_extension("log.1");
    std::fs::rename(&file, &rotated).unwrap();
    let req = cri::ReopenContainerLogRequest {
        container_id: id.clone(),
    };
    c.call(c.rs().reopen_container_log(req)).unwrap();
    wait_for("lines in the reopened log", WAIT, || {
        read_log(&file).iter().any(|l| l.text.starts_with("tick"))
    });
    let before = read_log(&rotated).len();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        read_log(&rotated).len(),
        before,
        "still writing the rotated file"
    );
    pod.destroy(c);
}

fn stats_are_non_zero(c: &Cri, handler: &str) {
    let mut pod = Pod::run(c, pod_config("stats"), handler);
    // Some work and some memory, then idle.
    let script = "x=$(head -c 4000000 /dev/zero | tr '\\0' a); i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 100000";
    let id = pod.container(c, &container_config("busy", script));
    wait_for("cpu and memory in ContainerStats", WAIT, || {
        let s = c.stats(&id).unwrap();
        let cpu = s
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map_or(0, |v| v.value);
        let mem = s
            .memory
            .and_then(|m| m.working_set_bytes)
            .map_or(0, |v| v.value);
        cpu > 0 && mem > 0
    });
    let s = c.stats(&id).unwrap();
    assert_eq!(s.attributes.unwrap().id, id);
    pod.destroy(c);
}

fn oom_killed_is_reported(c: &Cri, handler: &str) {
    let mut pod = Pod::run(c, pod_config("oom"), handler);
    let mut cfg = container_config(
        "hog",
        // One process doubling a string: a pipeline would let the OOM killer
        // pick another member (the container then exits 0).
        "x=a; while true; do x=$x$x; done",
    );
    resources(&mut cfg).memory_limit_in_bytes = 24 << 20;
    let id = pod.container(c, &cfg);
    let st = c.wait_exited(&id, Duration::from_secs(60));
    // On cgroup v2 the Go runc shim (the reference, not ours) sometimes misses this OOM
    // (seen in the guest on 2.1: exit 137, reason "Error"; the hog dies within a second
    // of its start), as it does in a systemd scope: noted, not failed. Ours must say
    // OOMKilled, and so must runc's on v1.
    if handler == "runc" && is_v2() && st.reason == "Error" {
        eprintln!("note: the runc shim reported no OOM for {id}: {st:?}");
        assert_eq!(st.exit_code, 137, "{st:?}");
        pod.destroy(c);
        return;
    }
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (137, "OOMKilled"),
        "{st:?}"
    );
    assert!(
        st.finished_at >= st.started_at && st.started_at > 0,
        "{st:?}"
    );
    pod.destroy(c);
}

/// The unified hierarchy alone at /sys/fs/cgroup (a cgroup v2 host, the guest).
fn is_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A file of the container's cgroup: in `controller`'s v1 hierarchy, or the unified one.
fn cgroup_file(pod: &Pod, id: &str, controller: &str, file: &str) -> String {
    let hierarchy = if is_v2() {
        "/sys/fs/cgroup".to_string()
    } else {
        format!("/sys/fs/cgroup/{controller}")
    };
    let p = format!(
        "{hierarchy}/{}/{id}/{file}",
        pod.cgroup_parent().trim_start_matches('/')
    );
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {p}: {e}"))
        .trim()
        .to_string()
}

/// The memory limit, CFS quota (period 100 ms) and cpu shares as the container's
/// cgroup holds them, in that version's files: v1 memory.limit_in_bytes,
/// cpu.cfs_quota_us and cpu.shares; v2 memory.max, cpu.max and cpu.weight,
/// the weight compared with the shares converted as runc converts them.
fn assert_limits(pod: &Pod, id: &str, memory: u64, quota: u64, shares: u64) {
    if is_v2() {
        assert_eq!(
            cgroup_file(pod, id, "memory", "memory.max"),
            memory.to_string()
        );
        assert_eq!(
            cgroup_file(pod, id, "cpu", "cpu.max"),
            format!("{quota} 100000")
        );
        let weight = 1 + ((shares - 2) * 9999) / 262142;
        assert_eq!(
            cgroup_file(pod, id, "cpu", "cpu.weight"),
            weight.to_string()
        );
    } else {
        assert_eq!(
            cgroup_file(pod, id, "memory", "memory.limit_in_bytes"),
            memory.to_string()
        );
        assert_eq!(
            cgroup_file(pod, id, "cpu", "cpu.cfs_quota_us"),
            quota.to_string()
        );
        assert_eq!(
            cgroup_file(pod, id, "cpu", "cpu.shares"),
            shares.to_string()
        );
    }
}

fn update_resources_reach_the_cgroup(c: &Cri, handler: &str) {
    let mut pod = Pod::run(c, pod_config("update"), handler);
    let mut cfg = container_config("main", "exec sleep 100000");
    let r = resources(&mut cfg);
    r.memory_limit_in_bytes = 100 << 20;
    r.cpu_period = 100_000;
    r.cpu_quota = 50_000;
    r.cpu_shares = 512;
    let id = pod.container(c, &cfg);
    assert_limits(&pod, &id, 100 << 20, 50_000, 512);
    let req = cri::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_period: 100_000,
            cpu_quota: 25_000,
            cpu_shares: 256,
            ..Default::default()
        }),
        ..Default::default()
    };
    c.call(c.rs().update_container_resources(req)).unwrap();
    assert_limits(&pod, &id, 64 << 20, 25_000, 256);
    // CRI asks for no swap: memory+swap equals the memory limit (where the kernel
    // accounts swap at all): v1 memory.memsw.limit_in_bytes; v2 memory.swap.max
    // (swap alone) is 0.
    if is_v2() {
        let dir = format!(
            "/sys/fs/cgroup/{}/{id}",
            pod.cgroup_parent().trim_start_matches('/')
        );
        if std::path::Path::new(&dir).join("memory.swap.max").exists() {
            let swap = cgroup_file(&pod, &id, "memory", "memory.swap.max");
            assert_eq!(swap, "0", "swap limit");
        }
    } else if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        let memsw = cgroup_file(&pod, &id, "memory", "memory.memsw.limit_in_bytes");
        assert_eq!(memsw, (64u64 << 20).to_string(), "memory+swap limit");
    }
    // And the container still runs.
    assert_eq!(c.sh(&id, "echo alive"), "alive");
    pod.destroy(c);
}

/// A `/proc/self/status` field as the container sees it.
fn status_field(c: &Cri, id: &str, field: &str) -> String {
    c.sh(id, &format!("grep '^{field}:' /proc/self/status | cut -f2"))
}

fn security_context_reaches_the_container(c: &Cri, handler: &str) {
    let mut pc = pod_config("secctx");
    pc.linux
        .as_mut()
        .unwrap()
        .sysctls
        .insert("net.ipv4.ip_local_port_range".into(), "20000 30000".into());
    pc.linux
        .as_mut()
        .unwrap()
        .sysctls
        .insert("kernel.shm_rmid_forced".into(), "1".into());
    // CRI allows a privileged container only in a privileged pod.
    pod_security(&mut pc).privileged = true;
    let mut pod = Pod::run(c, pc, handler);
    let sleeper = "exec sleep 100000";

    // runAsUser / runAsGroup / supplementalGroups, no new privileges, read-only root.
    let mut cfg = container_config("user", sleeper);
    let s = security(&mut cfg);
    s.run_as_user = Some(cri::Int64Value { value: 1000 });
    s.run_as_group = Some(cri::Int64Value { value: 1000 });
    s.supplemental_groups = vec![2000, 3000];
    s.no_new_privs = true;
    s.readonly_rootfs = true;
    // The kubelet's defaults (procMount Default); CRI passes what it is given.
    s.masked_paths = [
        "/proc/asound",
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .map(String::from)
    .to_vec();
    s.readonly_paths = [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .map(String::from)
    .to_vec();
    s.seccomp = Some(cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
        ..Default::default()
    });
    let user = pod.container(c, &cfg);
    assert_eq!(
        c.sh(&user, "id -u; id -g; id -G"),
        "1000\n1000\n1000 2000 3000"
    );
    assert_eq!(status_field(c, &user, "NoNewPrivs"), "1");
    assert_eq!(
        status_field(c, &user, "Seccomp"),
        "2",
        "RuntimeDefault is a filter"
    );
    let r = c.exec_sync(&user, &["touch", "/newfile"]).unwrap();
    assert_ne!(r.exit_code, 0, "read-only root filesystem was writable");
    // The pod's sysctls (net in the pod's network namespace, ipc in its ipc one).
    assert_eq!(
        c.sh(
            &user,
            "cat /proc/sys/net/ipv4/ip_local_port_range | tr -s '\\t ' ' '"
        ),
        "20000 30000"
    );
    assert_eq!(c.sh(&user, "cat /proc/sys/kernel/shm_rmid_forced"), "1");
    // Masked and read-only paths.
    assert_eq!(
        c.sh(&user, "wc -c < /proc/timer_list"),
        "0",
        "/proc/timer_list not masked"
    );
    let sys = c.sh(&user, "grep ' /proc/sys ' /proc/self/mounts");
    assert!(sys.contains(" ro,"), "/proc/sys not read-only: {sys}");

    // Capabilities: drop ALL, add NET_ADMIN (bit 12); seccomp Unconfined.
    let mut cfg = container_config("caps", sleeper);
    let s = security(&mut cfg);
    s.capabilities = Some(cri::Capability {
        add_capabilities: vec!["NET_ADMIN".into()],
        drop_capabilities: vec!["ALL".into()],
        ..Default::default()
    });
    s.seccomp = Some(cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::Unconfined as i32,
        ..Default::default()
    });
    let caps = pod.container(c, &cfg);
    assert_eq!(status_field(c, &caps, "CapEff"), "0000000000001000");
    assert_eq!(status_field(c, &caps, "CapBnd"), "0000000000001000");
    assert_eq!(
        status_field(c, &caps, "Seccomp"),
        "0",
        "Unconfined has no filter"
    );
    assert_eq!(status_field(c, &caps, "NoNewPrivs"), "0");
    let r = c.exec_sync(&caps, &["chown", "1000", "/tmp"]).unwrap();
    assert_ne!(r.exit_code, 0, "chown worked without CAP_CHOWN");
    assert_eq!(
        c.sh(&caps, "ip link set lo mtu 1400 && echo ok"),
        "ok",
        "NET_ADMIN"
    );

    // Privileged: every capability, the host's devices, writable /proc/sys.
    let mut cfg = container_config("priv", sleeper);
    security(&mut cfg).privileged = true;
    let privileged = pod.container(c, &cfg);
    let host_caps = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    assert_eq!(status_field(c, &privileged, "CapEff"), host_caps);
    assert_eq!(status_field(c, &privileged, "Seccomp"), "0");
    assert_eq!(
        c.sh(
            &privileged,
            "test -e /dev/loop0 || test -e /dev/loop-control; echo $?"
        ),
        "0"
    );
    // No read-only /proc/sys (the pod's ipc namespace: nothing of the host's changes).
    let w = "echo 1 > /proc/sys/kernel/shm_rmid_forced && echo written";
    assert_eq!(c.sh(&privileged, w), "written");
    pod.destroy(c);
}

fn host_namespaces(c: &Cri, handler: &str) {
    let mut pc = pod_config("hostns");
    let node = cri::NamespaceMode::Node as i32;
    let opts = cri::NamespaceOption {
        network: node,
        pid: node,
        ipc: node,
        ..Default::default()
    };
    pod_security(&mut pc).namespace_options = Some(opts.clone());
    // The kubelet sets no hostname for a host-network pod (it has the host's UTS).
    pc.hostname.clear();
    let mut pod = Pod::run(c, pc, handler);
    assert!(pod.netns.is_none(), "a host-network pod got a netns");
    let mut cfg = container_config("main", "exec sleep 100000");
    security(&mut cfg).namespace_options = Some(opts);
    let id = pod.container(c, &cfg);
    for ns in ["net", "pid", "ipc"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_eq!(
            c.sh(&id, &format!("readlink /proc/self/ns/{ns}")),
            host.to_str().unwrap(),
            "host{ns} not the host's"
        );
    }
    // With the host's pid namespace the container sees our test process.
    let me = std::process::id();
    assert_eq!(
        c.sh(&id, &format!("test -d /proc/{me} && echo seen")),
        "seen"
    );
    pod.destroy(c);
}

fn shared_pid_namespace(c: &Cri, handler: &str) {
    // shareProcessNamespace: true. The pause process is PID 1 for every container.
    let mut pc = pod_config("sharedpid");
    let opts = cri::NamespaceOption {
        pid: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    };
    pod_security(&mut pc).namespace_options = Some(opts.clone());
    let mut pod = Pod::run(c, pc, handler);
    let mut a = container_config("a", "exec sleep 100001");
    security(&mut a).namespace_options = Some(opts.clone());
    let mut b = container_config("b", "exec sleep 100002");
    security(&mut b).namespace_options = Some(opts);
    let a = pod.container(c, &a);
    let b = pod.container(c, &b);
    assert_eq!(
        c.sh(&b, "tr '\\0' ' ' < /proc/1/cmdline"),
        "/bin/sleep 2147483647",
        "PID 1 is not the pause process"
    );
    let ps = c.sh(&b, "ps -o args");
    assert!(
        ps.contains("sleep 100001") && ps.contains("sleep 100002"),
        "{ps}"
    );
    assert_eq!(
        c.sh(&a, "readlink /proc/self/ns/pid"),
        c.sh(&b, "readlink /proc/self/ns/pid")
    );
    // Stopping one container leaves the other and the sandbox running.
    // Not PID 1 here, so sleep dies of the TERM itself (128 + 15).
    c.stop_container(&a, 10).unwrap();
    assert_eq!(c.wait_exited(&a, WAIT).exit_code, 143);
    let ps = c.sh(&b, "ps -o args");
    assert!(
        !ps.contains("sleep 100001") && ps.contains("sleep 100002"),
        "{ps}"
    );
    pod.destroy(c);
}

fn restart_and_bad_command_in_a_pod(c: &Cri, handler: &str) {
    let mut pod = Pod::run(c, pod_config("restart"), handler);
    // A container that exits, then its restart (attempt 1) as the kubelet does it.
    let first = pod.container(c, &container_config("app", "echo run0; exit 3"));
    let st = c.wait_exited(&first, WAIT);
    assert_eq!(st.exit_code, 3, "{st:?}");
    assert_eq!(st.reason, "Error", "{st:?}");
    let mut again = container_config("app", "exec sleep 100000");
    again.metadata.as_mut().unwrap().attempt = 1;
    again.log_path = "app-1.log".into();
    let second = pod.container(c, &again);
    assert_eq!(c.sh(&second, "echo up"), "up");
    // A command that does not exist: StartContainer fails naming it; the pod lives on.
    let bad = container_config("bad", "unused");
    let mut bad = cri::ContainerConfig {
        command: vec!["/no/such/binary".into()],
        ..bad
    };
    bad.log_path = "bad.log".into();
    let id = c.create(&pod.id, &bad, &pod.config).unwrap();
    pod.containers.push(id.clone());
    let err = c.start(&id).expect_err("started a missing binary");
    println!(
        "{handler}: StartContainer of a missing binary: {}",
        err.message()
    );
    assert!(err.message().contains("/no/such/binary"), "{err:?}");
    assert_eq!(c.sh(&second, "echo still-up"), "still-up");
    assert_eq!(pod.shims().len(), 1, "{:?}", pod.shims());
    c.remove_container(&id).unwrap();
    assert!(
        host::mounts_mentioning(&id).is_empty(),
        "mounts of the failed container"
    );
    pod.destroy(c);
}

fn killed_shim_is_cleaned_up(c: &Cri, handler: &str) {
    // The pod's shim dies (SIGKILL): containerd runs the shim's `delete` for its tasks,
    // CRI sees the containers exit and the sandbox not ready; removal leaves nothing.
    let mut pod = Pod::run(c, pod_config("shimkill"), handler);
    let id = pod.container(c, &container_config("main", "exec sleep 100000"));
    let shims = pod.shims();
    assert_eq!(shims.len(), 1, "{shims:?}");
    // SAFETY: kill takes only integers and touches no memory of ours.
    unsafe { libc::kill(shims[0].pid, libc::SIGKILL) };
    let st = c.wait_exited(&id, WAIT);
    println!(
        "{handler}: container after its shim was killed: exit {} reason {:?}",
        st.exit_code, st.reason
    );
    wait_for("sandbox not ready", WAIT, || {
        c.pod_status(&pod.id).unwrap().status.unwrap().state
            == cri::PodSandboxState::SandboxNotready as i32
    });
    // containerd 2.1.9 routes a pod's containers to the sandbox's shim and, when that
    // shim dies, runs `delete` for the sandbox only: the containers' processes stay, with
    // runc exactly as with ours (1.x runs `delete` per container), with their cgroups.
    // They are removed here so that the rest is checked; `scripts/containerd stop`
    // would kill them too.
    // Our shim (bootstrap version 2, see pod_of_two_containers) gets `delete` per
    // container on 2.x as on 1.x: nothing is left.
    if !env().version.starts_with("1.") && handler == "runc" {
        let left = host::procs_below(&pod.cgroup_parent());
        println!(
            "{handler}: containerd {}: processes left by the dead shim: {left:?}",
            env().version
        );
        assert!(!host::shims_of(&[&pod.id])
            .iter()
            .any(|s| s.pid == shims[0].pid));
        assert!(
            !left.is_empty(),
            "containerd 2 now cleans up: update this test"
        );
        for pid in left {
            // SAFETY: kill takes only integers and touches no memory of ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        wait_for("left processes gone", WAIT, || {
            host::procs_below(&pod.cgroup_parent()).is_empty()
        });
        // Only the app container's cgroups remain: the sandbox's went with `delete`.
        let sandbox_cg: Vec<_> = host::cgroups_below(&pod.cgroup_parent())
            .into_iter()
            .filter(|d| d.ends_with(&pod.id))
            .collect();
        assert!(sandbox_cg.is_empty(), "{sandbox_cg:?}");
        for d in host::cgroups_below(&pod.cgroup_parent()) {
            std::fs::remove_dir(&d).unwrap_or_else(|e| panic!("rmdir {}: {e}", d.display()));
        }
    }
    pod.destroy(c);
}

fn twenty_concurrent_pods(c: &Cri, handler: &str) {
    const N: usize = 20;
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let handler = handler.to_string();
            std::thread::spawn(move || {
                let c = Cri::connect();
                let mut pod = Pod::run(&c, pod_config(&format!("many{i}")), &handler);
                pod.container(&c, &container_config("main", "exec sleep 100000"));
                pod
            })
        })
        .collect();
    let pods: Vec<Pod> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for pod in &pods {
        let st = c.pod_status(&pod.id).unwrap().status.unwrap();
        assert_eq!(
            st.state,
            cri::PodSandboxState::SandboxReady as i32,
            "{}",
            pod.id
        );
        let cs = c.list_containers(&pod.id).unwrap();
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].state, cri::ContainerState::ContainerRunning as i32);
        assert_eq!(pod.shims().len(), 1, "one shim per pod");
    }
    let shims: Vec<i32> = pods.iter().map(|p| p.shims()[0].pid).collect();
    let rss: u64 = shims.iter().map(|p| host::rss_kib(*p)).sum();
    println!(
        "{handler}: {N} pods, shim RSS {} KiB per pod",
        rss / N as u64
    );
    let handles: Vec<_> = pods
        .into_iter()
        .map(|pod| {
            std::thread::spawn(move || {
                let c = Cri::connect();
                pod.destroy(&c)
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
