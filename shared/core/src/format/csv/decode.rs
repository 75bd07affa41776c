//! Reading CSV parts back. Parsed by hand because the reader must know whether a field was
//! quoted: `""` is an empty string where an unquoted empty field is NULL.

use serde_json::Value;
use std::io::BufRead;

use super::options::CsvFormat;
use crate::format::decode::{DecodeError, Decoder, Row};
use crate::value::Column;

/// Reads a part written with `format`: its header (checked against the columns) and records.
pub struct CsvDecoder {
    format: CsvFormat,
}

impl CsvDecoder {
    pub fn new(format: CsvFormat) -> Self {
        CsvDecoder { format }
    }
}

impl Decoder for CsvDecoder {
    fn rows(
        &mut self,
        input: &mut dyn BufRead,
        columns: &[Column],
        each: &mut dyn FnMut(u64, Row) -> bool,
    ) -> Result<u64, DecodeError> {
        let mut parser = CsvParser::new(&self.format);
        let mut fields = Vec::with_capacity(columns.len());
        let mut input = input;
        if self.format.header && parser.next_record(&mut input, &mut fields).map_err(DecodeError::Io)? {
            let names: Vec<&str> = fields.iter().map(|f| f.as_str().unwrap_or("")).collect();
            let want: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            if names != want {
                return Err(DecodeError::Corrupt(format!(
                    "header {names:?} differs from the manifest's columns {want:?}"
                )));
            }
        }
        let mut rows = 0u64;
        while parser.next_record(&mut input, &mut fields).map_err(DecodeError::Io)? {
            if fields.len() != columns.len() {
                return Err(DecodeError::Corrupt(format!(
                    "record {} has {} fields, the manifest lists {} columns",
                    rows + 1,
                    fields.len(),
                    columns.len()
                )));
            }
            if !each(rows, std::mem::replace(&mut fields, Vec::with_capacity(columns.len()))) {
                break;
            }
            rows += 1;
        }
        Ok(rows)
    }
}

/// A streaming parser for one CSV dialect: fields may be quoted, a quote inside a quoted field is
/// doubled, quoted fields may hold delimiters and line breaks. Unquoted fields equal to a NULL
/// marker (or empty, when empty fields mean NULL) are NULL; quoted fields never are.
pub struct CsvParser<'a> {
    d: &'a CsvFormat,
    field: Vec<u8>,
}

#[derive(PartialEq)]
enum State {
    Start,
    Unquoted,
    Quoted,
    /// A quote seen inside a quoted field: a second quote is a literal one, anything else ends it.
    QuoteInQuoted,
    /// After a closing quote, waiting for the delimiter or the terminator.
    AfterQuote,
}

impl<'a> CsvParser<'a> {
    pub fn new(d: &'a CsvFormat) -> Self {
        CsvParser { d, field: Vec::new() }
    }

    fn finish_field(&mut self, quoted: bool, out: &mut Row) {
        // A copy of exactly the field's length; the buffer stays for the next field.
        let bytes = self.field.clone();
        self.field.clear();
        let text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let is_null = !quoted
            && ((text.is_empty() && self.d.empty_field_as_null)
                || text == self.d.null
                || self.d.null_if.iter().any(|n| n == &text));
        out.push(if is_null { Value::Null } else { Value::String(text) });
    }

    /// Reads the next record into `out` (cleared first); `false` at the end of the input.
    pub fn next_record(&mut self, input: &mut impl BufRead, out: &mut Row) -> std::io::Result<bool> {
        out.clear();
        self.field.clear();
        let term = self.d.record_terminator.as_bytes();
        let last = *term.last().unwrap_or(&b'\n');
        let mut state = State::Start;
        let mut tail: Vec<u8> = Vec::new();
        let mut any = false;
        loop {
            let buf = input.fill_buf()?;
            if buf.is_empty() {
                // End of input: a last record without a terminator still counts.
                return Ok(match state {
                    State::Start if !any && out.is_empty() => false,
                    State::Quoted => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "a quoted field is not closed",
                        ))
                    }
                    State::QuoteInQuoted | State::AfterQuote => {
                        self.finish_field(true, out);
                        true
                    }
                    _ => {
                        self.finish_field(false, out);
                        true
                    }
                });
            }
            let mut used = 0;
            let mut done = false;
            for &b in buf {
                used += 1;
                any = true;
                match state {
                    State::Start | State::Unquoted => {
                        if Some(b) == self.d.quote && state == State::Start {
                            state = State::Quoted;
                        } else if b == self.d.delimiter {
                            self.finish_field(false, out);
                            state = State::Start;
                        } else {
                            self.field.push(b);
                            state = State::Unquoted;
                            if b == last && self.field.ends_with(term) {
                                self.field.truncate(self.field.len() - term.len());
                                self.finish_field(false, out);
                                done = true;
                                break;
                            }
                        }
                    }
                    State::Quoted => {
                        if Some(b) == self.d.quote {
                            state = State::QuoteInQuoted;
                        } else {
                            self.field.push(b);
                        }
                    }
                    State::QuoteInQuoted if Some(b) == self.d.quote => {
                        self.field.push(b);
                        state = State::Quoted;
                    }
                    State::QuoteInQuoted | State::AfterQuote => {
                        if b == self.d.delimiter && tail.is_empty() {
                            self.finish_field(true, out);
                            state = State::Start;
                            continue;
                        }
                        tail.push(b);
                        state = State::AfterQuote;
                        if tail == term {
                            tail.clear();
                            self.finish_field(true, out);
                            done = true;
                            break;
                        }
                        if !term.starts_with(&tail) {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "unexpected text after a closing quote",
                            ));
                        }
                    }
                }
            }
            input.consume(used);
            if done {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect() -> CsvFormat {
        CsvFormat { header: false, null_if: vec!["\\N".into()], ..CsvFormat::default() }
    }

    fn parse(d: &CsvFormat, text: &str) -> Result<Vec<Row>, std::io::Error> {
        let mut p = CsvParser::new(d);
        let mut input = std::io::Cursor::new(text.as_bytes().to_vec());
        let mut rows = Vec::new();
        let mut row = Vec::new();
        while p.next_record(&mut input, &mut row)? {
            rows.push(row.clone());
        }
        Ok(rows)
    }

    #[test]
    fn quoted_empty_is_text_and_unquoted_empty_is_null() {
        let rows = parse(&dialect(), "a||\"\"|\"x|y\"|\"he said \"\"hi\"\"\"|\\N|\"\\N\"\n").unwrap();
        assert_eq!(
            rows,
            vec![vec![
                Value::from("a"),
                Value::Null,
                Value::from(""),
                Value::from("x|y"),
                Value::from("he said \"hi\""),
                Value::Null,
                Value::from("\\N"),
            ]]
        );
    }

    #[test]
    fn quoted_fields_hold_line_breaks_and_the_last_record_may_lack_a_terminator() {
        let rows = parse(&dialect(), "1|\"two\nlines\"\n2|last").unwrap();
        assert_eq!(
            rows,
            vec![vec![Value::from("1"), Value::from("two\nlines")], vec![Value::from("2"), Value::from("last")]]
        );
    }

    #[test]
    fn a_multi_byte_terminator_ends_records_only_when_whole() {
        let d = CsvFormat { record_terminator: "\r\n".into(), ..dialect() };
        let rows = parse(&d, "a\rb|\"q\"\r\nc|d\r\n").unwrap();
        assert_eq!(rows, vec![vec![Value::from("a\rb"), Value::from("q")], vec![Value::from("c"), Value::from("d")]]);
    }

    #[test]
    fn an_unclosed_quote_is_an_error_not_a_short_row() {
        assert!(parse(&dialect(), "1|\"open\n").is_err());
        assert!(parse(&dialect(), "1|\"closed\"junk\n").is_err());
    }
}
