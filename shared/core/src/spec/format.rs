//! The `format` keys of an export, validated into a [`FileFormat`].

use serde::Deserialize;

use super::validate::{parse_size, Validator};
use crate::format::{Compression, CsvFormat, FileFormat, JsonFormat, QuoteStyle, DEFAULT_MAX_FILE_SIZE};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFormat {
    kind: Option<String>,
    delimiter: Option<String>,
    header: Option<bool>,
    quote: Option<String>,
    quote_style: Option<String>,
    null: Option<String>,
    null_if: Option<Vec<String>>,
    empty_field_as_null: Option<bool>,
    record_terminator: Option<String>,
    compression: Option<String>,
    compression_level: Option<i32>,
    max_file_size: Option<toml::Value>,
}

impl Validator {
    pub(super) fn format(&mut self, key: &str, raw: RawFormat) -> Option<FileFormat> {
        let before = self.problems.len();
        let compression = self.compression(key, raw.compression.as_deref(), raw.compression_level);
        let max_file_size = match &raw.max_file_size {
            None => DEFAULT_MAX_FILE_SIZE,
            Some(toml::Value::Integer(n)) if *n > 0 => *n as u64,
            Some(toml::Value::String(s)) if parse_size(s).is_some_and(|n| n > 0) => parse_size(s).unwrap_or_default(),
            Some(other) => {
                self.problem(
                    format!("{key}.max_file_size"),
                    format!("invalid size {other}: it must be a positive number of bytes"),
                    "write bytes or a size such as \"64MiB\"",
                );
                DEFAULT_MAX_FILE_SIZE
            }
        };
        match raw.kind.as_deref().unwrap_or("csv") {
            "csv" => {
                let delimiter = self.single_byte(key, "delimiter", raw.delimiter.as_deref().unwrap_or("|"));
                let quote = match raw.quote.as_deref() {
                    None => Some(b'"'),
                    Some("") => None,
                    Some(q) => self.single_byte(key, "quote", q),
                };
                let quote_style = match raw.quote_style.as_deref() {
                    None | Some("needed") => QuoteStyle::Needed,
                    Some("always") => QuoteStyle::Always,
                    Some(other) => {
                        self.problem(
                            format!("{key}.quote_style"),
                            format!("unknown quote style {other:?}"),
                            "use \"needed\" or \"always\"",
                        );
                        QuoteStyle::Needed
                    }
                };
                let record_terminator = raw.record_terminator.unwrap_or_else(|| "\n".to_string());
                if record_terminator.is_empty() {
                    self.problem(format!("{key}.record_terminator"), "empty", "use \"\\n\" or \"\\r\\n\"");
                }
                let empty_field_as_null = raw.empty_field_as_null.unwrap_or(true);
                let null = raw.null.unwrap_or_default();
                let null_if = raw.null_if.unwrap_or_default();
                if let (Some(d), Some(q)) = (delimiter, quote) {
                    if d == q {
                        self.problem(
                            format!("{key}.quote"),
                            "the quote equals the delimiter",
                            "choose different characters",
                        );
                    }
                }
                for (what, s) in std::iter::once(("null", &null)).chain(null_if.iter().map(|s| ("null_if", s))) {
                    if delimiter.is_some_and(|d| s.as_bytes().contains(&d)) || s.contains(['\r', '\n']) {
                        self.problem(
                            format!("{key}.{what}"),
                            format!("{s:?} contains the delimiter or a line break"),
                            "choose a marker without them",
                        );
                    }
                }
                if quote.is_none() {
                    if empty_field_as_null {
                        self.problem(
                            format!("{key}.empty_field_as_null"),
                            "needs a quote character: empty strings are written as a quoted empty field",
                            "set quote = '\"' or empty_field_as_null = false",
                        );
                    }
                    self.warning(
                        format!("{key}.quote"),
                        "without a quote character, a value containing the delimiter or a line break fails the run",
                        "set quote = '\"' unless the data is known to be clean",
                    );
                    if !null.is_empty() || !null_if.is_empty() {
                        self.warning(
                            format!("{key}.null"),
                            "without a quote character, a text value equal to the NULL marker cannot be told from NULL",
                            "set quote = '\"'",
                        );
                    }
                }
                if null.is_empty() && !empty_field_as_null {
                    self.warning(
                        format!("{key}.null"),
                        "NULL is written as an empty field but empty_field_as_null = false, so readers cannot tell NULL from an empty string",
                        "set null = \"\\\\N\" or empty_field_as_null = true",
                    );
                }
                if self.problems.len() != before {
                    return None;
                }
                Some(FileFormat::Csv(CsvFormat {
                    delimiter: delimiter?,
                    header: raw.header.unwrap_or(true),
                    quote,
                    quote_style,
                    null,
                    null_if,
                    empty_field_as_null,
                    record_terminator,
                    compression: compression?,
                    max_file_size,
                }))
            }
            "jsonl" | "json" => {
                for (k, set) in [
                    ("delimiter", raw.delimiter.is_some()),
                    ("header", raw.header.is_some()),
                    ("quote", raw.quote.is_some()),
                    ("quote_style", raw.quote_style.is_some()),
                    ("null", raw.null.is_some()),
                    ("null_if", raw.null_if.is_some()),
                    ("empty_field_as_null", raw.empty_field_as_null.is_some()),
                    ("record_terminator", raw.record_terminator.is_some()),
                ] {
                    if set {
                        self.problem(
                            format!("{key}.{k}"),
                            "a CSV option on a jsonl format",
                            "remove it, or use kind = \"csv\"",
                        );
                    }
                }
                if self.problems.len() != before {
                    return None;
                }
                Some(FileFormat::JsonLines(JsonFormat { compression: compression?, max_file_size }))
            }
            other => {
                self.problem(format!("{key}.kind"), format!("unknown format {other:?}"), "use \"csv\" or \"jsonl\"");
                None
            }
        }
    }

    fn compression(&mut self, key: &str, raw: Option<&str>, level: Option<i32>) -> Option<Compression> {
        let c = match raw.unwrap_or("gzip") {
            "none" => {
                if level.is_some() {
                    self.problem(
                        format!("{key}.compression_level"),
                        "set without compression",
                        "remove it or choose gzip/zstd",
                    );
                }
                Compression::None
            }
            "gzip" => {
                let level = level.unwrap_or(6);
                if !(0..=9).contains(&level) {
                    self.problem(
                        format!("{key}.compression_level"),
                        format!("{level} is out of range for gzip"),
                        "use 0-9",
                    );
                }
                Compression::Gzip { level: level.clamp(0, 9) as u32 }
            }
            "zstd" => {
                let level = level.unwrap_or(3);
                if !(1..=19).contains(&level) {
                    self.problem(
                        format!("{key}.compression_level"),
                        format!("{level} is out of range for zstd"),
                        "use 1-19",
                    );
                }
                Compression::Zstd { level }
            }
            other => {
                self.problem(
                    format!("{key}.compression"),
                    format!("unknown compression {other:?}"),
                    "use \"none\", \"gzip\" or \"zstd\"",
                );
                return None;
            }
        };
        Some(c)
    }

    fn single_byte(&mut self, key: &str, field: &str, raw: &str) -> Option<u8> {
        match raw.as_bytes() {
            [b] if b.is_ascii() && *b != b'\r' && *b != b'\n' => Some(*b),
            _ => {
                self.problem(
                    format!("{key}.{field}"),
                    format!("{raw:?} is not a single ASCII character other than CR and LF"),
                    "use one character such as '|', ',' or '\\t'",
                );
                None
            }
        }
    }
}
