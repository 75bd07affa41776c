//! When an export runs in AWS: an EventBridge schedule expression, `rate(15 minutes)` or
//! `cron(0 6 * * ? *)`. The config warns about one that is not valid, and `sluice schedules`
//! refuses it, naming the export, so most typos surface before CloudFormation sees them: the
//! syntax and the ranges of numbers are checked here, EventBridge's finer rules (such as which
//! `L`, `W` and `#` forms it takes) only by EventBridge.

/// Why `expr` is not a schedule EventBridge accepts, or `Ok`.
pub fn check(expr: &str) -> Result<(), String> {
    if let Some(body) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        return check_rate(body);
    }
    if let Some(body) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
        return check_cron(body);
    }
    Err(format!("{expr:?} is neither rate(…) nor cron(…)"))
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

#[cfg(test)]
mod tests {
    use super::check;

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
}
