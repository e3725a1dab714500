//! Which generation of the shim protocol the calling containerd speaks.
//!
//! containerd 1.7 and 2.x set `MAX_SHIM_VERSION` (2 on 1.7 and 2.0–2.2) in
//! the `start` environment: they accept a JSON reply naming the task API
//! version (1.7 at most 2). containerd 1.6 sets nothing and reads a plain
//! address (task API v2).

/// The bootstrap version containerd accepts (1: a plain address).
pub fn max_shim_version_env() -> u32 {
    max_shim_version(std::env::var("MAX_SHIM_VERSION").ok().as_deref())
}

fn max_shim_version(v: Option<&str>) -> u32 {
    v.and_then(|v| v.trim().parse().ok()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(max_shim_version(None), 1);
        assert_eq!(max_shim_version(Some("2")), 2);
        assert_eq!(max_shim_version(Some("junk")), 1);
    }
}
