//! A format as a manifest records it: what a consumer needs to read the parts back, in words
//! any reader understands. `FileFormat::describe` writes one and `FileFormat::from_description`
//! reads one back.

use serde::{Deserialize, Serialize};

/// Parts roll over at this size unless `max_file_size` says otherwise (as in the design card).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

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
