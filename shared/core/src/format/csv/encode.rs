//! CSV in the reference dialect: one delimiter byte, an optional enclosing quote doubled inside
//! values, a NULL marker, `null_if` strings, empty-field-as-null and a record terminator.
//! NULL and the empty string stay distinguishable whenever the options allow: the empty string
//! is written `""` when empty fields mean NULL, and text equal to a NULL marker is quoted.

use super::options::{CsvFormat, QuoteStyle};
use crate::format::encode::{push_hex, EncodeProblem, Encoder};
use crate::value::{Cell, Column, RowBatch};

pub struct CsvEncoder {
    format: CsvFormat,
    /// Bytes that force quoting: the delimiter, the quote, CR, LF and the terminator's bytes.
    special: [bool; 256],
    /// The same bytes, each repeated in all eight lanes of a word, for the 8-bytes-at-a-time scan.
    special_words: Vec<u64>,
    /// Text that a reader would take for NULL when unquoted.
    null_like: Vec<Vec<u8>>,
    ints: itoa::Buffer,
    floats: ryu::Buffer,
}

impl CsvEncoder {
    pub fn new(format: CsvFormat) -> Self {
        let mut special = [false; 256];
        special[format.delimiter as usize] = true;
        special[b'\r' as usize] = true;
        special[b'\n' as usize] = true;
        for b in format.record_terminator.bytes() {
            special[b as usize] = true;
        }
        if let Some(q) = format.quote {
            special[q as usize] = true;
        }
        let special_words = (0..=255u8).filter(|b| special[*b as usize]).map(|b| u64::from_ne_bytes([b; 8])).collect();
        let mut null_like: Vec<Vec<u8>> = Vec::new();
        for s in std::iter::once(&format.null).chain(format.null_if.iter()) {
            if !s.is_empty() && !null_like.iter().any(|n| n == s.as_bytes()) {
                null_like.push(s.as_bytes().to_vec());
            }
        }
        CsvEncoder { format, special, special_words, null_like, ints: itoa::Buffer::new(), floats: ryu::Buffer::new() }
    }

    /// Whether a value holds a byte that forces quoting. Eight bytes at a time: a lane of
    /// `word ^ splat(b)` is zero exactly where the byte is `b`, and the classic has-zero-byte
    /// test finds such a lane without branching per byte.
    #[inline]
    fn has_special(&self, value: &[u8]) -> bool {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let mut chunks = value.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_ne_bytes(word);
            for m in &self.special_words {
                let x = w ^ m;
                if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
                    return true;
                }
            }
        }
        chunks.remainder().iter().any(|b| self.special[*b as usize])
    }

    #[inline]
    fn text(&self, value: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let quote = self.format.quote;
        if value.is_empty() {
            if self.format.empty_field_as_null || self.format.quote_style == QuoteStyle::Always {
                // Validation guarantees a quote when empty fields mean NULL.
                if let Some(q) = quote.or(self.format.empty_field_as_null.then_some(b'"')) {
                    out.extend_from_slice(&[q, q]);
                }
            }
            return Ok(());
        }
        let special = self.has_special(value);
        let must_quote = special
            || self.format.quote_style == QuoteStyle::Always
            || self.null_like.iter().any(|n| n.as_slice() == value);
        match (must_quote, quote) {
            (false, _) => out.extend_from_slice(value),
            (true, Some(q)) => {
                out.push(q);
                if special {
                    let mut rest = value;
                    while let Some(i) = rest.iter().position(|b| *b == q) {
                        out.extend_from_slice(&rest[..=i]);
                        out.push(q);
                        rest = &rest[i + 1..];
                    }
                    out.extend_from_slice(rest);
                } else {
                    out.extend_from_slice(value);
                }
                out.push(q);
            }
            (true, None) if special => {
                return Err("the value contains the delimiter or a line break and the format has no quote character; set format.quote".into())
            }
            // Equal to a NULL marker with no way to quote: written as is (warned at validation).
            (true, None) => out.extend_from_slice(value),
        }
        Ok(())
    }
}

impl Encoder for CsvEncoder {
    fn begin_part(&mut self, columns: &[Column], out: &mut Vec<u8>) {
        if !self.format.header {
            return;
        }
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push(self.format.delimiter);
            }
            // A column name that cannot be written is written as is: names are not data, and
            // a header problem is visible at a glance, unlike a bad value.
            if self.text(c.name.as_bytes(), out).is_err() {
                out.extend_from_slice(c.name.as_bytes());
            }
        }
        out.extend_from_slice(self.format.record_terminator.as_bytes());
    }

    #[inline]
    fn encode_row(&mut self, batch: &RowBatch, row: usize, out: &mut Vec<u8>) -> Result<(), EncodeProblem> {
        let cells = batch.row(row);
        // A lone empty string would be a blank line, which many readers skip: quote it.
        if let ([Cell::Text(_, 0) | Cell::Bytes(_, 0)], Some(q)) = (cells, self.format.quote) {
            out.extend_from_slice(&[q, q]);
            out.extend_from_slice(self.format.record_terminator.as_bytes());
            return Ok(());
        }
        // One reservation per row instead of a capacity check per growth.
        out.reserve(cells.len() * 24);
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(self.format.delimiter);
            }
            match *cell {
                Cell::Null => out.extend_from_slice(self.format.null.as_bytes()),
                Cell::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
                Cell::Int(v) => out.extend_from_slice(self.ints.format(v).as_bytes()),
                Cell::Float(v) => out.extend_from_slice(self.floats.format(v).as_bytes()),
                // A number goes through the text path: a delimiter of '.' or '-' still quotes it.
                Cell::Text(s, l) | Cell::Number(s, l) => {
                    self.text(batch.slice(s, l), out).map_err(|problem| EncodeProblem { column: i, problem })?
                }
                // An empty value is written as an empty text is, so it stays apart from NULL.
                Cell::Bytes(_, 0) => self.text(b"", out).map_err(|problem| EncodeProblem { column: i, problem })?,
                Cell::Bytes(s, l) => push_hex(out, batch.slice(s, l)),
            }
        }
        out.extend_from_slice(self.format.record_terminator.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(format: CsvFormat, texts: &[Option<&str>]) -> String {
        let mut batch = RowBatch::new(texts.len());
        for t in texts {
            match t {
                Some(t) => batch.push_text(t.as_bytes()),
                None => batch.push_null(),
            }
        }
        let mut out = Vec::new();
        CsvEncoder::new(format).encode_row(&batch, 0, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn null_and_empty_string_differ_in_the_reference_format() {
        assert_eq!(encode(CsvFormat::default(), &[None, Some(""), Some("x")]), "|\"\"|x\n");
    }

    #[test]
    fn delimiter_quote_and_newline_are_quoted_with_doubling() {
        assert_eq!(
            encode(CsvFormat::default(), &[Some("a|b"), Some("say \"hi\""), Some("l1\nl2")]),
            "\"a|b\"|\"say \"\"hi\"\"\"|\"l1\nl2\"\n"
        );
    }

    #[test]
    fn text_equal_to_a_null_marker_is_quoted() {
        let f = CsvFormat {
            null: "\\N".into(),
            null_if: vec!["NULL".into()],
            empty_field_as_null: false,
            ..CsvFormat::default()
        };
        assert_eq!(encode(f, &[None, Some("\\N"), Some("NULL"), Some("")]), "\\N|\"\\N\"|\"NULL\"|\n");
    }

    #[test]
    fn without_a_quote_a_delimiter_in_a_value_is_a_clear_error() {
        let f = CsvFormat { quote: None, empty_field_as_null: false, null: "\\N".into(), ..CsvFormat::default() };
        let mut batch = RowBatch::new(1);
        batch.push_text(b"a|b");
        let err = CsvEncoder::new(f).encode_row(&batch, 0, &mut Vec::new()).unwrap_err();
        assert!(err.problem.contains("format.quote"), "{err:?}");
    }

    #[test]
    fn numbers_booleans_and_bytes_render_plainly() {
        let mut batch = RowBatch::new(5);
        batch.push_int(-42);
        batch.push_float(1.5);
        batch.push_bool(true);
        batch.push_bytes(&[0xde, 0xad]);
        batch.push_float(f64::NAN);
        let mut out = Vec::new();
        CsvEncoder::new(CsvFormat { record_terminator: "\r\n".into(), ..CsvFormat::default() })
            .encode_row(&batch, 0, &mut out)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "-42|1.5|true|DEAD|NaN\r\n");
    }

    #[test]
    fn always_quote_style_quotes_every_text_value() {
        let f = CsvFormat { quote_style: QuoteStyle::Always, ..CsvFormat::default() };
        assert_eq!(encode(f, &[Some("a"), None]), "\"a\"|\n");
        // The empty string too, so it stays apart from NULL whatever empty_field_as_null says.
        let f = CsvFormat { quote_style: QuoteStyle::Always, empty_field_as_null: false, ..CsvFormat::default() };
        assert_eq!(encode(f, &[Some(""), None]), "\"\"|\n");
    }

    #[test]
    fn an_empty_blob_is_written_as_an_empty_text_is_not_as_null() {
        let mut batch = RowBatch::new(3);
        batch.push_bytes(&[]);
        batch.push_null();
        batch.push_bytes(&[0x01]);
        let mut out = Vec::new();
        CsvEncoder::new(CsvFormat::default()).encode_row(&batch, 0, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"\"||01\n");
        let mut lone = RowBatch::new(1);
        lone.push_bytes(&[]);
        let mut out = Vec::new();
        CsvEncoder::new(CsvFormat::default()).encode_row(&lone, 0, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"\"\n");
    }
}
