//! Which generation of the shim protocol the calling containerd speaks.
//!
//! containerd 2.x sets `MAX_SHIM_VERSION` (2 on 2.0–2.2) in the `start`
//! environment: it then accepts a JSON reply naming task API version 3.
//! containerd 1.x sets nothing and reads a plain address (task API v2).

pub fn containerd_speaks_v3() -> bool {
    max_shim_version(std::env::var("MAX_SHIM_VERSION").ok().as_deref()) >= 2
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
