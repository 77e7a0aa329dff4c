//! Sizes, counts and durations as the env vars spell them, and the settings
//! every operation shares (`CONCURRENCY`, `PROGRESS_INTERVAL`, `DEADLINE`).

use std::time::Duration;

use super::DEFAULT_CONCURRENCY;
use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;

/// `CONCURRENCY`, or the default.
pub(super) fn concurrency(i: &Inputs) -> Result<usize> {
    match &i.concurrency {
        Some(raw) => parse_count(raw, "CONCURRENCY", 1, 64),
        None => Ok(DEFAULT_CONCURRENCY),
    }
}

pub(super) fn progress(i: &Inputs) -> Result<Duration> {
    match i.progress_interval.as_deref().map(str::trim) {
        None => Ok(Duration::from_secs(5)),
        Some("0") => Ok(Duration::ZERO),
        Some(raw) => parse_duration(raw, "PROGRESS_INTERVAL"),
    }
}

pub(super) fn deadline(i: &Inputs, default: Duration) -> Result<Duration> {
    match &i.deadline {
        Some(raw) => parse_duration(raw, "DEADLINE"),
        None => Ok(default),
    }
}

/// Parses a byte size: `16777216`, `16M`, `16MiB`, `1G` (binary units).
pub fn parse_size(raw: &str, var: &str, min: usize, max: usize) -> Result<usize> {
    let t = raw.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(Error::Config(format!(
                "{var}={raw:?} is not a size (e.g. 16MiB)"
            )));
        }
    };
    let n: usize = num
        .parse()
        .map_err(|_| Error::Config(format!("{var}={raw:?} is not a size (e.g. 16MiB)")))?;
    let v = n.saturating_mul(mult);
    if v < min || v > max {
        return Err(Error::Config(format!(
            "{var}={raw:?} is out of range ({} MiB .. {} MiB)",
            min >> 20,
            max >> 20
        )));
    }
    Ok(v)
}

/// Parses a whole number in `min..=max`.
pub fn parse_count(raw: &str, var: &str, min: usize, max: usize) -> Result<usize> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::Config(format!(
            "{var}={raw:?} must be a whole number from {min} to {max}"
        ))),
    }
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
