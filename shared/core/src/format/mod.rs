//! File formats, one type for both directions: the validated options of each format, the
//! encoder that writes a part (begin, rows, end), the decoder that reads one back, and the
//! description a manifest records (and its reverse). The part writer, the integrations' reader
//! and the test kit all go through [`FileFormat`].
//!
//! Adding a format is a folder beside `csv/` (options, `encode.rs`, `decode.rs`), a variant
//! here with its arm in each method, and its keys in `spec/format.rs`.

pub mod compression;
pub mod csv;
pub mod decode;
pub mod description;
pub mod encode;
pub mod jsonl;

pub use self::compression::Compression;
pub use self::csv::{CsvFormat, QuoteStyle};
pub use self::decode::{DecodeError, Decoder, Row};
pub use self::description::{FormatDescription, DEFAULT_MAX_FILE_SIZE};
pub use self::encode::{EncodeProblem, Encoder};
pub use self::jsonl::JsonFormat;

use self::csv::{CsvDecoder, CsvEncoder};
use self::jsonl::{JsonLinesDecoder, JsonLinesEncoder};
use crate::value::Column;

/// A manifest's format this build cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFormat {
    Csv(CsvFormat),
    JsonLines(JsonFormat),
}

impl FileFormat {
    pub fn compression(&self) -> Compression {
        match self {
            FileFormat::Csv(f) => f.compression,
            FileFormat::JsonLines(f) => f.compression,
        }
    }

    pub fn max_file_size(&self) -> u64 {
        match self {
            FileFormat::Csv(f) => f.max_file_size,
            FileFormat::JsonLines(f) => f.max_file_size,
        }
    }

    /// The part file extension, compression suffix included: `csv.gz`, `jsonl`.
    pub fn extension(&self) -> String {
        let base = match self {
            FileFormat::Csv(_) => "csv",
            FileFormat::JsonLines(_) => "jsonl",
        };
        format!("{base}{}", self.compression().suffix())
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            FileFormat::Csv(_) => "text/csv",
            FileFormat::JsonLines(_) => "application/x-ndjson",
        }
    }

    /// The encoder that writes this format's parts.
    pub fn encoder(&self, columns: &[Column]) -> Box<dyn Encoder> {
        match self {
            FileFormat::Csv(f) => Box::new(CsvEncoder::new(f.clone())),
            FileFormat::JsonLines(_) => Box::new(JsonLinesEncoder::new(columns)),
        }
    }

    /// The decoder that reads this format's parts back (decompressed) into rows.
    pub fn decoder(&self) -> Box<dyn Decoder> {
        match self {
            FileFormat::Csv(f) => Box::new(CsvDecoder::new(f.clone())),
            FileFormat::JsonLines(_) => Box::new(JsonLinesDecoder::new()),
        }
    }

    /// The options as the manifest records them, so a consumer can read the parts.
    pub fn describe(&self) -> FormatDescription {
        match self {
            FileFormat::Csv(f) => FormatDescription {
                kind: "csv".into(),
                delimiter: Some((f.delimiter as char).to_string()),
                header: Some(f.header),
                quote: Some(f.quote.map(|q| (q as char).to_string()).unwrap_or_default()),
                quote_style: Some(match f.quote_style {
                    QuoteStyle::Needed => "needed".into(),
                    QuoteStyle::Always => "always".into(),
                }),
                null: Some(f.null.clone()),
                null_if: Some(f.null_if.clone()),
                empty_field_as_null: Some(f.empty_field_as_null),
                record_terminator: Some(f.record_terminator.clone()),
                compression: f.compression.name().into(),
                max_file_size: f.max_file_size,
            },
            FileFormat::JsonLines(f) => FormatDescription {
                kind: "jsonl".into(),
                delimiter: None,
                header: None,
                quote: None,
                quote_style: None,
                null: None,
                null_if: None,
                empty_field_as_null: None,
                record_terminator: None,
                compression: f.compression.name().into(),
                max_file_size: f.max_file_size,
            },
        }
    }

    /// The format a manifest describes, for reading its parts: the reverse of
    /// [`describe`](Self::describe). Options a manifest leaves out take the reference dialect's values; the
    /// compression level, which only writing needs, is the default.
    pub fn from_description(d: &FormatDescription) -> Result<FileFormat, FormatError> {
        let compression = Compression::from_name(&d.compression)
            .ok_or_else(|| FormatError(format!("unknown compression {:?}", d.compression)))?;
        let byte = |name: &str, v: &Option<String>, default: u8| -> Result<Option<u8>, FormatError> {
            match v.as_deref() {
                None => Ok(Some(default)),
                Some("") => Ok(None),
                Some(s) if s.len() == 1 => Ok(Some(s.as_bytes()[0])),
                Some(s) => Err(FormatError(format!("{name} {s:?} is not one byte"))),
            }
        };
        match d.kind.as_str() {
            "csv" => Ok(FileFormat::Csv(CsvFormat {
                delimiter: byte("delimiter", &d.delimiter, b'|')?
                    .ok_or_else(|| FormatError("empty delimiter".into()))?,
                header: d.header.unwrap_or(true),
                quote: byte("quote", &d.quote, b'"')?,
                quote_style: match d.quote_style.as_deref() {
                    None | Some("needed") => QuoteStyle::Needed,
                    Some("always") => QuoteStyle::Always,
                    Some(other) => return Err(FormatError(format!("unknown quote_style {other:?}"))),
                },
                null: d.null.clone().unwrap_or_default(),
                null_if: d.null_if.clone().unwrap_or_default(),
                empty_field_as_null: d.empty_field_as_null.unwrap_or(true),
                record_terminator: d.record_terminator.clone().unwrap_or_else(|| "\n".into()),
                compression,
                max_file_size: d.max_file_size,
            })),
            "jsonl" => Ok(FileFormat::JsonLines(JsonFormat { compression, max_file_size: d.max_file_size })),
            other => Err(FormatError(format!("unknown kind {other:?}"))),
        }
    }
}
