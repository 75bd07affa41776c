//! Encoders turn rows into the bytes of a part. They write into a caller's buffer so the part
//! writer can measure each row and roll to the next part without splitting one.

mod csv;
mod jsonl;

pub use self::csv::CsvEncoder;
pub use self::jsonl::JsonLinesEncoder;

use crate::format::FileFormat;
use crate::value::{Column, RowBatch};

/// A value the format cannot represent; the run fails with the row and column named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeProblem {
    pub column: usize,
    pub problem: String,
}

pub trait Encoder: Send {
    /// Writes what starts every part (the CSV header row, or nothing).
    fn begin_part(&mut self, columns: &[Column], out: &mut Vec<u8>);
    /// Appends one row, terminator included.
    fn encode_row(&mut self, batch: &RowBatch, row: usize, out: &mut Vec<u8>) -> Result<(), EncodeProblem>;
}

/// The encoder for a format.
pub fn encoder_for(format: &FileFormat, columns: &[Column]) -> Box<dyn Encoder> {
    match format {
        FileFormat::Csv(f) => Box::new(CsvEncoder::new(f.clone())),
        FileFormat::JsonLines(_) => Box::new(JsonLinesEncoder::new(columns)),
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Binary values are written as upper-case hex, as Snowflake's default BINARY_OUTPUT_FORMAT.
fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}
