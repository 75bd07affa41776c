//! When an export runs in AWS: an EventBridge schedule expression, `rate(15 minutes)` or
//! `cron(0 6 * * ? *)`. The config warns about one that is not valid, and `sluice schedules`
//! refuses it, naming the export, so most typos surface before CloudFormation sees them: the
//! syntax and the ranges of numbers are checked here, EventBridge's finer rules (such as which
//! `L`, `W` and `#` forms it takes) only by EventBridge.

use crate::error::Invalid;
use chrono::{DateTime, Datelike, Utc};

/// Why `expr` is not a schedule EventBridge accepts, or `Ok`.
pub fn check(expr: &str) -> Result<(), Invalid> {
    if let Some(body) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        return check_rate(body).map_err(Invalid);
    }
    if let Some(body) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
        return check_cron(body).map_err(Invalid);
    }
    Err(format!("{expr:?} is neither rate(…) nor cron(…)").into())
}

fn check_rate(body: &str) -> Result<(), String> {
    let Some((value, unit)) = body.split_once(' ').filter(|(v, u)| !v.is_empty() && !u.contains(' ')) else {
        return Err(format!("rate({body}) must be a number, one space and a unit, as in rate(15 minutes)"));
    };
    let value: u32 = match value.parse() {
        Ok(v) if v > 0 && value.bytes().all(|b| b.is_ascii_digit()) => v,
        _ => return Err(format!("rate({body}): {value:?} is not a whole number above 0")),
    };
    let singular = matches!(unit, "minute" | "hour" | "day");
    let plural = matches!(unit, "minutes" | "hours" | "days");
    match (singular, plural, value) {
        (true, _, 1) | (_, true, 2..) => Ok(()),
        (true, _, _) => Err(format!("rate({body}): write {unit}s for more than one (EventBridge refuses {unit})")),
        (_, true, _) => {
            Err(format!("rate(1 {unit}): write {} (EventBridge refuses the plural for 1)", &unit[..unit.len() - 1]))
        }
        _ => Err(format!("rate({body}): the unit must be minute(s), hour(s) or day(s)")),
    }
}

/// EventBridge's six fields: minutes hours day-of-month month day-of-week year, with `?` in one
/// of the two day fields.
fn check_cron(body: &str) -> Result<(), String> {
    let fields: Vec<&str> = body.split(' ').collect();
    if fields.len() != 6 {
        return Err(format!(
            "cron({body}) has {} fields; EventBridge needs 6: minutes hours day-of-month month day-of-week year, as in cron(0 6 * * ? *)",
            fields.len()
        ));
    }
    const NAMES: [&str; 6] = ["minutes", "hours", "day-of-month", "month", "day-of-week", "year"];
    for (field, name) in fields.iter().zip(NAMES) {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | ',' | '-' | '/' | '#');
        if !field.chars().all(allowed) {
            return Err(format!("cron({body}): the {name} field {field:?} has a character cron does not use"));
        }
        if field.contains('?') && !matches!(name, "day-of-month" | "day-of-week") {
            return Err(format!("cron({body}): `?` goes only in day-of-month or day-of-week, not {name}"));
        }
        let (low, high) = match name {
            "minutes" => (0, 59),
            "hours" => (0, 23),
            "day-of-month" => (1, 31),
            "month" => (1, 12),
            "day-of-week" => (1, 7),
            _ => (1970, 2199),
        };
        // Every number in the field (in lists, ranges, steps and `#`), outside step sizes.
        for part in field.split(',') {
            let (range, _step) = part.split_once('/').unwrap_or((part, ""));
            for n in range.split(['-', '#']).filter_map(|t| t.trim_end_matches(['L', 'W']).parse::<u32>().ok()) {
                let in_range = (low..=high).contains(&n) || (name == "day-of-week" && range.contains('#') && n <= 5);
                if !in_range {
                    return Err(format!("cron({body}): {n} is out of range for {name} ({low}-{high})"));
                }
            }
        }
    }
    match (fields[2] == "?", fields[4] == "?") {
        (true, false) | (false, true) => Ok(()),
        _ => Err(format!(
            "cron({body}): put `?` in exactly one of day-of-month and day-of-week, as in cron(0 6 * * ? *)"
        )),
    }
}

/// When a valid schedule next fires strictly after `after` (UTC, as EventBridge evaluates
/// them), or None when it cannot be worked out here (the `L`, `W` and `#` forms, or no time
/// within five years). A rate counts from `anchor`, its first run (EventBridge starts a rate
/// when the rule is created), so the answer is what a status page can honestly show.
pub fn next_after(expr: &str, anchor: DateTime<Utc>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    check(expr).ok()?;
    if let Some(body) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        let (value, unit) = body.split_once(' ')?;
        let value: i64 = value.parse().ok()?;
        let seconds = value.checked_mul(match unit.trim_end_matches('s') {
            "minute" => 60,
            "hour" => 3600,
            _ => 86_400,
        })?;
        if anchor > after {
            return Some(anchor);
        }
        // Checked: a rate of millions of days is valid and must not overflow the calendar.
        let periods = (after - anchor).num_seconds() / seconds + 1;
        return anchor.checked_add_signed(chrono::Duration::try_seconds(periods.checked_mul(seconds)?)?);
    }
    let body = expr.strip_prefix("cron(")?.strip_suffix(')')?;
    let f: Vec<&str> = body.split(' ').collect();
    let minutes = expand(f[0], 0, 59, &[])?;
    let hours = expand(f[1], 0, 23, &[])?;
    let days = if f[2] == "?" { None } else { Some(expand(f[2], 1, 31, &[])?) };
    const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
    let months = expand(f[3], 1, 12, &MONTHS)?;
    const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let weekdays = if f[4] == "?" { None } else { Some(expand(f[4], 1, 7, &WEEKDAYS)?) };
    let years = expand(f[5], 1970, 2199, &[])?;
    // Day by day, then the first matching hour and minute of a matching day: at most a few
    // thousand steps even for a yearly schedule.
    let mut day = after.date_naive();
    for _ in 0..(5 * 366) {
        let matches_day = years.contains(&(day.year() as u32))
            && months.contains(&day.month())
            && days.as_ref().is_none_or(|d| d.contains(&day.day()))
            && weekdays.as_ref().is_none_or(|w| w.contains(&(day.weekday().num_days_from_sunday() + 1)));
        if matches_day {
            for &h in &hours {
                for &m in &minutes {
                    let t = day.and_hms_opt(h, m, 0)?.and_utc();
                    if t > after {
                        return Some(t);
                    }
                }
            }
        }
        day = day.succ_opt()?;
    }
    None
}

/// The values a cron field allows, in order; None for the forms only EventBridge evaluates.
fn expand(field: &str, low: u32, high: u32, names: &[&str]) -> Option<Vec<u32>> {
    let value = |t: &str| -> Option<u32> {
        match names.iter().position(|n| n.eq_ignore_ascii_case(t)) {
            Some(i) => Some(low + i as u32),
            None => t.parse().ok().filter(|n| (low..=high).contains(n)),
        }
    };
    let mut out = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (low, high),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15` runs from 5 to the end of the range.
                None if part.contains('/') => (value(r)?, high),
                None => (value(r)?, value(r)?),
            },
        };
        out.extend((from..=to).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{check, next_after};
    use chrono::{TimeZone, Utc};

    #[test]
    fn rates_and_crons_eventbridge_accepts() {
        for ok in [
            "rate(15 minutes)",
            "rate(1 hour)",
            "rate(1 day)",
            "rate(7 days)",
            "cron(0 6 * * ? *)",
            "cron(0/15 * ? * MON-FRI *)",
            "cron(0 18 L * ? 2027)",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn each_mistake_is_named() {
        for (bad, says) in [
            ("every 15 minutes", "neither rate"),
            ("rate(15)", "a number, one space and a unit"),
            ("rate(0 minutes)", "above 0"),
            ("rate(1 minutes)", "write minute"),
            ("rate(5 minute)", "write minutes"),
            ("rate(5 weeks)", "minute(s), hour(s) or day(s)"),
            ("cron(0 6 * * *)", "has 5 fields"),
            ("cron(0 6 * * * *)", "exactly one of day-of-month"),
            ("cron(0 6 ? * ? *)", "exactly one of day-of-month"),
            ("cron(? 6 * * ? *)", "not minutes"),
            ("cron(0 6 * * ? *;)", "character"),
            ("rate(+5 minutes)", "not a whole number"),
            ("rate(5  minutes)", "one space"),
            (" rate(5 minutes)", "neither rate"),
            ("cron(0 25 * * ? *)", "25 is out of range for hours"),
            ("cron(60 6 * * ? *)", "60 is out of range for minutes"),
            ("cron(0 6 32 * ? *)", "out of range for day-of-month"),
            ("cron(0 6 ? 13 MON *)", "out of range for month"),
            ("cron(0 6 ? * 8 *)", "out of range for day-of-week"),
            ("cron(0  6 * * ? *)", "has 7 fields"),
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn next_runs_of_rates_and_crons() {
        let t = |d: u32, h: u32, m: u32| Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
        // A rate counts from its first run.
        assert_eq!(next_after("rate(15 minutes)", t(1, 0, 0), t(1, 0, 20)), Some(t(1, 0, 30)));
        assert_eq!(next_after("rate(15 minutes)", t(1, 0, 0), t(1, 0, 30)), Some(t(1, 0, 45)));
        assert_eq!(next_after("rate(1 day)", t(2, 6, 0), t(1, 0, 0)), Some(t(2, 6, 0)));
        // Crons in UTC, strictly after.
        assert_eq!(next_after("cron(0 6 * * ? *)", t(1, 0, 0), t(1, 5, 59)), Some(t(1, 6, 0)));
        assert_eq!(next_after("cron(0 6 * * ? *)", t(1, 0, 0), t(1, 6, 0)), Some(t(2, 6, 0)));
        assert_eq!(next_after("cron(0/15 * * * ? *)", t(1, 0, 0), t(1, 6, 7)), Some(t(1, 6, 15)));
        // 2026-11-27 is a Friday: the next weekday run is Monday the 30th.
        assert_eq!(next_after("cron(30 8 ? * MON-FRI *)", t(1, 0, 0), t(27, 9, 0)), Some(t(30, 8, 30)));
        assert_eq!(next_after("cron(0 0 1 JAN ? 2025)", t(1, 0, 0), t(1, 0, 0)), None, "in the past");
        assert_eq!(next_after("cron(0 18 L * ? *)", t(1, 0, 0), t(1, 0, 0)), None, "L is EventBridge's");
        assert_eq!(next_after("nonsense", t(1, 0, 0), t(1, 0, 0)), None);
        // Half a second before a run, that run is next; a rate too long for the calendar is None.
        let almost = t(1, 5, 59) + chrono::Duration::milliseconds(30_500);
        assert_eq!(next_after("cron(0 6 * * ? *)", t(1, 0, 0), almost), Some(t(1, 6, 0)));
        assert_eq!(next_after("rate(100000000 days)", t(1, 0, 0), t(2, 0, 0)), None);
    }
}
