//! File formats: the validated options of the CSV dialect (the reference file format of a
//! Snowflake unload) and of JSON lines, and their compression.

use serde::{Deserialize, Serialize};

/// Parts roll over at this size unless `max_file_size` says otherwise (as in the design card).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip { level: u32 },
    Zstd { level: i32 },
}

impl Compression {
    /// The suffix after the format's extension (`.gz`, `.zst`).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip { .. } => ".gz",
            Compression::Zstd { .. } => ".zst",
        }
    }

    /// The HTTP `Content-Encoding` an object store should record.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip { .. } => Some("gzip"),
            Compression::Zstd { .. } => Some("zstd"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip { .. } => "gzip",
            Compression::Zstd { .. } => "zstd",
        }
    }
}

/// When a text value is enclosed in quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteStyle {
    /// Only values that need it: the delimiter, the quote, a line break, an empty string (when
    /// empty fields mean NULL) or a value equal to a NULL marker.
    Needed,
    /// Every non-NULL text value.
    Always,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFormat {
    pub delimiter: u8,
    pub header: bool,
    /// The optional enclosing character; a quote inside a value is doubled.
    pub quote: Option<u8>,
    pub quote_style: QuoteStyle,
    /// What a NULL is written as (unquoted).
    pub null: String,
    /// Further strings that readers treat as NULL; text values equal to one are quoted.
    pub null_if: Vec<String>,
    /// An unquoted empty field means NULL, so empty strings are written as `""`.
    pub empty_field_as_null: bool,
    pub record_terminator: String,
    pub compression: Compression,
    pub max_file_size: u64,
}

/// The reference format, as a config with no `format` keys gets it.
impl Default for CsvFormat {
    fn default() -> Self {
        CsvFormat {
            delimiter: b'|',
            header: true,
            quote: Some(b'"'),
            quote_style: QuoteStyle::Needed,
            null: String::new(),
            null_if: Vec::new(),
            empty_field_as_null: true,
            record_terminator: "\n".into(),
            compression: Compression::Gzip { level: 6 },
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFormat {
    pub compression: Compression,
    pub max_file_size: u64,
}

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
}

/// A format as written into a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatDescription {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delimiter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub header: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quote: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quote_style: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub null: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub null_if: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub empty_field_as_null: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub record_terminator: Option<String>,
    pub compression: String,
    pub max_file_size: u64,
}
