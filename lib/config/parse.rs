//! Sizes, counts and durations as the env vars spell them, and the settings
//! every operation shares (`CONCURRENCY`, `PROGRESS_INTERVAL`, `DEADLINE`).

use std::time::Duration;

use super::DEFAULT_CONCURRENCY;
use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;
pub use crate::base::time::{MAX_DURATION, parse_duration};

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
