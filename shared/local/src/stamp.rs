//! How an SQLite column writes its time stamps, and the upper bound of a run in that layout.
//!
//! SQLite has no time type: stamps are text, integers or reals, compared as such. A run's `high`
//! must therefore be written in the column's own layout, and at the column's own resolution:
//! it is the largest value the column can hold that lies before the unit still in progress (the
//! second, millisecond, day... that "now minus lag" falls in). A row stamped in that unit may
//! still be committed after the read, so it must wait for the next run; a bound finer than the
//! column (milliseconds against whole seconds) would put such a row below the committed
//! watermark, where no later window reaches it.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Timelike, Utc};
use rusqlite::types::ValueRef;
use sluice_core::value::Watermark;

/// SQLite's Julian day number of the Unix epoch, in milliseconds (its `iJD` of 1970-01-01).
const JULIAN_EPOCH_MS: i64 = 210_866_760_000_000;

/// A stamp layout Sluice recognises, with its resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Text `YYYY-MM-DD`: a day is one unit.
    Date,
    /// Text `YYYY-MM-DD HH:MM[:SS[.f…]]` with ` ` or `T` between date and time, and an optional
    /// constant suffix (`Z`, `+02:00`, `-0500`). `digits` is the finest fraction seen (the
    /// bound is written with it). The unit in progress is always the whole second (or minute):
    /// a writer that truncates to whole seconds can share the column unseen (its `…:15` sorts
    /// below `…:15.123`, so neither end shows it), and the second in progress must wait for it.
    /// With a fraction the bound is then `…:14.999`.
    DateTime { sep: char, seconds: bool, digits: u8, suffix: Suffix },
    /// Integer seconds, milliseconds or microseconds since the epoch.
    EpochInt(EpochUnit),
    /// Epoch digits stored as text (`"1700000000"`, `"1700000000.123"`): they compare as text,
    /// so the bound keeps the integer part's width and the fraction's digits; like `DateTime`,
    /// it closes at the whole unit.
    EpochText { unit: EpochUnit, digits: u8 },
    /// Real seconds since the epoch (`unixepoch('subsec')`): SQLite's clock ticks in milliseconds.
    EpochReal,
    /// Real Julian days (`julianday()`), likewise in milliseconds.
    JulianDay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
    Micros,
}

/// What follows the time in a text stamp. It must be the same on every row for text order to
/// be time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suffix {
    None,
    Zulu,
    /// A fixed offset, kept as written (`+02:00`, `+0200`, `+02`).
    Offset {
        text: String,
        offset: FixedOffset,
    },
}

impl EpochUnit {
    fn of_magnitude(abs: u64) -> EpochUnit {
        if abs < 100_000_000_000 {
            EpochUnit::Seconds
        } else if abs < 100_000_000_000_000 {
            EpochUnit::Millis
        } else {
            EpochUnit::Micros
        }
    }

    fn of_digits(len: usize) -> EpochUnit {
        match len {
            ..=11 => EpochUnit::Seconds,
            12..=14 => EpochUnit::Millis,
            _ => EpochUnit::Micros,
        }
    }

    fn name(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "seconds",
            EpochUnit::Millis => "milliseconds",
            EpochUnit::Micros => "microseconds",
        }
    }

    /// `now` in this unit, floored.
    fn count(self, now: DateTime<Utc>) -> i64 {
        match self {
            EpochUnit::Seconds => now.timestamp(),
            EpochUnit::Millis => now.timestamp_millis(),
            EpochUnit::Micros => now.timestamp_micros(),
        }
    }
}

impl Layout {
    /// Recognises a stamp's layout from one value; `Err` says what the value looks like.
    pub fn of(value: ValueRef<'_>) -> Result<Layout, String> {
        match value {
            ValueRef::Integer(i) => Ok(Layout::EpochInt(EpochUnit::of_magnitude(i.unsigned_abs()))),
            // Below ten million the values are Julian days (SQLite's julianday()).
            ValueRef::Real(f) if f.abs() < 1e7 => Ok(Layout::JulianDay),
            ValueRef::Real(_) => Ok(Layout::EpochReal),
            ValueRef::Text(t) => {
                let t = std::str::from_utf8(t).map_err(|_| "text that is not UTF-8".to_string())?;
                text_layout(t).ok_or_else(|| format!("the text {t:?}"))
            }
            ValueRef::Blob(_) => Err("a BLOB".into()),
            ValueRef::Null => Err("NULL".into()),
        }
    }

    /// A quick test that `v` is of this layout's family, for each stamp a read returns: a few
    /// byte or range tests. `false` does not mean another family: `Layout::of` and
    /// `same_family` decide then.
    pub fn looks_like(&self, v: ValueRef<'_>) -> bool {
        match (self, v) {
            // The digits and separators where the layout has them; not the calendar (a
            // `2026-02-30` is let through: it sorts where its text says, in a window like any).
            (Layout::Date, ValueRef::Text(t)) => t.len() == 10 && date_shape(t),
            (Layout::DateTime { sep, seconds, suffix, .. }, ValueRef::Text(t)) => {
                let time = |at: usize| t.get(at..at + 2).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
                if t.len() < 16 || !date_shape(t) || t[10] != *sep as u8 || !time(11) || t[13] != b':' || !time(14) {
                    return false;
                }
                if (t.get(16) == Some(&b':')) != *seconds || (*seconds && !time(17)) {
                    return false;
                }
                // Past the time (and its fraction of 1 to 9 digits) must come exactly the suffix.
                let mut at = if *seconds { 19 } else { 16 };
                if *seconds && t.get(19) == Some(&b'.') {
                    let digits = t[20..].iter().take_while(|b| b.is_ascii_digit()).count();
                    if !(1..=9).contains(&digits) {
                        return false;
                    }
                    at = 20 + digits;
                }
                let rest = t.get(at..);
                match suffix {
                    Suffix::None => rest == Some(b""),
                    Suffix::Zulu => rest == Some(b"Z"),
                    Suffix::Offset { text, .. } => rest == Some(text.as_bytes()),
                }
            }
            (Layout::EpochText { unit, .. }, ValueRef::Text(t)) => {
                let whole = t.iter().position(|b| *b == b'.').unwrap_or(t.len());
                let fraction = t.get(whole + 1..).unwrap_or(b"");
                whole > 0
                    && t[..whole].iter().all(u8::is_ascii_digit)
                    && EpochUnit::of_digits(whole) == *unit
                    && (whole == t.len()
                        || ((1..=9).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit)))
            }
            (Layout::EpochInt(unit), ValueRef::Integer(i)) => EpochUnit::of_magnitude(i.unsigned_abs()) == *unit,
            (Layout::EpochReal, ValueRef::Integer(i)) => {
                EpochUnit::of_magnitude(i.unsigned_abs()) == EpochUnit::Seconds
            }
            (Layout::EpochInt(EpochUnit::Seconds) | Layout::EpochReal, ValueRef::Real(f)) => f.abs() >= 1e7,
            (Layout::JulianDay, ValueRef::Real(f)) => f.abs() < 1e7,
            _ => false,
        }
    }

    /// The smallest value of this layout's family as an SQL literal (a constant of the layout,
    /// never a value read or given), in SQLite's order: a stamp below it is of another class or
    /// unit (an integer among text stamps, seconds among milliseconds, a Julian day among epoch
    /// seconds), and sorts below every window. A literal, not a bound parameter: compared with
    /// a bound empty string, each row's comparison took SQLite's slow path (0.4 s more a pass
    /// at 10M rows).
    pub fn floor_sql(&self) -> &'static str {
        match self {
            Layout::Date | Layout::DateTime { .. } | Layout::EpochText { .. } => "''",
            Layout::EpochInt(EpochUnit::Seconds) | Layout::EpochReal => "10000000",
            Layout::EpochInt(EpochUnit::Millis) => "100000000000",
            Layout::EpochInt(EpochUnit::Micros) => "100000000000000",
            Layout::JulianDay => "-10000000",
        }
    }

    /// What must be the same on every row for SQLite's comparison to order the stamps in time.
    /// The fraction's digits may differ (text order still agrees: `…:05` < `…:05.5` <
    /// `…:05.51`); the storage class, the epoch unit, the separator and the suffix may not.
    pub fn same_family(&self, other: &Layout) -> bool {
        match (self, other) {
            (
                Layout::DateTime { sep: a, seconds: sa, suffix: xa, .. },
                Layout::DateTime { sep: b, seconds: sb, suffix: xb, .. },
            ) => a == b && sa == sb && xa == xb,
            (Layout::EpochText { unit: a, .. }, Layout::EpochText { unit: b, .. }) => a == b,
            // Numbers compare as numbers: a whole real is stored as an integer in a column with
            // NUMERIC affinity (DATETIME, TIMESTAMP), so epoch seconds come both ways.
            (Layout::EpochInt(EpochUnit::Seconds), Layout::EpochReal)
            | (Layout::EpochReal, Layout::EpochInt(EpochUnit::Seconds)) => true,
            (a, b) => a == b,
        }
    }

    /// This layout widened by another of its family: the finest fraction to write the bound
    /// with, the coarsest to close the unit in progress at.
    pub fn join(self, other: &Layout) -> Layout {
        match (self, other) {
            (Layout::DateTime { sep, seconds, digits, suffix }, Layout::DateTime { digits: d, .. }) => {
                Layout::DateTime { sep, seconds, digits: digits.max(*d), suffix }
            }
            (Layout::EpochText { unit, digits }, Layout::EpochText { digits: d, .. }) => {
                Layout::EpochText { unit, digits: digits.max(*d) }
            }
            // Seconds as integers and as reals: bound as reals (whole milliseconds).
            (Layout::EpochInt(EpochUnit::Seconds), Layout::EpochReal) => Layout::EpochReal,
            (l, _) => l,
        }
    }

    /// The time a stamp of a guessed unit stands for, to check the guess: `None` for text
    /// dates and date-times, whose layout says what they are.
    pub fn instant(&self, value: ValueRef<'_>) -> Option<DateTime<Utc>> {
        let from_units = |v: i64, unit: EpochUnit| match unit {
            EpochUnit::Seconds => DateTime::from_timestamp(v, 0),
            EpochUnit::Millis => DateTime::from_timestamp_millis(v),
            EpochUnit::Micros => DateTime::from_timestamp_micros(v),
        };
        let number = match value {
            ValueRef::Integer(i) => i as f64,
            ValueRef::Real(f) => f,
            ValueRef::Text(t) => std::str::from_utf8(t).ok()?.parse::<f64>().ok()?,
            _ => return None,
        };
        if !number.is_finite() || number.abs() > 9e18 {
            return None;
        }
        match self {
            Layout::EpochInt(unit) | Layout::EpochText { unit, .. } => from_units(number as i64, *unit),
            Layout::EpochReal => DateTime::from_timestamp_millis((number * 1000.0) as i64),
            Layout::JulianDay => DateTime::from_timestamp_millis(((number - 2_440_587.5) * 86_400_000.0) as i64),
            Layout::Date | Layout::DateTime { .. } => None,
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Layout::Date => "text dates (YYYY-MM-DD)".into(),
            Layout::DateTime { sep, seconds, digits, suffix, .. } => {
                let time = match (seconds, digits) {
                    (false, _) => "HH:MM".to_string(),
                    (true, 0) => "HH:MM:SS".to_string(),
                    (true, d) => format!("HH:MM:SS.{}", "f".repeat(usize::from(*d))),
                };
                let sep = if *sep == 'T' { "T" } else { " " };
                let suffix = match suffix {
                    Suffix::None => String::new(),
                    Suffix::Zulu => "Z".into(),
                    Suffix::Offset { text, .. } => text.clone(),
                };
                format!("text stamps (YYYY-MM-DD{sep}{time}{suffix})")
            }
            Layout::EpochInt(u) => format!("integer {} since the epoch", u.name()),
            Layout::EpochText { unit, .. } => format!("{} since the epoch as text", unit.name()),
            Layout::EpochReal => "real seconds since the epoch".into(),
            Layout::JulianDay => "real Julian days".into(),
        }
    }

    /// The largest value in this layout that lies before the unit `now` is in: rows stamped in
    /// the unit still in progress wait for a later run.
    pub fn bound(&self, now: DateTime<Utc>) -> Watermark {
        match self {
            Layout::Date => {
                let day = now.date_naive().pred_opt().unwrap_or(NaiveDate::MIN);
                Watermark::Text(day.format("%Y-%m-%d").to_string())
            }
            Layout::DateTime { sep, seconds, digits, suffix } => {
                let digits = if *seconds { u32::from(*digits) } else { 0 };
                // The unit in progress, in nanoseconds (a minute without seconds, else a second),
                // and the step below it the bound is written at.
                let (unit, step): (i64, i64) =
                    if *seconds { (1_000_000_000, 10i64.pow(9 - digits)) } else { (60_000_000_000, 60_000_000_000) };
                let high = floor_to(now, unit) - Duration::nanoseconds(step);
                let (date, time) = match suffix {
                    Suffix::Offset { offset, .. } => {
                        let local = high.with_timezone(offset).naive_local();
                        (local.date(), local.time())
                    }
                    _ => (high.date_naive(), high.time()),
                };
                let mut s = format!("{}{sep}", date.format("%Y-%m-%d"));
                if *seconds {
                    s.push_str(&time.format("%H:%M:%S").to_string());
                    if digits > 0 {
                        let frac = format!("{:09}", time.nanosecond() % 1_000_000_000);
                        s.push('.');
                        s.push_str(&frac[..digits as usize]);
                    }
                } else {
                    s.push_str(&time.format("%H:%M").to_string());
                }
                match suffix {
                    Suffix::None => {}
                    Suffix::Zulu => s.push('Z'),
                    Suffix::Offset { text, .. } => s.push_str(text),
                }
                Watermark::Text(s)
            }
            Layout::EpochInt(unit) => Watermark::Int(unit.count(now) - 1),
            Layout::EpochText { unit, digits } => {
                let digits = u32::from(*digits);
                // The count of whole epoch units that are over, written in units of 10^-digits.
                let scaled = i128::from(unit.count(now)) * 10i128.pow(digits) - 1;
                if digits == 0 {
                    return Watermark::Text(scaled.to_string());
                }
                let p = 10i128.pow(digits);
                let (whole, frac) = (scaled.div_euclid(p), scaled.rem_euclid(p));
                Watermark::Text(format!("{whole}.{frac:0width$}", width = digits as usize))
            }
            Layout::EpochReal => Watermark::Float((now.timestamp_millis() - 1) as f64 / 1000.0),
            // As SQLite computes it: whole milliseconds since the Julian epoch, divided.
            Layout::JulianDay => Watermark::Float((now.timestamp_millis() + JULIAN_EPOCH_MS - 1) as f64 / 86_400_000.0),
        }
    }
}

/// `YYYY-MM-DD` at the start of `t`, by its digits and dashes.
fn date_shape(t: &[u8]) -> bool {
    t.len() >= 10
        && t[..10].iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() })
}

/// `now` floored to a multiple of `unit` nanoseconds since the epoch.
fn floor_to(now: DateTime<Utc>, unit: i64) -> DateTime<Utc> {
    let nanos = i128::from(now.timestamp()) * 1_000_000_000 + i128::from(now.timestamp_subsec_nanos());
    let floored = nanos.div_euclid(i128::from(unit)) * i128::from(unit);
    let secs = floored.div_euclid(1_000_000_000) as i64;
    let sub = floored.rem_euclid(1_000_000_000) as u32;
    DateTime::from_timestamp(secs, sub).unwrap_or(now)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn text_layout(t: &str) -> Option<Layout> {
    if let Some((whole, frac)) = t.split_once('.').filter(|(w, f)| all_digits(w) && all_digits(f)) {
        if frac.len() <= 9 {
            let digits = frac.len() as u8;
            return Some(Layout::EpochText { unit: EpochUnit::of_digits(whole.len()), digits });
        }
        return None;
    }
    if all_digits(t) {
        return Some(Layout::EpochText { unit: EpochUnit::of_digits(t.len()), digits: 0 });
    }
    let b = t.as_bytes();
    let date_ok = t.get(..10).is_some_and(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok());
    if !date_ok {
        return None;
    }
    if b.len() == 10 {
        return Some(Layout::Date);
    }
    let sep = match b[10] {
        b' ' => ' ',
        b'T' => 'T',
        _ => return None,
    };
    let rest = &t[11..];
    let two = |s: &str, at: usize| s.get(at..at + 2).is_some_and(all_digits);
    if !(two(rest, 0) && rest.get(2..3) == Some(":") && two(rest, 3)) {
        return None;
    }
    let mut rest = &rest[5..];
    let mut seconds = false;
    let mut digits = 0u8;
    if rest.starts_with(':') {
        if !two(rest, 1) {
            return None;
        }
        seconds = true;
        rest = &rest[3..];
        if let Some(after) = rest.strip_prefix('.') {
            let n = after.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 || n > 9 {
                return None;
            }
            digits = n as u8;
            rest = &after[n..];
        }
    }
    let suffix = match rest {
        "" => Suffix::None,
        "Z" => Suffix::Zulu,
        s => Suffix::Offset { text: s.to_string(), offset: parse_offset(s)? },
    };
    Some(Layout::DateTime { sep, seconds, digits, suffix })
}

/// `+HH:MM`, `+HHMM` or `+HH` (or `-`), as ISO 8601 writes an offset.
fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, body) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = match body.len() {
        2 => (body, "00"),
        4 => (body.get(..2)?, body.get(2..)?),
        5 if body.get(2..3) == Some(":") => (body.get(..2)?, body.get(3..)?),
        _ => return None,
    };
    if !all_digits(h) || !all_digits(m) {
        return None;
    }
    let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * secs)
}

/// Stamps before this are taken for a wrong guess of their unit (an epoch read in 1970).
pub const EARLIEST: DateTime<Utc> = DateTime::from_timestamp(946_684_800, 0).expect("2000-01-01");

/// A stamp as a message shows it.
pub fn show(v: &rusqlite::types::Value) -> String {
    use rusqlite::types::Value;
    match v {
        Value::Text(s) => format!("{s:?}"),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Blob(_) => "a BLOB (or text that is not UTF-8)".into(),
        Value::Null => "NULL".into(),
    }
}

/// The layouts a column may use, for messages.
pub const RECOGNISED: &str = "text YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS[.fraction]] (space or T, optionally Z or a \
     fixed offset), epoch seconds, milliseconds or microseconds as integers, reals or text, and Julian days";

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 30, 15).unwrap() + Duration::microseconds(250_123)
    }

    fn text(s: &str) -> Layout {
        Layout::of(ValueRef::Text(s.as_bytes())).unwrap()
    }

    /// The quick test never lets in a stamp of another family (nor one `Layout::of` refuses,
    /// but for a day the calendar lacks), and knows the usual members of each.
    #[test]
    fn looks_like_admits_only_the_family() {
        let texts = [
            "2026-01-01",
            "2026-01-01 10:00",
            "2026-01-01 10:00:05",
            "2026-01-01 10:00:05.5",
            "2026-01-01T10:00:05Z",
            "2026-01-01T10:00:05.123Z",
            "2026-01-01T10:00:05+02:00",
            "2026-01-01 10:00:05-0500",
            "1767261600",
            "1767261600123",
            "1767261600.25",
            "01/02/2026 10:00",
            "N/A",
            "",
            "2026-01-01 10:00:05 ",
            "0000-00-00 00:00:00",
            "2026-01-01 10:00:05.",
            "2026-01-01 10:00:05.1234567890",
            "1767261600.x",
            "2026-01-01 1x:00:05",
            "2026-0x-01",
            "2026-01-01T10:00:05+02:00Z",
        ];
        let mut values: Vec<rusqlite::types::Value> =
            texts.iter().map(|t| rusqlite::types::Value::Text(t.to_string())).collect();
        for i in [5, 20_260_101, 1_767_261_600, 1_767_261_600_123, 1_767_261_600_123_456, -1_767_261_600] {
            values.push(rusqlite::types::Value::Integer(i));
        }
        for f in [2_461_041.9, 1_767_261_600.25, 1_767_261_600_123.0, 0.5] {
            values.push(rusqlite::types::Value::Real(f));
        }
        values.push(rusqlite::types::Value::Blob(b"2026-01-01".to_vec()));
        let layouts: Vec<Layout> = values.iter().filter_map(|v| Layout::of(ValueRef::from(v)).ok()).collect();
        for layout in &layouts {
            let mut admitted = 0;
            for v in &values {
                let v = ValueRef::from(v);
                if layout.looks_like(v) {
                    admitted += 1;
                    // A day the calendar lacks has the shape: it sorts as its text says.
                    let no_such_day = matches!(v, ValueRef::Text(t) if date_shape(t)
                        && NaiveDate::parse_from_str(std::str::from_utf8(&t[..10]).unwrap(), "%Y-%m-%d").is_err());
                    assert!(
                        no_such_day || Layout::of(v).is_ok_and(|l| l.same_family(layout)),
                        "{layout:?} let in {v:?}"
                    );
                }
            }
            assert!(admitted > 0, "{layout:?} knows none of its own");
        }
    }

    fn bound_of(sample: &str) -> Watermark {
        text(sample).bound(now())
    }

    fn t(s: &str) -> Watermark {
        Watermark::Text(s.into())
    }

    #[test]
    fn text_bounds_close_at_the_last_unit_that_is_over() {
        assert_eq!(bound_of("2024-01-01 00:00:00"), t("2026-11-23 10:30:14"));
        assert_eq!(bound_of("2024-01-01 00:00"), t("2026-11-23 10:29"));
        // With a fraction: the last whole second that is over, at the fraction's resolution.
        assert_eq!(bound_of("2024-01-01 00:00:00.1"), t("2026-11-23 10:30:14.9"));
        assert_eq!(bound_of("2024-01-01T00:00:00.123Z"), t("2026-11-23T10:30:14.999Z"));
        assert_eq!(bound_of("2024-01-01T00:00:00.123456"), t("2026-11-23T10:30:14.999999"));
        assert_eq!(bound_of("2024-01-01 00:00:00.123456789"), t("2026-11-23 10:30:14.999999999"));
        assert_eq!(bound_of("2024-01-01"), t("2026-11-22"));
        assert_eq!(bound_of("2024-01-01T00:00:00+02:00"), t("2026-11-23T12:30:14+02:00"));
        assert_eq!(bound_of("2024-01-01T00:00:00-0530"), t("2026-11-23T05:00:14-0530"));
    }

    #[test]
    fn epoch_bounds_close_at_the_last_unit_that_is_over() {
        let secs = now().timestamp();
        let int = |i: i64| Layout::of(ValueRef::Integer(i)).unwrap().bound(now());
        assert_eq!(int(1_700_000_000), Watermark::Int(secs - 1));
        assert_eq!(int(1_700_000_000_000), Watermark::Int(secs * 1000 + 249));
        assert_eq!(int(1_700_000_000_000_000), Watermark::Int(secs * 1_000_000 + 250_122));
        assert_eq!(bound_of("1700000000"), t(&(secs - 1).to_string()));
        assert_eq!(bound_of("1700000000123"), t(&(secs * 1000 + 249).to_string()));
        assert_eq!(bound_of("1700000000.12"), t(&format!("{}.99", secs - 1)));
        assert_eq!(bound_of("1700000000.000"), t(&format!("{}.999", secs - 1)));
        let real = Layout::of(ValueRef::Real(1.7e9)).unwrap().bound(now());
        assert_eq!(real, Watermark::Float((secs * 1000 + 249) as f64 / 1000.0));
        let jd = Layout::of(ValueRef::Real(2_460_000.5)).unwrap().bound(now());
        assert_eq!(jd, Watermark::Float((secs * 1000 + 250 + JULIAN_EPOCH_MS - 1) as f64 / 86_400_000.0));
    }

    #[test]
    fn unknown_layouts_are_named() {
        for v in ["yesterday", "2024/01/01 10:00:00", "2024-01-01 10", "2024-01-01 10:00:00 PST", "12.5.3", ""] {
            assert!(Layout::of(ValueRef::Text(v.as_bytes())).is_err(), "{v}");
        }
        assert!(Layout::of(ValueRef::Blob(b"x")).is_err());
    }

    #[test]
    fn a_column_with_several_precisions_closes_at_the_coarsest_unit_written_at_the_finest() {
        let joined = text("2024-01-01 00:00:00").join(&text("2024-01-01 00:00:00.123"));
        assert_eq!(joined.bound(now()), t("2026-11-23 10:30:14.999"));
        let joined = text("1700000000").join(&text("1700000000.5"));
        assert_eq!(joined.bound(now()), t(&format!("{}.9", now().timestamp() - 1)));
    }

    #[test]
    fn families_ignore_fraction_digits_only() {
        assert!(text("2024-01-01 00:00:00").same_family(&text("2024-01-01 00:00:00.5")));
        assert!(!text("2024-01-01 00:00:00").same_family(&text("2024-01-01T00:00:00")));
        assert!(!text("2024-01-01 00:00:00").same_family(&text("2024-01-01 00:00:00Z")));
        assert!(!text("2024-01-01 00:00:00").same_family(&text("2024-01-01")));
        assert!(text("1700000000").same_family(&text("1700000000.5")));
        let int = |i: i64| Layout::of(ValueRef::Integer(i)).unwrap();
        assert!(!int(1_700_000_000).same_family(&int(1_700_000_000_000)));
        assert!(!int(1_700_000_000).same_family(&text("1700000000")));
        // A whole real stored as an integer (NUMERIC affinity) is the same epoch seconds.
        let real = Layout::of(ValueRef::Real(1.7e9 + 0.5)).unwrap();
        assert!(int(1_700_000_000).same_family(&real) && real.same_family(&int(1_700_000_000)));
        assert_eq!(int(1_700_000_000).join(&real), Layout::EpochReal);
    }

    #[test]
    fn a_guessed_unit_is_checked_against_the_time_it_gives() {
        let real = Layout::of(ValueRef::Real(1.7e12)).unwrap();
        // Milliseconds in a REAL column, read as seconds: far in the future.
        assert!(real.instant(ValueRef::Real(1.7e12)).unwrap() > now() + Duration::days(365));
        // YYYYMMDD read as epoch seconds: 1970.
        let int = Layout::of(ValueRef::Integer(20_260_101)).unwrap();
        assert!(int.instant(ValueRef::Integer(20_260_101)).unwrap() < EARLIEST);
        assert_eq!(text("2024-01-01 00:00:00").instant(ValueRef::Text(b"2024-01-01 00:00:00")), None);
    }
}
