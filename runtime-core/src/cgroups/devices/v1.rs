//! The rule list as cgroup v1 `devices.deny` / `devices.allow` lines.

use std::path::Path;

use super::{Kind, Rule, MKNOD, READ, RWM, WRITE};
use crate::error::{Error, Result};

/// The lines one rule becomes. `a` with wildcards is the controller's own
/// "everything" (it resets the list); `a` with a number is both a `c` and a
/// `b` line, since v1 has no type `a` per device.
pub fn lines(r: &Rule) -> Vec<String> {
    if r.is_everything() && r.access == RWM {
        return vec!["a".into()];
    }
    let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
    let mut access = String::new();
    for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
        if r.access & bit != 0 {
            access.push(c);
        }
    }
    let types: &[char] = match r.kind {
        Kind::All => &['c', 'b'],
        Kind::Block => &['b'],
        Kind::Char => &['c'],
    };
    types
        .iter()
        .map(|t| format!("{t} {}:{} {access}", n(r.major), n(r.minor)))
        .collect()
}

/// Writes the list, in order, to the v1 devices cgroup at `dir`.
pub fn write_rules(dir: &Path, rules: &[Rule]) -> Result<()> {
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        let p = dir.join(file);
        for line in lines(r) {
            std::fs::write(&p, &line)
                .map_err(|e| Error::sys("write", format!("{} ({line})", p.display()), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{effective, tests::spec_rules};
    use super::*;
    use serde_json::json;

    #[test]
    fn v1_lines() {
        let rules = effective(&spec_rules(json!([
            {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"},
            {"allow": true, "type": "a", "major": 7, "access": "mw"},
            {"allow": false, "type": "c", "major": 4, "minor": 1}
        ])))
        .unwrap();
        let all: Vec<(bool, Vec<String>)> = rules.iter().map(|r| (r.allow, lines(r))).collect();
        assert_eq!(all[0], (false, vec!["a".to_string()]));
        assert_eq!(all[1], (true, vec!["b 8:0 r".to_string()]));
        assert_eq!(
            all[2],
            (true, vec!["c 7:* wm".to_string(), "b 7:* wm".to_string()])
        );
        assert_eq!(all[3], (false, vec!["c 4:1 rwm".to_string()]));
        assert_eq!(all[4], (true, vec!["c *:* m".to_string()]));
        assert!(all.iter().any(|(_, l)| l == &["c 136:* rwm".to_string()]));
        assert!(all.iter().any(|(_, l)| l == &["c 5:2 rwm".to_string()]));
        assert!(!all.iter().any(|(_, l)| l == &["c 5:1 rwm".to_string()]));
    }
}
