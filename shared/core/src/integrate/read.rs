//! Reading a run's parts back, as the manifest describes them: decompressed as they stream
//! (gzip or zstd), checked against the manifest's row count and checksum, and parsed into rows
//! of JSON values in the manifest's column order. CSV is parsed by hand because the reader must
//! know whether a field was quoted: `""` is an empty string where an unquoted empty field is NULL.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read};

use crate::format::FormatDescription;
use crate::manifest::PartInfo;
use crate::value::Column;

/// One row: a value per manifest column, `Null` for NULL. CSV gives strings; JSON lines give
/// whatever JSON the part holds.
pub type Row = Vec<Value>;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("part {key}: {problem}; the part does not match its manifest (was it changed after the run?)")]
    Corrupt { key: String, problem: String },
    #[error("part {key}: reading failed")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the manifest's format cannot be read: {0}")]
    Format(String),
}

/// The format kind of a failures file read back as a part.
pub const FAILURES_KIND: &str = "failures";

/// The CSV options a reader needs, from a manifest's format description.
#[derive(Debug, Clone)]
pub struct CsvDialect {
    pub delimiter: u8,
    pub header: bool,
    pub quote: Option<u8>,
    pub null: String,
    pub null_if: Vec<String>,
    pub empty_field_as_null: bool,
    pub terminator: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum Dialect {
    Csv(CsvDialect),
    JsonLines,
    /// A failures file: JSON lines whose `row` holds the row (for `--retry-failures`).
    Failures,
}

#[derive(Debug, Clone, Copy)]
pub enum Decompress {
    None,
    Gzip,
    Zstd,
}

impl Dialect {
    pub fn from_manifest(f: &FormatDescription) -> Result<(Dialect, Decompress), ReadError> {
        let compression = match f.compression.as_str() {
            "none" => Decompress::None,
            "gzip" => Decompress::Gzip,
            "zstd" => Decompress::Zstd,
            other => return Err(ReadError::Format(format!("unknown compression {other:?}"))),
        };
        let byte = |name: &str, v: &Option<String>, default: u8| -> Result<Option<u8>, ReadError> {
            match v.as_deref() {
                None => Ok(Some(default)),
                Some("") => Ok(None),
                Some(s) if s.len() == 1 => Ok(Some(s.as_bytes()[0])),
                Some(s) => Err(ReadError::Format(format!("{name} {s:?} is not one byte"))),
            }
        };
        let dialect = match f.kind.as_str() {
            "csv" => Dialect::Csv(CsvDialect {
                delimiter: byte("delimiter", &f.delimiter, b'|')?
                    .ok_or_else(|| ReadError::Format("empty delimiter".into()))?,
                header: f.header.unwrap_or(true),
                quote: byte("quote", &f.quote, b'"')?,
                null: f.null.clone().unwrap_or_default(),
                null_if: f.null_if.clone().unwrap_or_default(),
                empty_field_as_null: f.empty_field_as_null.unwrap_or(true),
                terminator: f.record_terminator.clone().unwrap_or_else(|| "\n".into()).into_bytes(),
            }),
            "jsonl" => Dialect::JsonLines,
            FAILURES_KIND => Dialect::Failures,
            other => return Err(ReadError::Format(format!("unknown kind {other:?}"))),
        };
        Ok((dialect, compression))
    }
}

/// Counts and hashes the stored (compressed) bytes as they pass.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads every row of one part, calling `each` with the row's index within the part. Checks the
/// header, the row count and the checksum the manifest records.
pub fn read_part(
    part: &PartInfo,
    columns: &[Column],
    dialect: &Dialect,
    compression: Decompress,
    stored: impl Read,
    mut each: impl FnMut(u64, Row) -> bool,
) -> Result<u64, ReadError> {
    let key = &part.key;
    let io = |source| ReadError::Io { key: key.clone(), source };
    let corrupt = |problem: String| ReadError::Corrupt { key: key.clone(), problem };
    let mut hashing = Hashing { inner: stored, hash: Sha256::new() };
    let decoded: Box<dyn Read + '_> = match compression {
        Decompress::None => Box::new(&mut hashing),
        // Multi-member aware: a part is one member, but concatenations stay readable.
        Decompress::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut hashing)),
        Decompress::Zstd => Box::new(zstd::stream::read::Decoder::new(&mut hashing).map_err(io)?),
    };
    let mut input = BufReader::with_capacity(256 * 1024, decoded);
    let mut rows = 0u64;
    let mut stopped = false;
    match dialect {
        Dialect::Csv(d) => {
            let mut parser = CsvParser::new(d);
            let mut fields = Vec::with_capacity(columns.len());
            if d.header {
                if !parser.next_record(&mut input, &mut fields).map_err(io)? {
                    if part.rows > 0 {
                        return Err(corrupt("empty, without a header".into()));
                    }
                } else {
                    let names: Vec<&str> = fields.iter().map(|f| f.as_str().unwrap_or("")).collect();
                    let want: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                    if names != want {
                        return Err(corrupt(format!("header {names:?} differs from the manifest's columns {want:?}")));
                    }
                }
            }
            while parser.next_record(&mut input, &mut fields).map_err(io)? {
                if fields.len() != columns.len() {
                    return Err(corrupt(format!(
                        "record {} has {} fields, the manifest lists {} columns",
                        rows + 1,
                        fields.len(),
                        columns.len()
                    )));
                }
                if !each(rows, std::mem::replace(&mut fields, Vec::with_capacity(columns.len()))) {
                    stopped = true;
                    break;
                }
                rows += 1;
            }
        }
        Dialect::JsonLines | Dialect::Failures => {
            let failures = matches!(dialect, Dialect::Failures);
            let mut line = String::new();
            loop {
                line.clear();
                if input.read_line(&mut line).map_err(io)? == 0 {
                    break;
                }
                let text = line.trim_end_matches(['\n', '\r']);
                if text.is_empty() {
                    continue;
                }
                let mut obj: serde_json::Map<String, Value> = serde_json::from_str(text)
                    .map_err(|e| corrupt(format!("line {} is not a JSON object: {e}", rows + 1)))?;
                if failures {
                    obj = match obj.remove("row") {
                        Some(Value::Object(row)) => row,
                        _ => return Err(corrupt(format!("line {} has no \"row\" object", rows + 1))),
                    };
                }
                let row: Row = columns.iter().map(|c| obj.remove(&c.name).unwrap_or(Value::Null)).collect();
                if !each(rows, row) {
                    stopped = true;
                    break;
                }
                rows += 1;
            }
        }
    }
    if stopped {
        return Ok(rows);
    }
    // Drain what the parser did not need (a trailing gzip member boundary) so the hash is whole.
    std::io::copy(&mut input, &mut std::io::sink()).map_err(io)?;
    drop(input);
    if rows != part.rows {
        return Err(corrupt(format!("{rows} rows read, the manifest says {}", part.rows)));
    }
    if let Some(want) = &part.sha256 {
        let got = hex::encode(hashing.hash.finalize());
        if &got != want {
            return Err(corrupt(format!("SHA-256 is {got}, the manifest says {want}")));
        }
    }
    Ok(rows)
}

/// A streaming parser for one CSV dialect: fields may be quoted, a quote inside a quoted field is
/// doubled, quoted fields may hold delimiters and line breaks. Unquoted fields equal to a NULL
/// marker (or empty, when empty fields mean NULL) are NULL; quoted fields never are.
pub struct CsvParser<'a> {
    d: &'a CsvDialect,
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
    pub fn new(d: &'a CsvDialect) -> Self {
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
        let term = self.d.terminator.as_slice();
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

    fn dialect() -> CsvDialect {
        CsvDialect {
            delimiter: b'|',
            header: false,
            quote: Some(b'"'),
            null: String::new(),
            null_if: vec!["\\N".into()],
            empty_field_as_null: true,
            terminator: b"\n".to_vec(),
        }
    }

    fn parse(d: &CsvDialect, text: &str) -> Result<Vec<Row>, std::io::Error> {
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
        let d = CsvDialect { terminator: b"\r\n".to_vec(), ..dialect() };
        let rows = parse(&d, "a\rb|\"q\"\r\nc|d\r\n").unwrap();
        assert_eq!(rows, vec![vec![Value::from("a\rb"), Value::from("q")], vec![Value::from("c"), Value::from("d")]]);
    }

    #[test]
    fn an_unclosed_quote_is_an_error_not_a_short_row() {
        assert!(parse(&dialect(), "1|\"open\n").is_err());
        assert!(parse(&dialect(), "1|\"closed\"junk\n").is_err());
    }
}
