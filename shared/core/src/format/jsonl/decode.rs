//! Reading JSON lines parts back: one object per line, its members picked in column order.

use serde_json::Value;
use std::io::BufRead;

use crate::format::decode::{DecodeError, Decoder, Row};
use crate::value::Column;

pub struct JsonLinesDecoder {
    /// The member each line holds the row in, when the row is not the line itself (a failures
    /// file's `row`).
    within: Option<&'static str>,
}

impl JsonLinesDecoder {
    pub fn new() -> Self {
        JsonLinesDecoder { within: None }
    }

    /// Lines whose `member` holds the row, beside other members.
    pub fn within(member: &'static str) -> Self {
        JsonLinesDecoder { within: Some(member) }
    }
}

impl Default for JsonLinesDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for JsonLinesDecoder {
    fn rows(
        &mut self,
        input: &mut dyn BufRead,
        columns: &[Column],
        each: &mut dyn FnMut(u64, Row) -> bool,
    ) -> Result<u64, DecodeError> {
        let mut rows = 0u64;
        let mut line = String::new();
        loop {
            line.clear();
            if input.read_line(&mut line).map_err(DecodeError::Io)? == 0 {
                break;
            }
            let text = line.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                continue;
            }
            let mut obj: serde_json::Map<String, Value> = serde_json::from_str(text)
                .map_err(|e| DecodeError::Corrupt(format!("line {} is not a JSON object: {e}", rows + 1)))?;
            if let Some(member) = self.within {
                obj = match obj.remove(member) {
                    Some(Value::Object(row)) => row,
                    _ => return Err(DecodeError::Corrupt(format!("line {} has no {member:?} object", rows + 1))),
                };
            }
            let row: Row = columns.iter().map(|c| obj.remove(&c.name).unwrap_or(Value::Null)).collect();
            if !each(rows, row) {
                break;
            }
            rows += 1;
        }
        Ok(rows)
    }
}
