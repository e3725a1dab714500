//! `features` and `--version`.

use crate::error::Res;

/// The OCI features document, from the same source as the shim's `-info`.
pub fn features() -> Res {
    println!("{}", runtime_core::features::features_json());
    Ok(())
}

pub fn version() -> Res {
    println!(
        "rshim-runc version {}\nspec: 1.0.2",
        env!("CARGO_PKG_VERSION")
    );
    Ok(())
}
