//! Snowflake's JSON result cells rendered as Snowflake itself unloads them to CSV: numbers
//! exactly as sent (NUMBER keeps its scale), booleans as `true`/`false`, dates and times and
//! timestamps in ISO 8601 with the column's fractional digits, semi-structured values as compact
//! JSON, binary as hex.
//!
//! Snowflake's JSON rowset carries every value as a string: timestamps as
//! `seconds.nanoseconds` since the epoch (TIMESTAMP_TZ followed by its offset in minutes + 1440),
//! dates as days since the epoch, times as seconds since midnight, booleans as `1`/`0`.
//! Rendering is hand-written (no chrono formatting on the hot path): it runs once per cell.

use sluice_core::value::{Column, RowBatch};
use snowflake_connector_rs::{
    error::{PlanBuildResult, RowDecodeResult},
    ColumnType, FromRow, ResultTable, RowPlanContext, RowRef,
};

/// How one column's cells are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Number,
    Bool,
    Date,
    Time {
        scale: u8,
    },
    TimestampNtz {
        scale: u8,
    },
    /// Rendered in UTC with `Z`.
    TimestampLtz {
        scale: u8,
    },
    /// Rendered in the value's own offset.
    TimestampTz {
        scale: u8,
    },
    /// VARIANT, OBJECT, ARRAY: JSON text, whitespace outside strings removed.
    Json,
    /// Hex, as sent.
    Binary,
}

impl Kind {
    pub fn of(ty: &ColumnType) -> Kind {
        let scale = ty.scale().unwrap_or(9).min(9);
        match ty {
            ColumnType::Fixed { .. } | ColumnType::Real => Kind::Number,
            ColumnType::Boolean => Kind::Bool,
            ColumnType::Date => Kind::Date,
            ColumnType::Time { .. } => Kind::Time { scale },
            ColumnType::TimestampNtz { .. } => Kind::TimestampNtz { scale },
            ColumnType::TimestampLtz { .. } => Kind::TimestampLtz { scale },
            ColumnType::TimestampTz { .. } => Kind::TimestampTz { scale },
            ColumnType::Variant | ColumnType::Object | ColumnType::Array => Kind::Json,
            ColumnType::Binary { .. } => Kind::Binary,
            _ => Kind::Text,
        }
    }
}

/// The type as Snowflake spells it in DDL, for the manifest: `NUMBER(38,2)`, `TIMESTAMP_NTZ(9)`.
pub fn type_name(ty: &ColumnType) -> String {
    let with_scale = |name: &str| match ty.scale() {
        Some(s) => format!("{name}({s})"),
        None => name.to_string(),
    };
    match ty {
        ColumnType::Fixed { precision, scale, .. } => {
            format!("NUMBER({},{})", precision.unwrap_or(38), scale.unwrap_or(0))
        }
        ColumnType::Real => "FLOAT".into(),
        ColumnType::Text { length: Some(n), .. } => format!("VARCHAR({n})"),
        ColumnType::Text { .. } => "VARCHAR".into(),
        ColumnType::Boolean => "BOOLEAN".into(),
        ColumnType::Date => "DATE".into(),
        ColumnType::Time { .. } => with_scale("TIME"),
        ColumnType::TimestampNtz { .. } => with_scale("TIMESTAMP_NTZ"),
        ColumnType::TimestampLtz { .. } => with_scale("TIMESTAMP_LTZ"),
        ColumnType::TimestampTz { .. } => with_scale("TIMESTAMP_TZ"),
        ColumnType::Binary { .. } => "BINARY".into(),
        other => other.as_str().to_ascii_uppercase(),
    }
}

/// A result's column, named and typed for the manifest.
pub fn column(c: &snowflake_connector_rs::Column) -> Column {
    Column { name: c.name().to_string(), source_type: type_name(c.ty()) }
}

/// A cell Snowflake sent that is not what its column type promises.
#[derive(Debug, thiserror::Error)]
#[error("column {column:?} ({kind:?}): unexpected value {value:?} from Snowflake")]
pub struct BadCell {
    pub column: String,
    pub kind: Kind,
    pub value: String,
}

// The batch rows are rendered into. The connector hands a row only to
// `FromRow::from_row_with_plan`, which must return an owned value; rendering into a per-row
// buffer and copying it into the batch cost as much as the JSON parse. So `render_table` lends
// the batch to this thread for the length of one synchronous iteration, and each row's cells
// are rendered straight into it. Nothing else touches it; it is empty outside `render_table`.
thread_local! {
    static SINK: std::cell::RefCell<Option<RowBatch>> = const { std::cell::RefCell::new(None) };
}

/// A row rendered into the lent batch (the value itself carries nothing).
struct Rendered;

struct RowPlan {
    kinds: Vec<Kind>,
}

impl FromRow for Rendered {
    type Plan = RowPlan;

    fn build_plan(ctx: RowPlanContext<'_>) -> PlanBuildResult<Self::Plan> {
        Ok(RowPlan { kinds: ctx.schema().columns().iter().map(|c| Kind::of(c.ty())).collect() })
    }

    fn from_row_with_plan(row: RowRef<'_>, plan: &Self::Plan) -> RowDecodeResult<Self> {
        SINK.with_borrow_mut(|sink| {
            let batch = sink.as_mut().expect("render_table lends a batch while rows are decoded");
            for (i, kind) in plan.kinds.iter().enumerate() {
                let Some(raw) = row.cell_at(i)?.raw() else {
                    batch.push_null();
                    continue;
                };
                if render_cell(*kind, raw.as_bytes(), batch).is_err() {
                    let column = row.schema().column_at(i).map(|c| c.name().to_string()).unwrap_or_default();
                    let err = BadCell { column, kind: *kind, value: raw.chars().take(64).collect() };
                    return Err(snowflake_connector_rs::error::RowConversionError::builder(err.to_string())
                        .build()
                        .into());
                }
            }
            Ok(Rendered)
        })
    }
}

/// Appends one non-NULL cell to the batch.
fn render_cell(kind: Kind, raw: &[u8], batch: &mut RowBatch) -> Result<(), Malformed> {
    match kind {
        Kind::Bool => match raw {
            b"1" | b"true" | b"TRUE" => batch.push_bool(true),
            b"0" | b"false" | b"FALSE" => batch.push_bool(false),
            _ => return Err(Malformed),
        },
        Kind::Number => batch.push_number(raw),
        Kind::Text | Kind::Binary => batch.push_text(raw),
        _ => {
            let mut result = Ok(());
            batch.push_text_with(|out| result = render_text(kind, raw, out));
            return result;
        }
    }
    Ok(())
}

/// A cell whose text is not what its column type promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Renders a text-like cell.
pub fn render_text(kind: Kind, raw: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    match kind {
        Kind::Text | Kind::Binary | Kind::Number | Kind::Bool => out.extend_from_slice(raw),
        Kind::Json => minify_json(raw, out),
        Kind::Date => {
            let days = parse_i64(raw).ok_or(Malformed)?;
            push_date(out, days);
        }
        Kind::Time { scale } => {
            let (secs, nanos) = parse_epoch(raw).ok_or(Malformed)?;
            push_time(out, secs.rem_euclid(86_400), nanos, scale);
        }
        Kind::TimestampNtz { scale } => {
            let (secs, nanos) = parse_epoch(raw).ok_or(Malformed)?;
            push_datetime(out, secs, nanos, scale);
        }
        Kind::TimestampLtz { scale } => {
            let (secs, nanos) = parse_epoch(raw).ok_or(Malformed)?;
            push_datetime(out, secs, nanos, scale);
            out.push(b'Z');
        }
        Kind::TimestampTz { scale } => {
            // "seconds.nanos offset": the seconds are UTC, the offset is minutes + 1440.
            let space = raw.iter().position(|&b| b == b' ');
            let (value, offset) = match space {
                Some(i) => (&raw[..i], parse_i64(&raw[i + 1..]).ok_or(Malformed)? - 1440),
                None => (raw, 0),
            };
            let (secs, nanos) = parse_epoch(value).ok_or(Malformed)?;
            push_datetime(out, secs + offset * 60, nanos, scale);
            push_offset(out, offset);
        }
    }
    Ok(())
}

/// Every row of `table`, rendered into batches of at most `rows` rows; `emit` takes each full
/// batch and returns the next empty one (or `None` to stop: the reader is gone).
pub fn render_table(
    table: &ResultTable,
    batch: RowBatch,
    rows: usize,
    mut emit: impl FnMut(RowBatch) -> Option<RowBatch>,
) -> Result<Option<RowBatch>, snowflake_connector_rs::Error> {
    SINK.set(Some(batch));
    // Whatever happens, the batch is taken back: the sink never outlives this call.
    let take = || SINK.take().expect("the lent batch is in the sink");
    let mut decoded = match table.rows::<Rendered>() {
        Ok(r) => r,
        Err(e) => {
            take();
            return Err(e);
        }
    };
    loop {
        match decoded.next() {
            None => return Ok(Some(take())),
            Some(Err(e)) => {
                take();
                return Err(e);
            }
            Some(Ok(Rendered)) => {
                let full = SINK.with_borrow(|b| b.as_ref().is_some_and(|b| b.rows() >= rows));
                if full {
                    match emit(take()) {
                        Some(next) => SINK.set(Some(next)),
                        None => return Ok(None),
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and formatting
// ---------------------------------------------------------------------------------------------

fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if neg { -v } else { v })
}

/// `-?seconds[.fraction]` → (floored seconds, nanoseconds in 0..1e9).
pub(crate) fn parse_epoch(s: &[u8]) -> Option<(i64, u32)> {
    let (neg, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let (whole, frac) = match body.iter().position(|&b| b == b'.') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &b""[..]),
    };
    let secs = parse_i64(whole)?;
    if frac.len() > 9 {
        return None;
    }
    let mut nanos: u32 = 0;
    for i in 0..9 {
        let d = match frac.get(i) {
            Some(d) if d.is_ascii_digit() => u32::from(d - b'0'),
            Some(_) => return None,
            None => 0,
        };
        nanos = nanos * 10 + d;
    }
    if !neg {
        return Some((secs, nanos));
    }
    // -1.25 s is 2 s before the epoch plus 0.75 s.
    Some(if nanos == 0 { (-secs, 0) } else { (-secs - 1, 1_000_000_000 - nanos) })
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&two(v));
}

#[inline]
fn two(v: u32) -> [u8; 2] {
    [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]
}

/// `YYYY-MM-DD` into `buf`; returns its length (longer for years outside 0..=9999).
#[inline]
fn date_into(buf: &mut [u8; 48], days: i64) -> usize {
    let (y, m, d) = civil_from_days(days);
    let mut n = if (0..=9999).contains(&y) {
        let y = y as u32;
        buf[..2].copy_from_slice(&two(y / 100));
        buf[2..4].copy_from_slice(&two(y % 100));
        4
    } else {
        // ISO 8601's expanded years, as Snowflake prints them.
        let mut b = itoa::Buffer::new();
        let t = b.format(y).as_bytes();
        buf[..t.len()].copy_from_slice(t);
        t.len()
    };
    buf[n] = b'-';
    buf[n + 1..n + 3].copy_from_slice(&two(m));
    buf[n + 3] = b'-';
    buf[n + 4..n + 6].copy_from_slice(&two(d));
    n += 6;
    n
}

/// `HH:MM:SS[.fraction]` at `buf[at..]`; returns the end.
#[inline]
fn time_into(buf: &mut [u8; 48], at: usize, secs_of_day: i64, nanos: u32, scale: u8) -> usize {
    let s = secs_of_day as u32;
    buf[at..at + 2].copy_from_slice(&two(s / 3600));
    buf[at + 2] = b':';
    buf[at + 3..at + 5].copy_from_slice(&two(s / 60 % 60));
    buf[at + 5] = b':';
    buf[at + 6..at + 8].copy_from_slice(&two(s % 60));
    let mut end = at + 8;
    if scale > 0 {
        buf[end] = b'.';
        let mut n = nanos;
        for i in (0..9).rev() {
            buf[end + 1 + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        end += 1 + scale as usize;
    }
    end
}

fn push_date(out: &mut Vec<u8>, days: i64) {
    let mut buf = [0u8; 48];
    let n = date_into(&mut buf, days);
    out.extend_from_slice(&buf[..n]);
}

fn push_time(out: &mut Vec<u8>, secs_of_day: i64, nanos: u32, scale: u8) {
    let mut buf = [0u8; 48];
    let n = time_into(&mut buf, 0, secs_of_day, nanos, scale);
    out.extend_from_slice(&buf[..n]);
}

/// One write of the whole `YYYY-MM-DDTHH:MM:SS.fffffffff`: it runs once per timestamp cell.
fn push_datetime(out: &mut Vec<u8>, secs: i64, nanos: u32, scale: u8) {
    let mut buf = [0u8; 48];
    let n = date_into(&mut buf, secs.div_euclid(86_400));
    buf[n] = b'T';
    let end = time_into(&mut buf, n + 1, secs.rem_euclid(86_400), nanos, scale);
    out.extend_from_slice(&buf[..end]);
}

fn push_offset(out: &mut Vec<u8>, minutes: i64) {
    out.push(if minutes < 0 { b'-' } else { b'+' });
    let m = minutes.unsigned_abs() as u32;
    push2(out, m / 60);
    out.push(b':');
    push2(out, m % 60);
}

/// Drops whitespace outside strings: Snowflake sends semi-structured values pretty-printed and
/// unloads them compact.
fn minify_json(raw: &[u8], out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(kind: Kind, raw: &str) -> String {
        let mut out = Vec::new();
        render_text(kind, raw.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_render_in_iso_8601_with_the_columns_digits() {
        let ntz = |s| Kind::TimestampNtz { scale: s };
        assert_eq!(text(ntz(9), "0.000000000"), "1970-01-01T00:00:00.000000000");
        assert_eq!(text(ntz(3), "1700000000.123456789"), "2023-11-14T22:13:20.123");
        assert_eq!(text(ntz(0), "1700000000.999999999"), "2023-11-14T22:13:20");
        assert_eq!(text(ntz(6), "-0.500000000"), "1969-12-31T23:59:59.500000");
        assert_eq!(text(ntz(9), "-86400"), "1969-12-31T00:00:00.000000000");
        assert_eq!(text(Kind::TimestampLtz { scale: 3 }, "951782400.5"), "2000-02-29T00:00:00.500Z");
        // 1560 - 1440 = +120 minutes: the local time is two hours after the UTC seconds.
        assert_eq!(text(Kind::TimestampTz { scale: 0 }, "0.000000000 1560"), "1970-01-01T02:00:00+02:00");
        assert_eq!(text(Kind::TimestampTz { scale: 0 }, "0.000000000 1110"), "1969-12-31T18:30:00-05:30");
        assert_eq!(text(Kind::TimestampNtz { scale: 0 }, "253402300799"), "9999-12-31T23:59:59");
    }

    #[test]
    fn dates_times_and_json_render_as_snowflake_unloads_them() {
        assert_eq!(text(Kind::Date, "0"), "1970-01-01");
        assert_eq!(text(Kind::Date, "19723"), "2024-01-01");
        assert_eq!(text(Kind::Date, "-1"), "1969-12-31");
        assert_eq!(text(Kind::Date, "-719528"), "0000-01-01");
        assert_eq!(text(Kind::Time { scale: 3 }, "3723.5"), "01:02:03.500");
        assert_eq!(text(Kind::Time { scale: 0 }, "86399.999"), "23:59:59");
        assert_eq!(
            text(Kind::Json, "{\n  \"a b\": [1, 2],\n  \"c\": \"x \\\" y\"\n}"),
            r#"{"a b":[1,2],"c":"x \" y"}"#
        );
    }

    #[test]
    fn malformed_values_are_refused_not_guessed() {
        let mut out = Vec::new();
        for (kind, raw) in [
            (Kind::Date, "2024-01-01"),
            (Kind::TimestampNtz { scale: 9 }, "1.2.3"),
            (Kind::TimestampNtz { scale: 9 }, "1.0000000001"),
            (Kind::TimestampTz { scale: 9 }, "1.0 x"),
            (Kind::Time { scale: 9 }, ""),
        ] {
            assert!(render_text(kind, raw.as_bytes(), &mut out).is_err(), "{kind:?} {raw}");
        }
        assert!(render_cell(Kind::Bool, b"maybe", &mut RowBatch::new(1)).is_err());
    }

    #[test]
    fn civil_dates_match_chrono_across_eras() {
        for days in (-800_000..3_000_000).step_by(997) {
            let want = chrono::NaiveDate::from_num_days_from_ce_opt(719_163 + days as i32).unwrap();
            let mut out = Vec::new();
            push_date(&mut out, days);
            if (0..=9999).contains(&chrono::Datelike::year(&want)) {
                assert_eq!(String::from_utf8(out).unwrap(), want.format("%Y-%m-%d").to_string());
            }
        }
    }
}
