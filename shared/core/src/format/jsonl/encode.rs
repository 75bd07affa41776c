//! JSON lines: one object per row, keys in column order. NULL is `null`; non-finite floats and
//! binary values (hex), which JSON cannot hold as numbers, are strings.

use crate::format::encode::{push_hex, EncodeProblem, Encoder};
use crate::value::{Cell, Column, RowBatch};

pub struct JsonLinesEncoder {
    /// `{"name":` for the first column, `,"name":` for the others, escaped once up front.
    keys: Vec<Vec<u8>>,
    ints: itoa::Buffer,
    floats: ryu::Buffer,
}

impl JsonLinesEncoder {
    pub fn new(columns: &[Column]) -> Self {
        let keys = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut k = vec![if i == 0 { b'{' } else { b',' }];
                push_string(&mut k, c.name.as_bytes());
                k.push(b':');
                k
            })
            .collect();
        JsonLinesEncoder { keys, ints: itoa::Buffer::new(), floats: ryu::Buffer::new() }
    }
}

impl Encoder for JsonLinesEncoder {
    fn begin_part(&mut self, _columns: &[Column], _out: &mut Vec<u8>) {}

    fn encode_row(&mut self, batch: &RowBatch, row: usize, out: &mut Vec<u8>) -> Result<(), EncodeProblem> {
        let cells = batch.row(row);
        if cells.is_empty() {
            out.extend_from_slice(b"{}\n");
            return Ok(());
        }
        for (i, cell) in cells.iter().enumerate() {
            out.extend_from_slice(&self.keys[i]);
            match *cell {
                Cell::Null => out.extend_from_slice(b"null"),
                Cell::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
                Cell::Int(v) => out.extend_from_slice(self.ints.format(v).as_bytes()),
                Cell::Float(v) if v.is_finite() => out.extend_from_slice(self.floats.format_finite(v).as_bytes()),
                Cell::Float(v) => {
                    let s = if v.is_nan() {
                        "NaN"
                    } else if v > 0.0 {
                        "Infinity"
                    } else {
                        "-Infinity"
                    };
                    push_string(out, s.as_bytes());
                }
                Cell::Text(s, l) => push_string(out, batch.slice(s, l)),
                Cell::Number(s, l) => {
                    let n = batch.slice(s, l);
                    // Bare when JSON can carry it; "inf" and "NaN" become strings, as for floats.
                    if is_json_number(n) {
                        out.extend_from_slice(n);
                    } else {
                        push_string(out, n);
                    }
                }
                Cell::Bytes(s, l) => {
                    out.push(b'"');
                    push_hex(out, batch.slice(s, l));
                    out.push(b'"');
                }
            }
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, JSON's number grammar.
fn is_json_number(s: &[u8]) -> bool {
    let digits = |s: &[u8], i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    let mut i = usize::from(s.first() == Some(&b'-'));
    let int_start = i;
    if !digits(s, &mut i) || (s[int_start] == b'0' && i - int_start > 1) {
        return false;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        if !digits(s, &mut i) {
            return false;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(s, &mut i) {
            return false;
        }
    }
    i == s.len()
}

/// Writes a JSON string. Invalid UTF-8 (possible in SQLite text) is replaced, not rejected.
fn push_string(out: &mut Vec<u8>, value: &[u8]) {
    // Most text is printable ASCII with nothing to escape: one scan (which the compiler runs
    // many bytes at a time), one copy, instead of a UTF-8 check and a byte-by-byte escape.
    if value.iter().all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\') {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value);
        out.push(b'"');
        return;
    }
    match std::str::from_utf8(value) {
        Ok(s) => push_str(out, s),
        Err(_) => push_str(out, &String::from_utf8_lossy(value)),
    }
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_bare_only_when_json_can_carry_them() {
        for ok in ["0", "-1", "12.50", "1e+20", "-0.5E-3", "123456789012345678901234567890.0123456789"] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "inf", "-inf", "NaN", "1e", "1 ", "+1"] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn plain_ascii_is_copied_and_everything_else_escaped_as_before() {
        let json = |v: &[u8]| {
            let mut out = Vec::new();
            push_string(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(json(b"user7@example.com ~\x7f"), "\"user7@example.com ~\x7f\"");
        assert_eq!(json(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json(b"tab\tnl\n\x01"), r#""tab\tnl\n\u0001""#);
        assert_eq!(json("é".as_bytes()), "\"é\"");
        assert_eq!(json(b"bad \xff"), "\"bad \u{fffd}\"");
        for s in ["", "x", "\"", "\\"] {
            let v: serde_json::Value = serde_json::from_str(&json(s.as_bytes())).unwrap();
            assert_eq!(v, s, "round trip of {s:?}");
        }
    }

    #[test]
    fn rows_are_objects_keyed_by_column() {
        let cols = vec![
            Column { name: "id".into(), source_type: "INTEGER".into() },
            Column { name: "na\"me".into(), source_type: "TEXT".into() },
            Column { name: "x".into(), source_type: "REAL".into() },
        ];
        let mut batch = RowBatch::new(3);
        batch.push_int(7);
        batch.push_text("a\u{1}\n\"é".as_bytes());
        batch.push_null();
        let mut out = Vec::new();
        JsonLinesEncoder::new(&cols).encode_row(&batch, 0, &mut out).unwrap();
        let line = String::from_utf8(out).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v, serde_json::json!({"id": 7, "na\"me": "a\u{1}\n\"é", "x": null}));
    }
}
