//! Which backups a retention policy keeps: restic's `forget` rules, as pure
//! functions of the backups' times (no I/O).
//!
//! Backups are taken newest first. `last N` keeps the N newest. `hourly`,
//! `daily`, `weekly` (ISO weeks, Monday to Sunday), `monthly` and `yearly N`
//! keep the newest backup of each of the N most recent such periods that hold
//! one; while a rule has count left, the oldest backup is kept too (restic's
//! "oldest" rule, which keeps the longest history). `within D` keeps every
//! backup made within D (years, months, days, hours) before the newest one. A
//! backup kept by any rule is kept. Periods are taken in UTC, or at a fixed
//! offset. Whatever the policy, the newest backup is kept, and so is one dated
//! in the future (a skewed clock), which does not count as the newest.

pub use crate::base::time::{civil_from_days, days_from_civil};

/// How many periods a rule keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// This many.
    N(u32),
    /// All of them (restic's `unlimited`).
    Unlimited,
}

impl Count {
    /// `7`, or `unlimited`; `name` is the setting, for the error.
    pub fn parse(raw: &str, name: &str) -> Result<Count, String> {
        match raw.trim() {
            "unlimited" | "-1" => Ok(Count::Unlimited),
            s => s.parse::<u32>().map(Count::N).map_err(|_| {
                format!("{name}={raw:?} is not a count (a whole number, or unlimited)")
            }),
        }
    }

    fn left(self) -> bool {
        self != Count::N(0)
    }

    fn take(&mut self) {
        if let Count::N(n) = self {
            *n = n.saturating_sub(1);
        }
    }
}

/// A calendar duration, restic's `2y5m7d3h`: years, months, days, hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
}

impl Span {
    /// Parses `2y5m7d3h` (any of the parts, in that order, at least one);
    /// `name` is the setting, for the error.
    pub fn parse(raw: &str, name: &str) -> Result<Span, String> {
        let bad = || {
            format!(
                "{name}={raw:?} is not a duration: use years, months, days and hours as in 2y5m7d3h \
                 (m is months)"
            )
        };
        let mut span = Span::default();
        let mut rest = raw.trim();
        let mut order = 0;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
            if n > 100_000 {
                return Err(bad());
            }
            let unit = rest[digits..].chars().next().ok_or_else(bad)?;
            let (slot, rank) = match unit {
                'y' => (&mut span.years, 1),
                'm' => (&mut span.months, 2),
                'd' => (&mut span.days, 3),
                'h' => (&mut span.hours, 4),
                _ => return Err(bad()),
            };
            if rank <= order {
                return Err(bad());
            }
            order = rank;
            *slot = n;
            rest = &rest[digits + 1..];
        }
        Ok(span)
    }

    /// `t` minus this span, as Go's `AddDate(-y, -m, -d).Add(-h)` does it
    /// (a day past the month's end rolls over, as in Go).
    fn before(self, t: i64) -> i64 {
        let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        let months = y * 12 + (m - 1) - self.years * 12 - self.months;
        let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
        let days = days_from_civil(y, m, d) - self.days;
        days * 86_400 + secs - self.hours * 3600
    }
}

/// A retention policy. A rule that is `None` keeps nothing by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub last: Option<Count>,
    pub hourly: Option<Count>,
    pub daily: Option<Count>,
    pub weekly: Option<Count>,
    pub monthly: Option<Count>,
    pub yearly: Option<Count>,
    pub within: Option<Span>,
    /// Seconds east of UTC in which periods are taken (0: UTC).
    pub utc_offset: i32,
}

impl Policy {
    /// Whether any rule is set.
    pub fn is_set(&self) -> bool {
        let counts = [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ];
        counts.iter().any(Option::is_some) || self.within.is_some()
    }
}

/// What the policy decided for one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index into the list given to [`apply`].
    pub index: usize,
    /// The rules that kept it; empty when it is to be deleted.
    pub kept_by: Vec<&'static str>,
}

/// Applies `policy` to backups made at `times` (Unix seconds, any order); `now`
/// bounds "newest" as restic does (a backup from the future is kept and does not
/// move the window). Returns one decision per backup, newest first (ties by
/// index, the later one first).
pub fn apply(policy: &Policy, times: &[i64], now: i64) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[b].cmp(&times[a]).then(b.cmp(&a)));
    let latest = times.iter().copied().filter(|&t| t <= now).max();
    let offset = i64::from(policy.utc_offset);
    type Bucket = fn(i64, usize) -> i64;
    let mut rules: Vec<(Count, Bucket, &'static str, Option<i64>)> = [
        (policy.last, always as Bucket, "last"),
        (policy.hourly, hour, "hourly"),
        (policy.daily, day, "daily"),
        (policy.weekly, week, "weekly"),
        (policy.monthly, month, "monthly"),
        (policy.yearly, year, "yearly"),
    ]
    .into_iter()
    .filter_map(|(count, bucket, name)| count.map(|c| (c, bucket, name, None)))
    .collect();
    let within_from = match (policy.within, latest) {
        (Some(span), Some(latest)) => Some(span.before(latest)),
        _ => None,
    };
    let oldest = order.len().saturating_sub(1);
    // The newest backup that is not from the future: kept whatever the policy.
    let newest = order.iter().position(|&i| times[i] <= now);
    order
        .iter()
        .enumerate()
        .map(|(nr, &index)| {
            let t = times[index];
            let mut kept_by = Vec::new();
            if Some(nr) == newest {
                kept_by.push("newest");
            }
            if t > now {
                kept_by.push("in the future");
            }
            if within_from.is_some_and(|from| t > from) {
                kept_by.push("within");
            }
            for (count, bucket, name, last) in &mut rules {
                if !count.left() {
                    continue;
                }
                let value = bucket(t + offset, nr);
                if Some(value) != *last || nr == oldest {
                    kept_by.push(if Some(value) == *last {
                        oldest_name(name)
                    } else {
                        name
                    });
                    *last = Some(value);
                    count.take();
                }
            }
            Decision { index, kept_by }
        })
        .collect()
}

fn oldest_name(rule: &str) -> &'static str {
    match rule {
        "last" => "oldest last",
        "hourly" => "oldest hourly",
        "daily" => "oldest daily",
        "weekly" => "oldest weekly",
        "monthly" => "oldest monthly",
        _ => "oldest yearly",
    }
}

fn always(_: i64, nr: usize) -> i64 {
    nr as i64
}

fn hour(t: i64, _: usize) -> i64 {
    t.div_euclid(3600)
}

fn day(t: i64, _: usize) -> i64 {
    t.div_euclid(86_400)
}

/// The ISO week as `year * 100 + week`.
fn week(t: i64, _: usize) -> i64 {
    let days = t.div_euclid(86_400);
    // 1970-01-01 was a Thursday: Monday-based weekday 3.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (y, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(y, 1, 1)) / 7 + 1;
    y * 100 + week
}

fn month(t: i64, _: usize) -> i64 {
    let (y, m, _) = civil_from_days(t.div_euclid(86_400));
    y * 12 + m
}

fn year(t: i64, _: usize) -> i64 {
    civil_from_days(t.div_euclid(86_400)).0
}

/// Parses `+02:00`, `-0530`, `Z` or `UTC` into seconds east of UTC.
pub fn parse_offset(raw: &str, name: &str) -> Result<i32, String> {
    let bad = || format!("{name}={raw:?} is not a UTC offset (use UTC, +02:00 or -05:30)");
    let s = raw.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Ok(0);
    }
    let sign = match s.chars().next() {
        Some('+') => 1,
        Some('-') => -1,
        _ => return Err(bad()),
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (i32, i32) = (
        digits[..2].parse().unwrap_or(99),
        digits[2..].parse().unwrap_or(99),
    );
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `YYYY-MM-DD HH:MM` in UTC as Unix seconds.
    fn at(s: &str) -> i64 {
        let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
        days_from_civil(n(0..4), n(5..7), n(8..10)) * 86_400 + n(11..13) * 3600 + n(14..16) * 60
    }

    /// restic's documented example (doc/060_forget.rst): weekday backups over two
    /// weeks, a second one on Fridays, Wednesday 2025-04-30 missed.
    const WEEKDAYS: [&str; 11] = [
        "2025-04-21 11:00",
        "2025-04-22 11:00",
        "2025-04-23 11:00",
        "2025-04-24 11:00",
        "2025-04-25 11:00",
        "2025-04-25 23:00",
        "2025-04-28 11:00",
        "2025-04-29 11:00",
        "2025-05-01 11:00",
        "2025-05-02 11:00",
        "2025-05-02 23:00",
    ];

    fn kept(policy: &Policy, times: &[&str]) -> Vec<String> {
        let secs: Vec<i64> = times.iter().map(|t| at(t)).collect();
        let mut out: Vec<String> = apply(policy, &secs, at("2030-01-01 00:00"))
            .into_iter()
            .filter(|d| !d.kept_by.is_empty())
            .map(|d| times[d.index].to_string())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn restics_keep_daily_example() {
        let policy = Policy {
            daily: Some(Count::N(5)),
            ..Policy::default()
        };
        assert_eq!(
            kept(&policy, &WEEKDAYS),
            [
                "2025-04-25 23:00",
                "2025-04-28 11:00",
                "2025-04-29 11:00",
                "2025-05-01 11:00",
                "2025-05-02 23:00",
            ]
        );
    }

    #[test]
    fn last_weekly_monthly_and_the_oldest_rule() {
        let last = Policy {
            last: Some(Count::N(3)),
            ..Policy::default()
        };
        assert_eq!(
            kept(&last, &WEEKDAYS),
            ["2025-05-01 11:00", "2025-05-02 11:00", "2025-05-02 23:00"]
        );
        // Two ISO weeks (17 and 18): the newest of each; with count left over,
        // the oldest backup too.
        let weekly = Policy {
            weekly: Some(Count::N(5)),
            ..Policy::default()
        };
        assert_eq!(
            kept(&weekly, &WEEKDAYS),
            ["2025-04-21 11:00", "2025-04-25 23:00", "2025-05-02 23:00"]
        );
        let monthly = Policy {
            monthly: Some(Count::N(1)),
            ..Policy::default()
        };
        assert_eq!(kept(&monthly, &WEEKDAYS), ["2025-05-02 23:00"]);
    }

    #[test]
    fn within_counts_back_from_the_newest_backup_not_from_now() {
        let policy = Policy {
            within: Some(Span::parse("3d", "KEEP_WITHIN").unwrap()),
            ..Policy::default()
        };
        // 2025-05-02 23:00 minus 3 days is 2025-04-29 23:00.
        assert_eq!(
            kept(&policy, &WEEKDAYS),
            ["2025-05-01 11:00", "2025-05-02 11:00", "2025-05-02 23:00"]
        );
    }

    #[test]
    fn the_newest_is_kept_by_any_policy_and_a_future_backup_is_never_deleted() {
        let empty = Policy {
            daily: Some(Count::N(0)),
            ..Policy::default()
        };
        assert_eq!(kept(&empty, &WEEKDAYS), ["2025-05-02 23:00"]);
        let times = [at("2025-01-01 00:00"), at("2031-01-01 00:00")];
        let d = apply(&empty, &times, at("2030-01-01 00:00"));
        assert!(d.iter().all(|d| !d.kept_by.is_empty()), "{d:?}");
    }

    #[test]
    fn periods_follow_the_offset() {
        // 23:30 UTC and 00:30 UTC the next day are one day at -05:00.
        let times = ["2025-03-03 23:30", "2025-03-04 00:30"];
        let mut policy = Policy {
            daily: Some(Count::N(2)),
            ..Policy::default()
        };
        assert_eq!(kept(&policy, &times).len(), 2);
        policy.utc_offset = parse_offset("-05:00", "RETENTION_TIMEZONE").unwrap();
        policy.daily = Some(Count::N(1));
        assert_eq!(kept(&policy, &times), ["2025-03-04 00:30"]);
    }

    #[test]
    fn calendar_helpers_agree_with_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        // ISO weeks: 2021-01-03 is in week 53 of 2020; 2024-12-30 in week 1 of 2025.
        assert_eq!(week(at("2021-01-03 12:00"), 0), 202_053);
        assert_eq!(week(at("2024-12-30 12:00"), 0), 202_501);
        // Go's AddDate: 2025-03-31 minus one month is "2025-02-31", i.e. 03-03.
        let span = Span::parse("1m", "KEEP_WITHIN").unwrap();
        assert_eq!(span.before(at("2025-03-31 10:00")), at("2025-03-03 10:00"));
    }

    #[test]
    fn bad_settings_are_named() {
        for raw in ["", "7", "1w", "3d2y", "m", "1y1y"] {
            let e = Span::parse(raw, "KEEP_WITHIN").unwrap_err();
            assert!(e.starts_with("KEEP_WITHIN="), "{e}");
        }
        assert_eq!(
            Span::parse("2y5m7d3h", "X").unwrap(),
            Span {
                years: 2,
                months: 5,
                days: 7,
                hours: 3
            }
        );
        assert!(
            Count::parse("seven", "KEEP_DAILY")
                .unwrap_err()
                .contains("KEEP_DAILY")
        );
        assert_eq!(Count::parse("unlimited", "X").unwrap(), Count::Unlimited);
        for raw in ["Europe/Berlin", "+2", "+25:00", "02:00"] {
            assert!(parse_offset(raw, "RETENTION_TIMEZONE").is_err(), "{raw}");
        }
        assert_eq!(parse_offset("+05:30", "X").unwrap(), 19_800);
    }
}
