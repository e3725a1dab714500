//! Where a shim listens: `unix:///run/containerd/s/<sha256("address/namespace/group")>`,
//! the formula of containerd's own shims (`filepath.Join` of the three), so one
//! pod's containers find one shim and names never collide across instances.

use sha2::{Digest, Sha256};

/// containerd creates and trusts this directory for shim sockets.
const SOCKET_DIR: &str = "/run/containerd/s";

/// The CRI annotation that names a container's sandbox (pod).
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

pub fn socket_address(containerd_address: &str, namespace: &str, group: &str) -> String {
    let joined = format!(
        "{}/{namespace}/{group}",
        containerd_address.trim_end_matches('/')
    );
    let mut h = Sha256::new();
    h.update(joined.as_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("unix://{SOCKET_DIR}/{hex}")
}

pub fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_containerds_formula() {
        // sha256("/run/containerd/containerd.sock/default/c1"), as `printf %s … | sha256sum` gives.
        let a = socket_address("/run/containerd/containerd.sock", "default", "c1");
        let expect = {
            let out = std::process::Command::new("sh")
                .args(["-c", "printf %s /run/containerd/containerd.sock/default/c1 | sha256sum | cut -d' ' -f1"])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        assert_eq!(a, format!("unix:///run/containerd/s/{expect}"));
        assert_eq!(socket_path(&a), format!("/run/containerd/s/{expect}"));
    }
}
