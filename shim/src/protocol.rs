//! Which task API generation the calling containerd speaks.

/// containerd 2.x passes its own version to shims; 1.x does not.
pub fn containerd_speaks_v3() -> bool {
    false
}
