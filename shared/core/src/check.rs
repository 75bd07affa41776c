//! The `check` strategy's pieces: a row's key as bytes that sort as the source sorts, a hash of
//! its checked columns, and the state file (every key with its hash, sorted, compressed) that a
//! run leaves for the next one to compare with.
//!
//! A run reads the table ordered by its key and walks the previous state alongside: a merge of
//! two sorted streams, so memory stays flat whatever the table's size. A key only in the table
//! is an insert, one in both with another hash an update, one only in the state a delete. The
//! state is written under the run's own folder before its manifest, and the run's commit makes
//! it the table's watermark (`Watermark::Text(<its key>)`): a run that fails leaves the previous
//! state in force, and its folder (with its state) is removed.
//!
//! The merge needs both sides in one order. The key encoding sorts like SQL's `ORDER BY` for
//! each type (numbers numerically, text and bytes by their bytes, as SQLite's BINARY collation
//! and Snowflake's default do), and the run checks every key is above the one before, so a
//! source that orders otherwise (another collation, a column mixing types) or a key that is not
//! unique fails the run with what to fix rather than producing wrong changes.
//!
//! Hashes are computed here, from the values as read: the run reads every row anyway (the
//! changed ones are exported whole), so hashing in the source's SQL would save no transfer.

use sha2::{Digest, Sha256};

use crate::ports::{ByteStream, ObjectMeta, ObjectStore, ObjectWriter};
use crate::value::{Cell, RowBatch};
use crate::BoxError;

/// The column each exported row of a check table carries: `insert`, `update` or `delete`.
pub const OP_COLUMN: &str = "_sluice_op";
/// The state file's name inside a run's folder.
pub const STATE_FILE: &str = "_sluice_state.bin";
const MAGIC: &[u8] = b"SLUICE-STATE\x01";
/// Uncompressed bytes per block: a reader holds one block at a time.
const BLOCK: usize = 256 * 1024;

/// Where a run's state goes.
pub fn state_key(run_prefix: &str) -> String {
    format!("{run_prefix}/{STATE_FILE}")
}

/// Whether a committed watermark is a check state's key (not a timestamp strategy's value).
pub fn is_state_key(watermark: &str) -> bool {
    watermark.ends_with(&format!("/{STATE_FILE}"))
}

/// Counts of a check run's changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Changes {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    /// Rows read and found unchanged (not exported).
    pub unchanged: u64,
}

impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "+{} ~{} -{}", self.inserts, self.updates, self.deletes)
    }
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

const T_BOOL: u8 = 1;
const T_INT: u8 = 2;
const T_FLOAT: u8 = 3;
const T_NUMBER: u8 = 4;
const T_TEXT: u8 = 5;
const T_BYTES: u8 = 6;

/// Why a row's key cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct NullKey {
    /// The position of the NULL column among the key's columns.
    pub column: usize,
}

fn sortable_f64(v: f64) -> [u8; 8] {
    let bits = v.to_bits();
    let bits = if bits >> 63 == 1 { !bits } else { bits ^ (1 << 63) };
    bits.to_be_bytes()
}

/// Bytes escaped so that a shorter value sorts first: 0 becomes 0,255 and 0,0 ends the value.
fn escaped(v: &[u8], out: &mut Vec<u8>) {
    for &b in v {
        out.push(b);
        if b == 0 {
            out.push(255);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Appends the key of `row` (its cells at `key`) to `out`: bytes that compare as the source
/// orders the key columns, and that [`decode_key`] turns back into the values.
pub fn encode_key(batch: &RowBatch, row: &[Cell], key: &[usize], out: &mut Vec<u8>) -> Result<(), NullKey> {
    for (i, &c) in key.iter().enumerate() {
        match row[c] {
            Cell::Null => return Err(NullKey { column: i }),
            Cell::Bool(b) => out.extend_from_slice(&[T_BOOL, b as u8]),
            Cell::Int(v) => {
                out.push(T_INT);
                out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
            }
            Cell::Float(v) => {
                out.push(T_FLOAT);
                out.extend_from_slice(&sortable_f64(v));
            }
            Cell::Number(s, l) => {
                let text = batch.slice(s, l);
                // Whole numbers (NUMBER(38,0) keys, as a warehouse sends them) sort as integers.
                match std::str::from_utf8(text).ok().and_then(|t| t.parse::<i64>().ok()) {
                    Some(v) => {
                        out.push(T_INT);
                        out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
                    }
                    None => {
                        let v: f64 = std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).unwrap_or(f64::NAN);
                        out.push(T_NUMBER);
                        out.extend_from_slice(&sortable_f64(v));
                        escaped(text, out);
                    }
                }
            }
            Cell::Text(s, l) => {
                out.push(T_TEXT);
                escaped(batch.slice(s, l), out);
            }
            Cell::Bytes(s, l) => {
                out.push(T_BYTES);
                escaped(batch.slice(s, l), out);
            }
        }
    }
    Ok(())
}

/// Reads an escaped value starting at `at`; returns it and the position after its end.
fn unescaped(key: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut v = Vec::new();
    loop {
        match (key.get(at)?, key.get(at + 1)) {
            (0, Some(0)) => return Some((v, at + 2)),
            (0, Some(255)) => {
                v.push(0);
                at += 2;
            }
            (0, _) => return None,
            (&b, _) => {
                v.push(b);
                at += 1;
            }
        }
    }
}

/// Pushes the values of an encoded key onto `out`, one cell per key column; `None` when the
/// bytes are not a key (a damaged state file).
pub fn decode_key(key: &[u8], out: &mut RowBatch) -> Option<()> {
    let mut at = 0;
    while at < key.len() {
        let tag = key[at];
        at += 1;
        match tag {
            T_BOOL => {
                out.push_bool(*key.get(at)? != 0);
                at += 1;
            }
            T_INT => {
                let raw = u64::from_be_bytes(key.get(at..at + 8)?.try_into().ok()?);
                out.push_int((raw ^ (1 << 63)) as i64);
                at += 8;
            }
            T_FLOAT => {
                let bits = u64::from_be_bytes(key.get(at..at + 8)?.try_into().ok()?);
                let bits = if bits >> 63 == 1 { bits ^ (1 << 63) } else { !bits };
                out.push_float(f64::from_bits(bits));
                at += 8;
            }
            T_NUMBER => {
                let (text, next) = unescaped(key, at + 8)?;
                out.push_number(&text);
                at = next;
            }
            T_TEXT | T_BYTES => {
                let (v, next) = unescaped(key, at)?;
                if tag == T_TEXT {
                    out.push_text(&v);
                } else {
                    out.push_bytes(&v);
                }
                at = next;
            }
            _ => return None,
        }
    }
    Some(())
}

/// The hash of `row`'s cells at `columns`: the first 8 bytes of a SHA-256 over each value with
/// its type and length, so no two different rows feed it the same bytes.
pub fn row_hash(batch: &RowBatch, row: &[Cell], columns: &[usize]) -> u64 {
    let mut h = Sha256::new();
    for &c in columns {
        match row[c] {
            Cell::Null => h.update([0u8]),
            Cell::Bool(b) => h.update([T_BOOL, b as u8]),
            Cell::Int(v) => {
                h.update([T_INT]);
                h.update(v.to_le_bytes());
            }
            Cell::Float(v) => {
                h.update([T_FLOAT]);
                h.update(v.to_bits().to_le_bytes());
            }
            Cell::Number(s, l) | Cell::Text(s, l) | Cell::Bytes(s, l) => {
                let tag = match row[c] {
                    Cell::Number(..) => T_NUMBER,
                    Cell::Text(..) => T_TEXT,
                    _ => T_BYTES,
                };
                h.update([tag]);
                h.update(l.to_le_bytes());
                h.update(batch.slice(s, l));
            }
        }
    }
    let digest = h.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

// ---------------------------------------------------------------------------------------------
// The state file
// ---------------------------------------------------------------------------------------------
//
// MAGIC, then blocks: u32 LE uncompressed length, u32 LE compressed length, a zstd frame; then
// an empty block (both lengths 0) and the u64 LE count of entries, so a truncated file is told
// from a short one. Inside a block, each entry is varint(bytes shared with the previous key of
// the block), varint(length of the rest), the rest, and the hash as u64 LE: sorted keys share
// long prefixes, and zstd takes most of what is left but the hashes.

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Writes a state file as the keys arrive (they must ascend).
pub struct StateWriter {
    writer: Box<dyn ObjectWriter>,
    block: Vec<u8>,
    prev: Vec<u8>,
    entries: u64,
    level: i32,
}

impl StateWriter {
    pub async fn create(store: &dyn ObjectStore, key: &str) -> Result<StateWriter, BoxError> {
        let meta = ObjectMeta { content_type: "application/octet-stream".into(), content_encoding: None };
        let mut writer = store.create(key, &meta).await?;
        writer.write(MAGIC).await?;
        Ok(StateWriter { writer, block: Vec::with_capacity(BLOCK + 1024), prev: Vec::new(), entries: 0, level: 3 })
    }

    pub async fn push(&mut self, key: &[u8], hash: u64) -> Result<(), BoxError> {
        let shared = self.prev.iter().zip(key).take_while(|(a, b)| a == b).count();
        put_varint(shared as u64, &mut self.block);
        put_varint((key.len() - shared) as u64, &mut self.block);
        self.block.extend_from_slice(&key[shared..]);
        self.block.extend_from_slice(&hash.to_le_bytes());
        self.prev.clear();
        self.prev.extend_from_slice(key);
        self.entries += 1;
        if self.block.len() >= BLOCK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BoxError> {
        if self.block.is_empty() {
            return Ok(());
        }
        let compressed = zstd::bulk::compress(&self.block, self.level)?;
        let mut head = Vec::with_capacity(8);
        head.extend_from_slice(&(self.block.len() as u32).to_le_bytes());
        head.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        self.writer.write(&head).await?;
        self.writer.write(&compressed).await?;
        self.block.clear();
        // Each block starts afresh, so a reader needs nothing from the one before.
        self.prev.clear();
        Ok(())
    }

    /// Writes the last block and the count; returns (entries, bytes written).
    pub async fn finish(mut self) -> Result<(u64, u64), BoxError> {
        self.flush().await?;
        let mut tail = vec![0u8; 8];
        tail.extend_from_slice(&self.entries.to_le_bytes());
        self.writer.write(&tail).await?;
        let bytes = self.writer.finish().await?;
        Ok((self.entries, bytes))
    }

    pub async fn abort(self) -> Result<(), BoxError> {
        self.writer.abort().await
    }
}

/// Reads a state file entry by entry, one block in memory at a time.
pub struct StateReader {
    key: String,
    stream: ByteStream,
    /// Bytes received and not yet consumed.
    pending: Vec<u8>,
    started: bool,
    block: Vec<u8>,
    at: usize,
    current: Vec<u8>,
    hash: u64,
    has_current: bool,
    entries: u64,
    ended: bool,
}

fn damaged(key: &str, what: &str) -> BoxError {
    format!("the state file {key} is damaged ({what}); run once with --full-refresh to build a new one").into()
}

impl StateReader {
    /// Opens the state at `key` and reads its first entry; a missing file is an error that says
    /// how to recover (its run was committed, so it should be there).
    pub async fn open(store: &dyn ObjectStore, key: &str) -> Result<StateReader, BoxError> {
        let Some(stream) = store.read(key).await? else {
            return Err(format!(
                "the state of the last committed run ({}/{key}) is missing (removed, or expired by the bucket's retention?); \
                 run once with --full-refresh to export every row again and start a new state",
                store.location()
            )
            .into());
        };
        let mut r = StateReader {
            key: key.to_string(),
            stream,
            pending: Vec::new(),
            started: false,
            block: Vec::new(),
            at: 0,
            current: Vec::new(),
            hash: 0,
            has_current: false,
            entries: 0,
            ended: false,
        };
        r.advance().await?;
        Ok(r)
    }

    /// The entry the reader is on, or None at the end.
    pub fn current(&self) -> Option<(&[u8], u64)> {
        self.has_current.then_some((self.current.as_slice(), self.hash))
    }

    /// Ensures `pending` holds at least `n` bytes; false at the end of the stream.
    async fn fill(&mut self, n: usize) -> Result<bool, BoxError> {
        use futures::StreamExt;
        while self.pending.len() < n {
            match self.stream.next().await {
                Some(chunk) => self.pending.extend_from_slice(&chunk?),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Moves to the next entry.
    pub async fn advance(&mut self) -> Result<(), BoxError> {
        if self.at >= self.block.len() && !self.next_block().await? {
            self.has_current = false;
            return Ok(());
        }
        let b = &self.block;
        let mut at = self.at;
        let err = || damaged(&self.key, "an entry runs past its block");
        let shared = get_varint(b, &mut at).ok_or_else(err)? as usize;
        let rest = get_varint(b, &mut at).ok_or_else(err)? as usize;
        if shared > self.current.len() || at + rest + 8 > b.len() {
            return Err(err());
        }
        self.current.truncate(shared);
        self.current.extend_from_slice(&b[at..at + rest]);
        at += rest;
        self.hash = u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes checked above"));
        self.at = at + 8;
        self.has_current = true;
        self.entries += 1;
        Ok(())
    }

    /// Loads the next block; false after the last one (its count checked).
    async fn next_block(&mut self) -> Result<bool, BoxError> {
        if self.ended {
            return Ok(false);
        }
        if !self.started {
            if !self.fill(MAGIC.len()).await? || &self.pending[..MAGIC.len()] != MAGIC {
                return Err(damaged(&self.key, "not a Sluice state file"));
            }
            self.pending.drain(..MAGIC.len());
            self.started = true;
        }
        if !self.fill(8).await? {
            return Err(damaged(&self.key, "it ends before its last block"));
        }
        let raw = u32::from_le_bytes(self.pending[..4].try_into().expect("4 bytes")) as usize;
        let zlen = u32::from_le_bytes(self.pending[4..8].try_into().expect("4 bytes")) as usize;
        if raw == 0 && zlen == 0 {
            if !self.fill(16).await? {
                return Err(damaged(&self.key, "its entry count is cut off"));
            }
            let count = u64::from_le_bytes(self.pending[8..16].try_into().expect("8 bytes"));
            if count != self.entries {
                return Err(damaged(&self.key, &format!("it says {count} entries and holds {}", self.entries)));
            }
            self.ended = true;
            return Ok(false);
        }
        if raw > 64 * BLOCK || !self.fill(8 + zlen).await? {
            return Err(damaged(&self.key, "a block is cut off"));
        }
        self.block = zstd::bulk::decompress(&self.pending[8..8 + zlen], raw)
            .map_err(|e| damaged(&self.key, &format!("a block does not decompress: {e}")))?;
        self.pending.drain(..8 + zlen);
        self.at = 0;
        self.current.clear();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(batch: &RowBatch, cols: &[usize]) -> Vec<u8> {
        let mut k = Vec::new();
        encode_key(batch, batch.row(0), cols, &mut k).unwrap();
        k
    }

    fn one(push: impl FnOnce(&mut RowBatch)) -> Vec<u8> {
        let mut b = RowBatch::new(1);
        push(&mut b);
        key_of(&b, &[0])
    }

    #[test]
    fn keys_sort_as_sql_orders_each_type_and_decode_back() {
        let ints: Vec<Vec<u8>> =
            [i64::MIN, -5, -1, 0, 1, 7, i64::MAX].iter().map(|&v| one(|b| b.push_int(v))).collect();
        assert!(ints.windows(2).all(|w| w[0] < w[1]));
        let floats: Vec<Vec<u8>> =
            [f64::NEG_INFINITY, -2.5, -0.1, 0.0, 0.1, 3.0].iter().map(|&v| one(|b| b.push_float(v))).collect();
        assert!(floats.windows(2).all(|w| w[0] < w[1]));
        let texts: Vec<Vec<u8>> =
            ["", "a", "a\0", "a\0b", "ab", "b", "é"].iter().map(|t| one(|b| b.push_text(t.as_bytes()))).collect();
        assert!(texts.windows(2).all(|w| w[0] < w[1]), "{texts:?}");
        // A warehouse's whole NUMBER sorts numerically, like an integer.
        assert!(one(|b| b.push_number(b"9")) < one(|b| b.push_number(b"10")));
        assert_eq!(one(|b| b.push_number(b"42")), one(|b| b.push_int(42)));

        // Composite keys: by the first column, then the second.
        let mut b = RowBatch::new(2);
        for (x, y) in [("a", 2), ("a", 10), ("ab", 1)] {
            b.push_text(x.as_bytes());
            b.push_int(y);
        }
        let keys: Vec<Vec<u8>> = (0..3)
            .map(|r| {
                let mut k = Vec::new();
                encode_key(&b, b.row(r), &[0, 1], &mut k).unwrap();
                k
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let mut back = RowBatch::new(2);
        decode_key(&keys[1], &mut back).unwrap();
        assert_eq!(back.row(0)[1], Cell::Int(10));
        assert!(matches!(back.row(0)[0], Cell::Text(s, l) if back.slice(s, l) == b"a"));
        let mut back = RowBatch::new(1);
        decode_key(&one(|b| b.push_number(b"1.50")), &mut back).unwrap();
        assert!(matches!(back.row(0)[0], Cell::Number(s, l) if back.slice(s, l) == b"1.50"));
        assert!(decode_key(&[99, 1, 2], &mut RowBatch::new(1)).is_none());

        let mut nulls = RowBatch::new(2);
        nulls.push_int(1);
        nulls.push_null();
        assert_eq!(encode_key(&nulls, nulls.row(0), &[0, 1], &mut Vec::new()), Err(NullKey { column: 1 }));
    }

    #[test]
    fn the_hash_tells_values_types_and_boundaries_apart() {
        let hash = |push: &dyn Fn(&mut RowBatch)| {
            let mut b = RowBatch::new(2);
            push(&mut b);
            row_hash(&b, b.row(0), &[0, 1])
        };
        let ab = hash(&|b| {
            b.push_text(b"ab");
            b.push_text(b"c");
        });
        let a_bc = hash(&|b| {
            b.push_text(b"a");
            b.push_text(b"bc");
        });
        let null = hash(&|b| {
            b.push_text(b"ab");
            b.push_null();
        });
        let empty = hash(&|b| {
            b.push_text(b"ab");
            b.push_text(b"");
        });
        assert!(ab != a_bc && null != empty && ab != null);
        let again = hash(&|b| {
            b.push_text(b"ab");
            b.push_text(b"c");
        });
        assert_eq!(ab, again, "stable");
    }
}
