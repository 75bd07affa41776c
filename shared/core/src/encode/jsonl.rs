//! JSON lines: one object per row, keys in column order. NULL is `null`; non-finite floats and
//! binary values (hex), which JSON cannot hold as numbers, are strings.

use super::{push_hex, EncodeProblem, Encoder};
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

/// Writes a JSON string. Invalid UTF-8 (possible in SQLite text) is replaced, not rejected.
fn push_string(out: &mut Vec<u8>, value: &[u8]) {
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
    use super::*;

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
