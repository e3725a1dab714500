//! `kill ID [SIGNAL]`: by number or name, with or without the `SIG` prefix.

use super::with_container;
use crate::args::{Cmd, Global};
use crate::error::{Error, Res};

pub fn kill(g: &Global, cmd: &Cmd) -> Res {
    let sig = signal_number(cmd.args.get(1).map(String::as_str).unwrap_or("SIGTERM"))?;
    let all = cmd.has("all") || cmd.has("a");
    with_container(g, cmd, |c| c.kill(sig, all))
}

pub fn signal_number(s: &str) -> Result<i32, Error> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.trim_start_matches("SIG");
    let sig: nix::sys::signal::Signal = format!("SIG{name}")
        .parse()
        .map_err(|_| Error::Usage(format!("unknown signal {s:?}")))?;
    Ok(sig as i32)
}

#[cfg(test)]
mod tests {
    use super::signal_number;

    #[test]
    fn signals_by_number_and_name() {
        assert_eq!(signal_number("9").unwrap(), 9);
        assert_eq!(signal_number("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(signal_number("SIGTERM").unwrap(), libc::SIGTERM);
        let e = signal_number("SIGNOPE").unwrap_err().to_string();
        assert_eq!(e, "unknown signal \"SIGNOPE\"");
    }
}
