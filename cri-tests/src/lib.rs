//! A small Kubernetes CRI client for tests: the kubelet's side of the conversation with
//! containerd's CRI plugin, over containerd's socket, blocking calls on a private tokio
//! runtime. The instance is a private containerd started by
//! `scripts/containerd start --cri VERSION DIR` (see `scripts/test`), named by
//! `RSHIM_CONTAINERD_ENV` (its env file).

pub mod host;
pub mod stream;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cri::image_service_client::ImageServiceClient;
use cri::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
pub use k8s_cri::v1 as cri;
use tonic::transport::{Channel, Endpoint, Uri};

pub const BUSYBOX: &str = "localhost/rshim/busybox:latest";
/// The runtime handlers `scripts/containerd --cri` configures.
pub const HANDLERS: [&str; 2] = ["rust", "runc"];

/// What the env file of the private containerd says.
pub struct Env {
    pub endpoint: String,
    pub version: String,
    /// containerd's state dir (task bundles live under it).
    pub state: PathBuf,
    /// The test's own scratch dir (pod logs), inside the instance's dir.
    pub scratch: PathBuf,
    pub cgroup_root: String,
    /// `CRI_CGROUP_DRIVER=systemd` (a containerd started with `--systemd`): pods get a
    /// systemd slice as cgroup parent, as the kubelet's `cgroupDriver: systemd` gives them.
    pub systemd: bool,
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let file = std::env::var("RSHIM_CONTAINERD_ENV").expect(
            "RSHIM_CONTAINERD_ENV is not set: run the CRI tests through scripts/test, which starts a private containerd with --cri",
        );
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {file}: {e}"));
        let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let endpoint = vars
            .get("CRI_ENDPOINT")
            .unwrap_or_else(|| panic!("{file} has no CRI_ENDPOINT: start containerd with --cri"))
            .to_string();
        let dir = Path::new(&file).parent().unwrap().to_path_buf();
        let scratch = dir.join("cri-tests");
        std::fs::create_dir_all(&scratch).unwrap();
        let cgroup_root = vars
            .get("CRI_CGROUP_ROOT")
            .unwrap_or_else(|| panic!("{file} has no CRI_CGROUP_ROOT"))
            .to_string();
        // RSHIM_CRI_CGROUP_DRIVER overrides the env file (cgroupfs against a --systemd
        // instance; the reverse fails at RunPodSandbox, systemd has no such slice root).
        let driver = std::env::var("RSHIM_CRI_CGROUP_DRIVER")
            .unwrap_or_else(|_| vars.get("CRI_CGROUP_DRIVER").unwrap_or(&"cgroupfs").to_string());
        let systemd = match driver.as_str() {
            "systemd" => true,
            "cgroupfs" => false,
            other => panic!("cgroup driver {other:?} (RSHIM_CRI_CGROUP_DRIVER or {file}): use systemd or cgroupfs"),
        };
        Env {
            systemd,
            cgroup_root,
            endpoint,
            version: vars.get("CONTAINERD_VERSION").unwrap_or(&"").to_string(),
            state: PathBuf::from(vars["CONTAINERD_STATE"]),
            scratch,
        }
    })
}

/// Cgroup parent of the test pods: the instance's own (`CRI_CGROUP_ROOT` of its env
/// file), which `scripts/containerd stop` empties and removes. With the systemd driver a
/// slice name without `.slice` (`rshimcri<hash>`), the root of the pods' slices.
pub fn cgroup_root() -> String {
    env().cgroup_root.clone()
}

/// The QoS classes whose slices the kubelet's systemd driver makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    BestEffort,
    Burstable,
}

/// A pod's cgroup parent as the kubelet gives it, from the pod's uid: with the systemd
/// driver the slice `<root>-<qos>-pod<uid>.slice` (the uid's `-` escaped to `_`, as the
/// kubelet does, since `-` nests slices), else `<root>/<uid>`.
pub fn pod_cgroup_parent(uid: &str, qos: Qos) -> String {
    if env().systemd {
        let qos = match qos {
            Qos::BestEffort => "besteffort",
            Qos::Burstable => "burstable",
        };
        format!("{}-{qos}-pod{}.slice", cgroup_root(), uid.replace('-', "_"))
    } else {
        format!("{}/{uid}", cgroup_root())
    }
}

/// The cgroup dir (relative to a hierarchy's root) of a cgroup parent: a slice expanded
/// as systemd nests it (`a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`), a path as is.
pub fn cgroup_dir(parent: &str) -> String {
    let Some(name) = parent.strip_suffix(".slice").filter(|n| !n.contains('/')) else {
        return parent.trim_start_matches('/').to_string();
    };
    let mut dirs = Vec::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        dirs.push(format!("{prefix}.slice"));
    }
    dirs.join("/")
}

/// The systemd scope of a container CRI made with the systemd driver (the
/// `slice:cri-containerd:<id>` cgroupsPath containerd hands to either handler).
pub fn scope_of(id: &str) -> String {
    format!("cri-containerd-{id}.scope")
}

pub struct Cri {
    rt: tokio::runtime::Runtime,
    rs: RuntimeServiceClient<Channel>,
    is: ImageServiceClient<Channel>,
}

pub type Res<T> = Result<T, tonic::Status>;

impl Cri {
    pub fn connect() -> Cri {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let path = env().endpoint.clone();
        let channel = rt
            .block_on(async {
                // The URI is not used: every connection goes to containerd's unix socket.
                Endpoint::try_from("http://[::]:0")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(path).await?,
                            ))
                        }
                    }))
                    .await
            })
            .unwrap_or_else(|e| panic!("connect to CRI at {}: {e}", env().endpoint));
        Cri {
            rt,
            rs: RuntimeServiceClient::new(channel.clone()),
            is: ImageServiceClient::new(channel),
        }
    }

    /// A runtime service client (cheap: clones share the connection).
    pub fn rs(&self) -> RuntimeServiceClient<Channel> {
        self.rs.clone()
    }

    pub fn images(&self) -> ImageServiceClient<Channel> {
        self.is.clone()
    }

    /// Runs one call to completion.
    pub fn call<T>(&self, f: impl Future<Output = Res<tonic::Response<T>>>) -> Res<T> {
        self.rt.block_on(f).map(tonic::Response::into_inner)
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    pub fn run_pod(&self, config: &cri::PodSandboxConfig, handler: &str) -> Res<String> {
        let req = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_string(),
        };
        self.call(self.rs().run_pod_sandbox(req))
            .map(|r| r.pod_sandbox_id)
    }

    pub fn pod_status(&self, id: &str) -> Res<cri::PodSandboxStatusResponse> {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        self.call(self.rs().pod_sandbox_status(req))
    }

    pub fn create(
        &self,
        pod: &str,
        config: &cri::ContainerConfig,
        sandbox: &cri::PodSandboxConfig,
    ) -> Res<String> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox.clone()),
        };
        self.call(self.rs().create_container(req))
            .map(|r| r.container_id)
    }

    pub fn start(&self, id: &str) -> Res<()> {
        let req = cri::StartContainerRequest {
            container_id: id.to_string(),
        };
        self.call(self.rs().start_container(req)).map(drop)
    }

    /// Create and start.
    pub fn run(
        &self,
        pod: &str,
        config: &cri::ContainerConfig,
        sandbox: &cri::PodSandboxConfig,
    ) -> Res<String> {
        let id = self.create(pod, config, sandbox)?;
        self.start(&id)?;
        Ok(id)
    }

    pub fn status(&self, id: &str) -> Res<cri::ContainerStatus> {
        let req = cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        self.call(self.rs().container_status(req))
            .map(|r| r.status.expect("ContainerStatus without status"))
    }

    /// Waits until the container has exited, and returns its status.
    pub fn wait_exited(&self, id: &str, timeout: Duration) -> cri::ContainerStatus {
        let start = Instant::now();
        loop {
            let s = self.status(id).unwrap();
            if s.state == cri::ContainerState::ContainerExited as i32 {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "container {id} still {:?} after {timeout:?}",
                s.state
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> Res<cri::ExecSyncResponse> {
        let req = cri::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        };
        self.call(self.rs().exec_sync(req))
    }

    /// ExecSync that must exit 0; its stdout.
    pub fn sh(&self, id: &str, script: &str) -> String {
        let r = self
            .exec_sync(id, &["sh", "-c", script])
            .unwrap_or_else(|e| panic!("exec in {id}: {script}: {e}"));
        assert_eq!(
            r.exit_code,
            0,
            "{script} in {id}: stdout {} stderr {}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8_lossy(&r.stdout).trim_end().to_string()
    }

    pub fn stop_container(&self, id: &str, timeout: i64) -> Res<()> {
        let req = cri::StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        };
        self.call(self.rs().stop_container(req)).map(drop)
    }

    pub fn remove_container(&self, id: &str) -> Res<()> {
        let req = cri::RemoveContainerRequest {
            container_id: id.to_string(),
        };
        self.call(self.rs().remove_container(req)).map(drop)
    }

    pub fn stop_pod(&self, id: &str) -> Res<()> {
        let req = cri::StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call(self.rs().stop_pod_sandbox(req)).map(drop)
    }

    pub fn remove_pod(&self, id: &str) -> Res<()> {
        let req = cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call(self.rs().remove_pod_sandbox(req)).map(drop)
    }

    /// Stops and removes a pod (CRI removes its containers with it).
    pub fn destroy_pod(&self, id: &str) {
        self.stop_pod(id)
            .unwrap_or_else(|e| panic!("StopPodSandbox {id}: {e}"));
        self.remove_pod(id)
            .unwrap_or_else(|e| panic!("RemovePodSandbox {id}: {e}"));
    }

    pub fn stats(&self, id: &str) -> Res<cri::ContainerStats> {
        let req = cri::ContainerStatsRequest {
            container_id: id.to_string(),
        };
        self.call(self.rs().container_stats(req))
            .map(|r| r.stats.expect("ContainerStats without stats"))
    }

    pub fn list_containers(&self, pod: &str) -> Res<Vec<cri::Container>> {
        let req = cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod.to_string(),
                ..Default::default()
            }),
        };
        self.call(self.rs().list_containers(req))
            .map(|r| r.containers)
    }
}

/// A unique name for this process and call site (pod names and uids must not repeat).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A pod as the kubelet would ask for it: its own network, ipc and uts namespaces, a
/// pid namespace per container (shareProcessNamespace false), logs under the scratch dir,
/// cgroups under `cgroup_root()`.
pub fn pod_config(name: &str) -> cri::PodSandboxConfig {
    let uid = unique(name);
    let logs = env().scratch.join("logs").join(&uid);
    std::fs::create_dir_all(&logs).unwrap();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.clone(),
            namespace: "rshim-test".to_string(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: logs.to_string_lossy().into_owned(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: pod_cgroup_parent(&uid, Qos::BestEffort),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Pod as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A busybox container running `sh -c script`, logging to `<name>.log` in the pod's dir.
pub fn container_config(name: &str, script: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: BUSYBOX.to_string(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources::default()),
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Pod as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// The container's security context, to change in a test.
pub fn security(c: &mut cri::ContainerConfig) -> &mut cri::LinuxContainerSecurityContext {
    c.linux
        .as_mut()
        .unwrap()
        .security_context
        .get_or_insert_with(Default::default)
}

pub fn resources(c: &mut cri::ContainerConfig) -> &mut cri::LinuxContainerResources {
    c.linux
        .as_mut()
        .unwrap()
        .resources
        .get_or_insert_with(Default::default)
}

/// The pod's security context, to change in a test.
pub fn pod_security(p: &mut cri::PodSandboxConfig) -> &mut cri::LinuxSandboxSecurityContext {
    p.linux
        .as_mut()
        .unwrap()
        .security_context
        .get_or_insert_with(Default::default)
}

/// A container's log file, as CRI writes it: `<log_directory>/<log_path>`.
pub fn log_file(pod: &cri::PodSandboxConfig, c: &cri::ContainerConfig) -> PathBuf {
    Path::new(&pod.log_directory).join(&c.log_path)
}

/// One line of the CRI log format: `<RFC3339Nano time> <stdout|stderr> <F|P> <text>`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub time: String,
    pub stream: String,
    pub tag: String,
    pub text: String,
}

/// Parses a CRI log file; panics naming the line that is not in the format.
pub fn read_log(path: &Path) -> Vec<LogLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let (time, stream, tag) = (f.next(), f.next(), f.next());
            let line = LogLine {
                time: time.unwrap_or("").into(),
                stream: stream.unwrap_or("").into(),
                tag: tag.unwrap_or("").into(),
                text: f.next().unwrap_or("").into(),
            };
            assert!(
                line.time.ends_with('Z') && line.time.contains('T'),
                "not an RFC 3339 UTC time in {}: {l:?}",
                path.display()
            );
            assert!(
                matches!(line.stream.as_str(), "stdout" | "stderr"),
                "bad stream in {}: {l:?}",
                path.display()
            );
            assert!(
                matches!(line.tag.as_str(), "F" | "P"),
                "bad tag in {}: {l:?}",
                path.display()
            );
            line
        })
        .collect()
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

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

/// First line of a test that needs root (a private containerd with the CRI plugin):
/// returns from it, naming it, when not run as root.
#[macro_export]
macro_rules! needs_root {
    () => {
        if $crate::skip_unless_root({
            fn here() {}
            let n = std::any::type_name_of_val(&here);
            n.strip_suffix("::here").unwrap_or(n)
        }) {
            return;
        }
    };
}

/// `mod NAME { fn rust(); fn runc() }`: the scenario `NAME(&Cri, handler)` per handler.
/// Shared by the test files that run each scenario under both handlers.
#[macro_export]
macro_rules! both_handlers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn rust() {
                $crate::needs_root!();
                super::$name(&cri_tests::Cri::connect(), "rust")
            }
            #[test]
            fn runc() {
                $crate::needs_root!();
                super::$name(&cri_tests::Cri::connect(), "runc")
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    use super::cgroup_dir;

    #[test]
    fn slices_expand_as_systemd_nests_them() {
        assert_eq!(
            cgroup_dir("rshimcri1a2b-burstable-pod7_0.slice"),
            "rshimcri1a2b.slice/rshimcri1a2b-burstable.slice/rshimcri1a2b-burstable-pod7_0.slice"
        );
        assert_eq!(cgroup_dir("system.slice"), "system.slice");
        assert_eq!(
            cgroup_dir("/rshim-test-cri-1/pod-1"),
            "rshim-test-cri-1/pod-1"
        );
    }
}
