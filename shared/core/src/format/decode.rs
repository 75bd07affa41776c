//! The decoder side of a format: a part's decompressed bytes back into rows of JSON values in
//! the manifest's column order, for integrations and anyone checking what was written.

use serde_json::Value;
use std::io::BufRead;

use crate::value::Column;

/// One row: a value per manifest column, `Null` for NULL. CSV gives strings; JSON lines give
/// whatever JSON the part holds.
pub type Row = Vec<Value>;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("reading failed")]
    Io(#[source] std::io::Error),
    /// The bytes are not what the format and the columns say: the problem, in words.
    #[error("{0}")]
    Corrupt(String),
}

pub trait Decoder: Send {
    /// Reads the rows of one part, calling `each` with the row's index within the part until it
    /// returns `false`; returns the rows read.
    fn rows(
        &mut self,
        input: &mut dyn BufRead,
        columns: &[Column],
        each: &mut dyn FnMut(u64, Row) -> bool,
    ) -> Result<u64, DecodeError>;
}
