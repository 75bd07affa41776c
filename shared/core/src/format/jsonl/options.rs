//! The JSON lines options: how parts are sized and compressed.

use crate::format::compression::Compression;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFormat {
    pub compression: Compression,
    pub max_file_size: u64,
}
