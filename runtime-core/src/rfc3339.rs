//! Timestamps as RFC 3339 in UTC with nanoseconds: containerd's own log lines
//! and runc's `state` use this form. No time zone database is needed for UTC.

/// UTC time as RFC 3339 with nanoseconds, as containerd's own log lines have it.
pub fn rfc3339(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60,
        since_epoch.subsec_nanos()
    )
}

/// Now, as [`rfc3339`].
pub fn now() -> String {
    rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        let t = |s, n| super::rfc3339(std::time::Duration::new(s, n));
        assert_eq!(t(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(t(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(
            t(1_796_111_909, 342_216_149),
            "2026-12-01T07:58:29.342216149Z"
        );
    }
}
