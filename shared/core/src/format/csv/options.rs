//! The CSV options: the dialect and how parts are sized and compressed.

use crate::format::compression::Compression;

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
            max_file_size: crate::format::description::DEFAULT_MAX_FILE_SIZE,
        }
    }
}
