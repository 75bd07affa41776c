//! The encoder side of a format. An encoder owns a whole part: what starts it, each row, what
//! ends it. It writes into the part writer's buffer, so the writer can measure each row and roll
//! to the next part without splitting one; a columnar encoder holds its row group and says how
//! much it holds ([`Encoder::buffered`]), then writes the group and, at the end, its footer.

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
    /// Encodes one row: text formats append it, terminator included.
    fn encode_row(&mut self, batch: &RowBatch, row: usize, out: &mut Vec<u8>) -> Result<(), EncodeProblem>;
    /// Writes what ends the part (what the encoder still holds, a footer); text formats have
    /// nothing to add.
    fn end_part(&mut self, _out: &mut Vec<u8>) {}
    /// Bytes the encoder holds for the part and has not written yet, counted toward the part's
    /// size when the writer decides where to roll.
    fn buffered(&self) -> u64 {
        0
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Binary values are written as upper-case hex, as Snowflake's default BINARY_OUTPUT_FORMAT.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}
