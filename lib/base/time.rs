//! Time and rates as reports and object stores write them, and durations as
//! settings give them.

use std::time::Duration;

use crate::base::error::{Error, Result};

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339(unix_secs: u64) -> String {
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days((unix_secs / 86_400) as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unix seconds of an RFC 3339 time in UTC, `YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)`
/// (`t`, `z` and a space for `T` accepted; fractions of a second dropped).
pub fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &rest[1 + digits..];
    }
    if !matches!(rest, b"Z" | b"z" | b"+00:00" | b"-00:00") {
        return None;
    }
    let days_in = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > days_in[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    if days_from_civil(y, mo, d) != days_from_civil(y, mo, 1) + d - 1
        || civil_from_days(days_from_civil(y, mo, d)) != (y, mo, d)
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec.min(59))
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a civil date; a day past the month's end counts on.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// MiB per second, for reports.
pub fn mib_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / seconds.max(1e-9)
}

/// The longest duration any setting takes (a week): far beyond any Job, and far
/// from where adding it to a clock could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration: `90`, `90s`, `2m`, `1h` (at least one second, at most
/// [`MAX_DURATION`]).
pub fn parse_duration(raw: &str, var: &str) -> Result<Duration> {
    let t = raw.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let secs: Option<u64> = num.parse::<u64>().ok().and_then(|n| match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    });
    match secs {
        Some(s) if s > MAX_DURATION.as_secs() => Err(Error::Config(format!(
            "{var}={raw:?} is too long (at most {}h)",
            MAX_DURATION.as_secs() / 3600
        ))),
        Some(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(Error::Config(format!(
            "{var}={raw:?} is not a duration (e.g. 110s, 2m)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_figure() {
        assert!((mib_per_s(10 << 20, 2.0) - 5.0).abs() < 1e-9);
    }
}

#[cfg(test)]
mod rfc3339_tests {
    use super::*;

    #[test]
    fn utc_times_parse_and_others_are_refused() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        let t = parse_rfc3339_utc("2026-11-29T23:30:56Z").unwrap();
        assert_eq!(rfc3339(t as u64), "2026-11-29T23:30:56Z");
        assert_eq!(parse_rfc3339_utc("2026-11-29T23:30:56.123+00:00"), Some(t));
        for bad in [
            "2026-11-29",
            "2026-11-29T23:30:56",
            "2026-11-29T23:30:56+02:00",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
    }
}
