//! The command line containerd passes to a shim (Go `flag` syntax).

use std::fmt;

#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub namespace: String,
    pub id: String,
    /// containerd's GRPC address.
    pub address: String,
    pub publish_binary: String,
    pub bundle: String,
    pub socket: String,
    pub debug: bool,
    pub version: bool,
    /// `-info`: print the RuntimeInfo protobuf (containerd 2.x asks for it).
    pub info: bool,
    /// `check -containerd-config PATH`: the config to diagnose.
    pub containerd_config: Option<String>,
    /// `start`, `delete`, or none for the serving daemon.
    pub action: Option<String>,
}

#[derive(Debug)]
pub struct ArgError(String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

impl Flags {
    /// Rebuilds the flags for the serving daemon (same identity, no action).
    pub fn daemon_args(&self) -> Vec<String> {
        let mut v = vec![
            "-namespace".into(),
            self.namespace.clone(),
            "-id".into(),
            self.id.clone(),
            "-address".into(),
            self.address.clone(),
        ];
        if !self.publish_binary.is_empty() {
            v.extend(["-publish-binary".into(), self.publish_binary.clone()]);
        }
        if self.debug {
            v.push("-debug".into());
        }
        v
    }
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Flags, ArgError> {
    let mut f = Flags::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            if f.action.is_some() {
                return Err(ArgError(format!("unexpected argument {arg:?}")));
            }
            f.action = Some(arg);
            continue;
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        let mut value = |inline: Option<String>| {
            inline
                .or_else(|| it.next())
                .ok_or_else(|| ArgError(format!("flag -{name} needs a value")))
        };
        match name {
            "namespace" => f.namespace = value(inline)?,
            "id" => f.id = value(inline)?,
            "address" => f.address = value(inline)?,
            "publish-binary" => f.publish_binary = value(inline)?,
            "bundle" => f.bundle = value(inline)?,
            "socket" => f.socket = value(inline)?,
            "debug" => f.debug = inline.is_none_or(|v| v != "false"),
            "v" | "version" => f.version = true,
            "info" => f.info = inline.is_none_or(|v| v != "false"),
            "containerd-config" => f.containerd_config = Some(value(inline)?),
            other => return Err(ArgError(format!("flag provided but not defined: -{other}"))),
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Flags {
        parse(s.split_whitespace().map(String::from)).unwrap()
    }

    #[test]
    fn containerd_start_line() {
        let f = p("-namespace k8s.io -address /run/c.sock -publish-binary /usr/bin/containerd -id abc -debug start");
        assert_eq!(
            (f.namespace.as_str(), f.id.as_str(), f.address.as_str()),
            ("k8s.io", "abc", "/run/c.sock")
        );
        assert!(f.debug);
        assert_eq!(f.action.as_deref(), Some("start"));
    }

    #[test]
    fn inline_values_and_bundle() {
        let f = p("--namespace=ns -id=x -bundle /b delete");
        assert_eq!(
            (f.namespace.as_str(), f.id.as_str(), f.bundle.as_str()),
            ("ns", "x", "/b")
        );
        assert_eq!(f.action.as_deref(), Some("delete"));
    }

    #[test]
    fn info_flag() {
        assert!(p("-info").info);
        assert!(!p("-info=false").info);
        assert!(!p("-id x start").info);
    }

    #[test]
    fn unknown_flag_is_named() {
        let e = parse(["-bogus".to_string()]).unwrap_err();
        assert!(e.to_string().contains("-bogus"));
    }

    #[test]
    fn daemon_args_round_trip() {
        let f = p("-namespace ns -id x -address /a -publish-binary /c start");
        let d = parse(f.daemon_args()).unwrap();
        assert_eq!(
            (d.namespace, d.id, d.address, d.action),
            (f.namespace, f.id, f.address, None)
        );
    }
}
