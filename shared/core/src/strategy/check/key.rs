//! The `check` strategy's keys and hashes: a row's key as bytes that sort as the source sorts,
//! and a hash of its checked columns.
//!
//! The merge needs both sides in one order. The key encoding sorts like SQL's `ORDER BY` for
//! each type (numbers numerically, text and bytes by their bytes, as SQLite's BINARY collation
//! and Snowflake's default do), and the run checks every key is above the one before, so a
//! source that orders otherwise (another collation, a column mixing types) or a key that is not
//! unique fails the run with what to fix rather than producing wrong changes.
//!
//! Hashes are computed here, from the values as read: the run reads every row anyway (the
//! changed ones are exported whole), so hashing in the source's SQL would save no transfer.

use sha2::{Digest, Sha256};

use crate::value::{Cell, RowBatch};

const T_BOOL: u8 = 1;
/// Every number (integer, float, exact NUMBER text) shares one tag and one encoding of its
/// value, so they sort together as SQL compares numbers across storage classes (SQLite stores
/// 1 and 1.5 of a NUMERIC column as an integer and a real; a warehouse may send a FLOAT's whole
/// values as integers). What follows the value says how to give it back.
const T_NUM: u8 = 2;
const T_TEXT: u8 = 5;
const T_BYTES: u8 = 6;
/// How a number was read, after its value: to decode it as the same kind of cell.
const N_INT: u8 = 1;
const N_FLOAT: u8 = 2;
const N_TEXT: u8 = 3;

/// Why a row's key cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct NullKey {
    /// The position of the NULL column among the key's columns.
    pub column: usize,
}

/// A number's sign, decimal digits (no leading or trailing zeros) and the power of ten of the
/// first digit: `-12.50` is (negative, "125", 1). None when `text` is not a finite decimal.
fn decimal(text: &str) -> Option<(bool, Vec<u8>, i32)> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let Some(first) = digits.iter().position(|&d| d != b'0') else {
        return Some((false, Vec::new(), 0)); // zero, whatever its sign
    };
    let last = digits.iter().rposition(|&d| d != b'0').expect("a non-zero digit exists");
    let power = (int.len() as i32 - 1 - first as i32).checked_add(exp)?;
    Some((negative, digits[first..=last].to_vec(), power))
}

/// Appends a number's value so that byte order is numeric order: a class byte (negative, zero,
/// positive; infinities around them), then for non-zero values the power of ten and the digits
/// ended by a byte below every digit, all inverted when negative.
fn push_sortable_number(negative: bool, digits: &[u8], power: i32, out: &mut Vec<u8>) {
    if digits.is_empty() {
        out.push(2);
        return;
    }
    let mut body = Vec::with_capacity(digits.len() + 5);
    body.extend_from_slice(&((power as u32) ^ (1 << 31)).to_be_bytes());
    body.extend_from_slice(digits);
    body.push(0);
    if negative {
        out.push(1);
        out.extend(body.iter().map(|b| !b));
    } else {
        out.push(3);
        out.extend_from_slice(&body);
    }
}

fn push_float_value(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.push(5);
    } else if v.is_infinite() {
        out.push(if v < 0.0 { 0 } else { 4 });
    } else {
        // A whole float by its exact digits (above 2^53 the shortest text that reads back as
        // `v` is rounded, and an integer could fall between); a fraction by that shortest text,
        // which no integer can fall within (its rounding interval is narrower than 1/2).
        let text = if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:e}") };
        let (negative, digits, power) = decimal(&text).expect("a finite float prints as a decimal");
        push_sortable_number(negative, &digits, power, out);
    }
}

/// Skips a number's value written by `push_sortable_number`; returns the position after it.
fn skip_number_value(key: &[u8], at: usize) -> Option<usize> {
    match *key.get(at)? {
        0 | 2 | 4 | 5 => Some(at + 1),
        class @ (1 | 3) => {
            let end = if class == 1 { 0xFF } else { 0 };
            let digits = key.get(at + 5..)?;
            Some(at + 5 + digits.iter().position(|&b| b == end)? + 1)
        }
        _ => None,
    }
}

/// Bytes escaped so that a shorter value sorts first: 0 becomes 0,255 and 0,0 ends the value.
fn escaped(v: &[u8], out: &mut Vec<u8>) {
    for &b in v {
        out.push(b);
        if b == 0 {
            out.push(255);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Appends the key of `row` (its cells at `key`) to `out`: bytes that compare as the source
/// orders the key columns, and that [`decode_key`] turns back into the values.
pub fn encode_key(batch: &RowBatch, row: &[Cell], key: &[usize], out: &mut Vec<u8>) -> Result<(), NullKey> {
    for (i, &c) in key.iter().enumerate() {
        match row[c] {
            Cell::Null => return Err(NullKey { column: i }),
            Cell::Bool(b) => out.extend_from_slice(&[T_BOOL, b as u8]),
            Cell::Int(v) => {
                out.push(T_NUM);
                let (_, digits, power) = decimal(&v.unsigned_abs().to_string()).expect("an integer is a decimal");
                push_sortable_number(v < 0, &digits, power, out);
                out.push(N_INT);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Cell::Float(v) => {
                out.push(T_NUM);
                push_float_value(v, out);
                out.push(N_FLOAT);
                out.extend_from_slice(&v.to_bits().to_be_bytes());
            }
            Cell::Number(s, l) => {
                let text = batch.slice(s, l);
                out.push(T_NUM);
                match std::str::from_utf8(text).ok().and_then(decimal) {
                    Some((negative, digits, power)) => push_sortable_number(negative, &digits, power, out),
                    // Not a decimal (a warehouse's "inf" or "NaN"): as a float would sort.
                    None => push_float_value(
                        std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).unwrap_or(f64::NAN),
                        out,
                    ),
                }
                out.push(N_TEXT);
                escaped(text, out);
            }
            Cell::Text(s, l) => {
                out.push(T_TEXT);
                escaped(batch.slice(s, l), out);
            }
            Cell::Bytes(s, l) => {
                out.push(T_BYTES);
                escaped(batch.slice(s, l), out);
            }
        }
    }
    Ok(())
}

/// Reads an escaped value starting at `at`; returns it and the position after its end.
fn unescaped(key: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut v = Vec::new();
    loop {
        match (key.get(at)?, key.get(at + 1)) {
            (0, Some(0)) => return Some((v, at + 2)),
            (0, Some(255)) => {
                v.push(0);
                at += 2;
            }
            (0, _) => return None,
            (&b, _) => {
                v.push(b);
                at += 1;
            }
        }
    }
}

/// Pushes the values of an encoded key onto `out`, one cell per key column; returns how many;
/// `None` when the bytes are not a key (a damaged state file).
pub fn decode_key(key: &[u8], out: &mut RowBatch) -> Option<usize> {
    let mut at = 0;
    let mut cells = 0;
    while at < key.len() {
        cells += 1;
        let tag = key[at];
        at += 1;
        match tag {
            T_BOOL => {
                out.push_bool(*key.get(at)? != 0);
                at += 1;
            }
            T_NUM => {
                at = skip_number_value(key, at)?;
                let kind = *key.get(at)?;
                at += 1;
                match kind {
                    N_INT => {
                        out.push_int(i64::from_be_bytes(key.get(at..at.checked_add(8)?)?.try_into().ok()?));
                        at += 8;
                    }
                    N_FLOAT => {
                        out.push_float(f64::from_bits(u64::from_be_bytes(
                            key.get(at..at.checked_add(8)?)?.try_into().ok()?,
                        )));
                        at += 8;
                    }
                    N_TEXT => {
                        let (text, next) = unescaped(key, at)?;
                        out.push_number(&text);
                        at = next;
                    }
                    _ => return None,
                }
            }
            T_TEXT | T_BYTES => {
                let (v, next) = unescaped(key, at)?;
                if tag == T_TEXT {
                    out.push_text(&v);
                } else {
                    out.push_bytes(&v);
                }
                at = next;
            }
            _ => return None,
        }
    }
    Some(cells)
}

/// The hash of `row`'s cells at `columns`: the first 8 bytes of a SHA-256 over each value with
/// its type and length, so no two different rows feed it the same bytes.
pub fn row_hash(batch: &RowBatch, row: &[Cell], columns: &[usize]) -> u64 {
    let mut h = Sha256::new();
    for &c in columns {
        match row[c] {
            Cell::Null => h.update([0u8]),
            Cell::Bool(b) => h.update([T_BOOL, b as u8]),
            Cell::Int(v) => {
                h.update([T_NUM, N_INT]);
                h.update(v.to_le_bytes());
            }
            Cell::Float(v) => {
                h.update([T_NUM, N_FLOAT]);
                h.update(v.to_bits().to_le_bytes());
            }
            Cell::Number(s, l) | Cell::Text(s, l) | Cell::Bytes(s, l) => {
                let tag = match row[c] {
                    Cell::Number(..) => N_TEXT,
                    Cell::Text(..) => T_TEXT,
                    _ => T_BYTES,
                };
                h.update([tag]);
                h.update(l.to_le_bytes());
                h.update(batch.slice(s, l));
            }
        }
    }
    let digest = h.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(batch: &RowBatch, cols: &[usize]) -> Vec<u8> {
        let mut k = Vec::new();
        encode_key(batch, batch.row(0), cols, &mut k).unwrap();
        k
    }

    fn one(push: impl FnOnce(&mut RowBatch)) -> Vec<u8> {
        let mut b = RowBatch::new(1);
        push(&mut b);
        key_of(&b, &[0])
    }

    #[test]
    fn keys_sort_as_sql_orders_each_type_and_decode_back() {
        let ints: Vec<Vec<u8>> =
            [i64::MIN, -5, -1, 0, 1, 7, i64::MAX].iter().map(|&v| one(|b| b.push_int(v))).collect();
        assert!(ints.windows(2).all(|w| w[0] < w[1]));
        let floats: Vec<Vec<u8>> =
            [f64::NEG_INFINITY, -2.5, -0.1, 0.0, 0.1, 3.0].iter().map(|&v| one(|b| b.push_float(v))).collect();
        assert!(floats.windows(2).all(|w| w[0] < w[1]));
        // Numbers of every kind sort together by value, as SQL compares them.
        let mixed: Vec<Vec<u8>> = vec![
            one(|b| b.push_number(b"-1e+30")),
            one(|b| b.push_int(i64::MIN)),
            one(|b| b.push_number(b"-1.23")),
            one(|b| b.push_number(b"-1.2")),
            one(|b| b.push_int(-1)),
            one(|b| b.push_float(-0.5)),
            one(|b| b.push_number(b"0.000")),
            one(|b| b.push_number(b"0.001")),
            one(|b| b.push_int(1)),
            one(|b| b.push_float(1.5)),
            one(|b| b.push_number(b"2")),
            one(|b| b.push_int(3)),
            one(|b| b.push_number(b"12.50")),
            one(|b| b.push_int(i64::MAX)),
            one(|b| b.push_number(b"123456789012345678901234567890")),
            one(|b| b.push_float(f64::INFINITY)),
        ];
        for w in mixed.windows(2) {
            assert!(w[0] < w[1], "{:?} < {:?}", w[0], w[1]);
        }
        let texts: Vec<Vec<u8>> =
            ["", "a", "a\0", "a\0b", "ab", "b", "é"].iter().map(|t| one(|b| b.push_text(t.as_bytes()))).collect();
        assert!(texts.windows(2).all(|w| w[0] < w[1]), "{texts:?}");
        // A warehouse's whole NUMBER sorts numerically, like an integer.
        assert!(one(|b| b.push_number(b"9")) < one(|b| b.push_number(b"10")));
        for push in [
            &(|b: &mut RowBatch| b.push_int(-42)) as &dyn Fn(&mut RowBatch),
            &|b| b.push_float(-0.25),
            &|b| b.push_number(b"-12.50"),
            &|b| b.push_number(b"1e+20"),
        ] {
            let mut orig = RowBatch::new(1);
            push(&mut orig);
            let mut back = RowBatch::new(1);
            decode_key(&key_of(&orig, &[0]), &mut back).unwrap();
            let text = |b: &RowBatch| match b.row(0)[0] {
                Cell::Number(s, l) => String::from_utf8(b.slice(s, l).to_vec()).unwrap(),
                other => format!("{other:?}"),
            };
            assert_eq!(text(&back), text(&orig), "decodes to the same cell");
        }

        // Composite keys: by the first column, then the second.
        let mut b = RowBatch::new(2);
        for (x, y) in [("a", 2), ("a", 10), ("ab", 1)] {
            b.push_text(x.as_bytes());
            b.push_int(y);
        }
        let keys: Vec<Vec<u8>> = (0..3)
            .map(|r| {
                let mut k = Vec::new();
                encode_key(&b, b.row(r), &[0, 1], &mut k).unwrap();
                k
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let mut back = RowBatch::new(2);
        decode_key(&keys[1], &mut back).unwrap();
        assert_eq!(back.row(0)[1], Cell::Int(10));
        assert!(matches!(back.row(0)[0], Cell::Text(s, l) if back.slice(s, l) == b"a"));
        let mut back = RowBatch::new(1);
        decode_key(&one(|b| b.push_number(b"1.50")), &mut back).unwrap();
        assert!(matches!(back.row(0)[0], Cell::Number(s, l) if back.slice(s, l) == b"1.50"));
        assert!(decode_key(&[99, 1, 2], &mut RowBatch::new(1)).is_none());

        let mut nulls = RowBatch::new(2);
        nulls.push_int(1);
        nulls.push_null();
        assert_eq!(encode_key(&nulls, nulls.row(0), &[0, 1], &mut Vec::new()), Err(NullKey { column: 1 }));
    }

    #[test]
    fn the_hash_tells_values_types_and_boundaries_apart() {
        let hash = |push: &dyn Fn(&mut RowBatch)| {
            let mut b = RowBatch::new(2);
            push(&mut b);
            row_hash(&b, b.row(0), &[0, 1])
        };
        let ab = hash(&|b| {
            b.push_text(b"ab");
            b.push_text(b"c");
        });
        let a_bc = hash(&|b| {
            b.push_text(b"a");
            b.push_text(b"bc");
        });
        let null = hash(&|b| {
            b.push_text(b"ab");
            b.push_null();
        });
        let empty = hash(&|b| {
            b.push_text(b"ab");
            b.push_text(b"");
        });
        assert!(ab != a_bc && null != empty && ab != null);
        let again = hash(&|b| {
            b.push_text(b"ab");
            b.push_text(b"c");
        });
        assert_eq!(ab, again, "stable");
    }
}
