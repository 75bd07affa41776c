//! When an export runs in AWS: an EventBridge schedule expression, `rate(15 minutes)` or
//! `cron(0 6 * * ? *)`, checked when the config is read so a typo is named with its key rather
//! than by CloudFormation half-way through a deployment.

/// Why `expr` is not a schedule EventBridge accepts, or `Ok`.
pub fn check(expr: &str) -> Result<(), String> {
    let expr = expr.trim();
    if let Some(body) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        return check_rate(body);
    }
    if let Some(body) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
        return check_cron(body);
    }
    Err(format!("{expr:?} is neither rate(…) nor cron(…)"))
}

fn check_rate(body: &str) -> Result<(), String> {
    let mut words = body.split_whitespace();
    let (Some(value), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!("rate({body}) must be a number and a unit, as in rate(15 minutes)"));
    };
    let value: u32 = match value.parse() {
        Ok(v) if v > 0 => v,
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
    let fields: Vec<&str> = body.split_whitespace().collect();
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
            " rate(5 minutes) ",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn each_mistake_is_named() {
        for (bad, says) in [
            ("every 15 minutes", "neither rate"),
            ("rate(15)", "a number and a unit"),
            ("rate(0 minutes)", "above 0"),
            ("rate(1 minutes)", "write minute"),
            ("rate(5 minute)", "write minutes"),
            ("rate(5 weeks)", "minute(s), hour(s) or day(s)"),
            ("cron(0 6 * * *)", "has 5 fields"),
            ("cron(0 6 * * * *)", "exactly one of day-of-month"),
            ("cron(0 6 ? * ? *)", "exactly one of day-of-month"),
            ("cron(? 6 * * ? *)", "not minutes"),
            ("cron(0 6 * * ? *;)", "character"),
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
