//! Identity changes with raw syscalls (see [`crate::sys::setgroups`] for why).

use oci_spec::runtime::User;

use crate::error::{Error, Result};
use crate::sys;

/// Switches to the spec's user: groups, then gid, then uid (the order in which
/// each step still has the privilege the next one needs).
pub fn switch(user: &User) -> Result<()> {
    let gids: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    sys::setgroups(&gids).map_err(|e| {
        Error::sys(
            "setgroups",
            format!("process.user.additionalGids {gids:?}"),
            e,
        )
    })?;
    sys::setresgid(user.gid())
        .map_err(|e| Error::sys("setresgid", format!("process.user.gid {}", user.gid()), e))?;
    sys::setresuid(user.uid())
        .map_err(|e| Error::sys("setresuid", format!("process.user.uid {}", user.uid()), e))?;
    Ok(())
}
