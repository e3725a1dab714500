//! `-info`: containerd 2.x runs `<shim> -info` with the runtime's options on
//! stdin and reads a `containerd.types.RuntimeInfo` protobuf from stdout
//! (`ctr plugins inspect-runtime`, the introspection service's PluginInfo,
//! and the CRI's runtime features the kubelet admits pods by). As the runc
//! shim does: name, version, the options echoed back, and the OCI features
//! document as JSON in an `Any` of the runtime-spec's type URL.

use std::io::{Read, Write};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};

use crate::options::Options;

pub const RUNTIME_NAME: &str = "io.containerd.rust.v1";
/// The type URL containerd registers for runtime-spec's `features.Features`.
pub const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// The RuntimeInfo for options `opts` (the raw `Any` read from stdin).
pub fn runtime_info(opts: Option<Any>) -> RuntimeInfo {
    let features =
        serde_json::to_vec(&runtime_core::features::features()).expect("features serialize");
    RuntimeInfo {
        name: RUNTIME_NAME.into(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }),
        options: opts.map_or_else(MessageField::none, MessageField::some),
        features: MessageField::some(Any {
            type_url: FEATURES_TYPE_URL.into(),
            value: features,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes)?;
    // Options this shim cannot read are an error here too, as in the runc shim.
    let (_, any) = Options::from_any_bytes(&bytes)?;
    let out = runtime_info(any).write_to_bytes()?;
    std::io::stdout().write_all(&out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_the_features_document() {
        let bytes = runtime_info(None).write_to_bytes().unwrap();
        let info = RuntimeInfo::parse_from_bytes(&bytes).unwrap();
        assert_eq!(info.name, RUNTIME_NAME);
        assert_eq!(info.features.type_url, FEATURES_TYPE_URL);
        let f: oci_spec::runtime::Features = serde_json::from_slice(&info.features.value).unwrap();
        assert_eq!(f, runtime_core::features::features());
        assert!(info.options.is_none());
    }
}
