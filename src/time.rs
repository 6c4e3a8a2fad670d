//! Timestamps for people: RFC 3339 in UTC, and durations. At the bottom of the crate, beside
//! `escape`: the checks write evidence times with it and the reports print them, and a check
//! must not reach up into `report`.

/// `2026-11-25T17:25:21.123456789Z` for nanoseconds since the Unix epoch.
pub fn rfc3339_ns(ts_ns: i64) -> String {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let nanos = ts_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Nanoseconds since the Unix epoch from the form [`rfc3339_ns`] writes
/// (`2026-11-25T17:25:21.123456789Z`, 1 to 9 digits of fraction, or none); None for any other.
pub fn parse_rfc3339_ns(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let (y, m, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hh, mm, ss) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let frac = &text[19..text.len() - 1];
    let nanos = match frac.strip_prefix('.') {
        None if frac.is_empty() => 0,
        Some(digits) if (1..=9).contains(&digits.len()) => {
            num(20, digits.len())? * 10i64.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let days = days_from_civil(y, m as u32, d as u32);
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000 + nanos)
}

/// (year, month, day) to days since 1970-01-01: the inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The time of day to the millisecond (UTC), e.g. `23:46:21.788`: for timelines within one
/// capture session, where the date says nothing.
pub fn time_of_day(ts_ns: i64) -> String {
    let t = rfc3339_ns(ts_ns);
    t.get(11..23).map(str::to_string).unwrap_or(t)
}

/// Seconds with millisecond precision, e.g. `12.345 s`.
pub fn seconds(ns: i64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm: exact for every i64 day count we can meet).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // `date -u -d @0` and `date -u -d @1764091521` give these.
        assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_ns(1_764_091_521_000_000_123),
            "2025-11-25T17:25:21.000000123Z"
        );
        // Leap day and a time before the epoch.
        assert_eq!(
            rfc3339_ns(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(rfc3339_ns(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn parses_what_it_writes() {
        for ns in [
            0,
            -1,
            951_782_400_000_000_000,
            1_764_091_521_000_000_123,
            1_795_717_740_131_420_000,
            4_102_444_800_999_999_999,
        ] {
            assert_eq!(parse_rfc3339_ns(&rfc3339_ns(ns)), Some(ns), "{ns}");
        }
        assert_eq!(
            parse_rfc3339_ns("2025-11-25T17:25:21.5Z"),
            Some(1_764_091_521_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2025-11-25T17:25:21Z"),
            Some(1_764_091_521_000_000_000)
        );
        for bad in [
            "",
            "2025-11-25 17:25:21Z",
            "2025-11-25T17:25:21.123",
            "2025-13-25T17:25:21Z",
            "2025-11-25T17:25:21.1234567890Z",
            "2025-11-25T17:25:2x.1Z",
            "2025-11-25T17:25:21.+1Z",
        ] {
            assert_eq!(parse_rfc3339_ns(bad), None, "{bad}");
        }
    }
}
