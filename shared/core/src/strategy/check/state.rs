//! The `check` strategy's state: a row's key as bytes that sort as the source sorts, a hash of
//! its checked columns, and the state file (every key with its hash, sorted, compressed) that a
//! run leaves for the next one to compare with.
//!
//! A run reads the table ordered by its key and walks the previous state alongside: a merge of
//! two sorted streams, so memory stays flat whatever the table's size. A key only in the table
//! is an insert, one in both with another hash an update, one only in the state a delete. The
//! state is written under the run's own folder before its manifest, and the run's commit makes
//! it the table's cursor (`Cursor::CheckState(<its key>)`): a run that fails leaves the previous
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

const MAGIC: &[u8] = b"SLUICE-STATE\x01";
/// Uncompressed bytes per block: a reader holds one block at a time.
const BLOCK: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

const T_BOOL: u8 = 1;
/// Every number (integer, float, exact NUMBER text) shares one tag and one encoding of its
/// value, so they sort together as SQL compares numbers across storage classes (SQLite stores
/// 1 and 1.5 of a NUMERIC column as an integer and a real; a warehouse may send a FLOAT's whole
/// values as integers). What follows the value says how to give it back.
const T_NUM: u8 = 2;
const T_TEXT: u8 = 5;
const T_BYTES: u8 = 6;
/// How a number was read, after its value: to decode it as the same kind of cell.
const N_INT: u8 = 1;
const N_FLOAT: u8 = 2;
const N_TEXT: u8 = 3;

/// Why a row's key cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct NullKey {
    /// The position of the NULL column among the key's columns.
    pub column: usize,
}

/// A number's sign, decimal digits (no leading or trailing zeros) and the power of ten of the
/// first digit: `-12.50` is (negative, "125", 1). None when `text` is not a finite decimal.
fn decimal(text: &str) -> Option<(bool, Vec<u8>, i32)> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let Some(first) = digits.iter().position(|&d| d != b'0') else {
        return Some((false, Vec::new(), 0)); // zero, whatever its sign
    };
    let last = digits.iter().rposition(|&d| d != b'0').expect("a non-zero digit exists");
    let power = (int.len() as i32 - 1 - first as i32).checked_add(exp)?;
    Some((negative, digits[first..=last].to_vec(), power))
}

/// Appends a number's value so that byte order is numeric order: a class byte (negative, zero,
/// positive; infinities around them), then for non-zero values the power of ten and the digits
/// ended by a byte below every digit, all inverted when negative.
fn push_sortable_number(negative: bool, digits: &[u8], power: i32, out: &mut Vec<u8>) {
    if digits.is_empty() {
        out.push(2);
        return;
    }
    let mut body = Vec::with_capacity(digits.len() + 5);
    body.extend_from_slice(&((power as u32) ^ (1 << 31)).to_be_bytes());
    body.extend_from_slice(digits);
    body.push(0);
    if negative {
        out.push(1);
        out.extend(body.iter().map(|b| !b));
    } else {
        out.push(3);
        out.extend_from_slice(&body);
    }
}

fn push_float_value(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.push(5);
    } else if v.is_infinite() {
        out.push(if v < 0.0 { 0 } else { 4 });
    } else {
        // A whole float by its exact digits (above 2^53 the shortest text that reads back as
        // `v` is rounded, and an integer could fall between); a fraction by that shortest text,
        // which no integer can fall within (its rounding interval is narrower than 1/2).
        let text = if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:e}") };
        let (negative, digits, power) = decimal(&text).expect("a finite float prints as a decimal");
        push_sortable_number(negative, &digits, power, out);
    }
}

/// Skips a number's value written by `push_sortable_number`; returns the position after it.
fn skip_number_value(key: &[u8], at: usize) -> Option<usize> {
    match *key.get(at)? {
        0 | 2 | 4 | 5 => Some(at + 1),
        class @ (1 | 3) => {
            let end = if class == 1 { 0xFF } else { 0 };
            let digits = key.get(at + 5..)?;
            Some(at + 5 + digits.iter().position(|&b| b == end)? + 1)
        }
        _ => None,
    }
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
                out.push(T_NUM);
                let (_, digits, power) = decimal(&v.unsigned_abs().to_string()).expect("an integer is a decimal");
                push_sortable_number(v < 0, &digits, power, out);
                out.push(N_INT);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Cell::Float(v) => {
                out.push(T_NUM);
                push_float_value(v, out);
                out.push(N_FLOAT);
                out.extend_from_slice(&v.to_bits().to_be_bytes());
            }
            Cell::Number(s, l) => {
                let text = batch.slice(s, l);
                out.push(T_NUM);
                match std::str::from_utf8(text).ok().and_then(decimal) {
                    Some((negative, digits, power)) => push_sortable_number(negative, &digits, power, out),
                    // Not a decimal (a warehouse's "inf" or "NaN"): as a float would sort.
                    None => push_float_value(
                        std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).unwrap_or(f64::NAN),
                        out,
                    ),
                }
                out.push(N_TEXT);
                escaped(text, out);
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

/// Pushes the values of an encoded key onto `out`, one cell per key column; returns how many;
/// `None` when the bytes are not a key (a damaged state file).
pub fn decode_key(key: &[u8], out: &mut RowBatch) -> Option<usize> {
    let mut at = 0;
    let mut cells = 0;
    while at < key.len() {
        cells += 1;
        let tag = key[at];
        at += 1;
        match tag {
            T_BOOL => {
                out.push_bool(*key.get(at)? != 0);
                at += 1;
            }
            T_NUM => {
                at = skip_number_value(key, at)?;
                let kind = *key.get(at)?;
                at += 1;
                match kind {
                    N_INT => {
                        out.push_int(i64::from_be_bytes(key.get(at..at.checked_add(8)?)?.try_into().ok()?));
                        at += 8;
                    }
                    N_FLOAT => {
                        out.push_float(f64::from_bits(u64::from_be_bytes(
                            key.get(at..at.checked_add(8)?)?.try_into().ok()?,
                        )));
                        at += 8;
                    }
                    N_TEXT => {
                        let (text, next) = unescaped(key, at)?;
                        out.push_number(&text);
                        at = next;
                    }
                    _ => return None,
                }
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
    Some(cells)
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
                h.update([T_NUM, N_INT]);
                h.update(v.to_le_bytes());
            }
            Cell::Float(v) => {
                h.update([T_NUM, N_FLOAT]);
                h.update(v.to_bits().to_le_bytes());
            }
            Cell::Number(s, l) | Cell::Text(s, l) | Cell::Bytes(s, l) => {
                let tag = match row[c] {
                    Cell::Number(..) => N_TEXT,
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

/// What a state was built from: a state is only comparable with rows keyed and hashed alike.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateMeta {
    pub key: Vec<String>,
    pub columns: Vec<String>,
    /// The hash: `sha256-64` (the first 8 bytes of a SHA-256, see `row_hash`).
    pub hash: String,
}

impl StateMeta {
    pub fn new(key: &[String], columns: &[String]) -> StateMeta {
        StateMeta { key: key.to_vec(), columns: columns.to_vec(), hash: "sha256-64".into() }
    }
}

/// Writes a state file as the keys arrive (they must ascend).
pub struct StateWriter {
    writer: Box<dyn ObjectWriter>,
    block: Vec<u8>,
    prev: Vec<u8>,
    entries: u64,
    compressor: zstd::bulk::Compressor<'static>,
}

impl StateWriter {
    pub async fn create(store: &dyn ObjectStore, key: &str, meta: &StateMeta) -> Result<StateWriter, BoxError> {
        let mut compressor = zstd::bulk::Compressor::new(3)?;
        // A checksum per block: damage that still decompresses is caught, not merged.
        compressor.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(true))?;
        let object = ObjectMeta { content_type: "application/octet-stream".into(), content_encoding: None };
        let mut writer = store.create(key, &object).await?;
        let header = serde_json::to_vec(meta)?;
        writer.write(MAGIC).await?;
        writer.write(&(header.len() as u32).to_le_bytes()).await?;
        writer.write(&header).await?;
        Ok(StateWriter { writer, block: Vec::with_capacity(BLOCK + 1024), prev: Vec::new(), entries: 0, compressor })
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
        let compressed = self.compressor.compress(&self.block)?;
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
    meta: StateMeta,
    block: Vec<u8>,
    at: usize,
    /// The entry before `current`: keys must ascend, across blocks too.
    last: Vec<u8>,
    current: Vec<u8>,
    hash: u64,
    has_current: bool,
    entries: u64,
    ended: bool,
}

/// The largest block a reader accepts, compressed or not (a writer's are at most a block and
/// one entry; anything far larger is damage, not data).
const MAX_BLOCK: usize = 64 * BLOCK;

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
            meta: StateMeta::new(&[], &[]),
            block: Vec::new(),
            at: 0,
            last: Vec::new(),
            current: Vec::new(),
            hash: 0,
            has_current: false,
            entries: 0,
            ended: false,
        };
        if !r.fill(MAGIC.len() + 4).await? || &r.pending[..MAGIC.len()] != MAGIC {
            return Err(damaged(key, "not a Sluice state file"));
        }
        let len = u32::from_le_bytes(r.pending[MAGIC.len()..MAGIC.len() + 4].try_into().expect("4 bytes")) as usize;
        let start = MAGIC.len() + 4;
        if len > 1 << 20 || !r.fill(start + len).await? {
            return Err(damaged(key, "its header is cut off"));
        }
        r.meta = serde_json::from_slice(&r.pending[start..start + len])
            .map_err(|e| damaged(key, &format!("its header is not readable: {e}")))?;
        r.pending.drain(..start + len);
        r.advance().await?;
        Ok(r)
    }

    /// What the state was built from.
    pub fn meta(&self) -> &StateMeta {
        &self.meta
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
        let block_start = self.at == 0;
        let mut at = self.at;
        let err = || damaged(&self.key, "an entry runs past its block");
        let shared = get_varint(b, &mut at).ok_or_else(err)? as usize;
        let rest = get_varint(b, &mut at).ok_or_else(err)? as usize;
        let end = at.checked_add(rest).and_then(|e| e.checked_add(8)).ok_or_else(err)?;
        // Shared bytes come from the key before, within the block only.
        if (block_start && shared != 0) || shared > self.current.len() || end > b.len() {
            return Err(err());
        }
        std::mem::swap(&mut self.last, &mut self.current);
        self.current.clear();
        self.current.extend_from_slice(&self.last[..shared]);
        self.current.extend_from_slice(&b[at..at + rest]);
        if self.entries > 0 && self.current <= self.last {
            return Err(damaged(&self.key, "its keys do not ascend"));
        }
        self.hash = u64::from_le_bytes(b[end - 8..end].try_into().expect("8 bytes checked above"));
        self.at = end;
        self.has_current = true;
        self.entries += 1;
        Ok(())
    }

    /// Loads the next block; false after the last one (its count checked).
    async fn next_block(&mut self) -> Result<bool, BoxError> {
        if self.ended {
            return Ok(false);
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
        if raw > MAX_BLOCK || zlen > MAX_BLOCK {
            return Err(damaged(&self.key, "a block's length is out of bounds"));
        }
        if !self.fill(8 + zlen).await? {
            return Err(damaged(&self.key, "a block is cut off"));
        }
        self.block = zstd::bulk::decompress(&self.pending[8..8 + zlen], raw)
            .map_err(|e| damaged(&self.key, &format!("a block does not decompress: {e}")))?;
        if self.block.len() != raw {
            return Err(damaged(&self.key, "a block is shorter than it says"));
        }
        self.pending.drain(..8 + zlen);
        self.at = 0;
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
        // Numbers of every kind sort together by value, as SQL compares them.
        let mixed: Vec<Vec<u8>> = vec![
            one(|b| b.push_number(b"-1e+30")),
            one(|b| b.push_int(i64::MIN)),
            one(|b| b.push_number(b"-1.23")),
            one(|b| b.push_number(b"-1.2")),
            one(|b| b.push_int(-1)),
            one(|b| b.push_float(-0.5)),
            one(|b| b.push_number(b"0.000")),
            one(|b| b.push_number(b"0.001")),
            one(|b| b.push_int(1)),
            one(|b| b.push_float(1.5)),
            one(|b| b.push_number(b"2")),
            one(|b| b.push_int(3)),
            one(|b| b.push_number(b"12.50")),
            one(|b| b.push_int(i64::MAX)),
            one(|b| b.push_number(b"123456789012345678901234567890")),
            one(|b| b.push_float(f64::INFINITY)),
        ];
        for w in mixed.windows(2) {
            assert!(w[0] < w[1], "{:?} < {:?}", w[0], w[1]);
        }
        let texts: Vec<Vec<u8>> =
            ["", "a", "a\0", "a\0b", "ab", "b", "é"].iter().map(|t| one(|b| b.push_text(t.as_bytes()))).collect();
        assert!(texts.windows(2).all(|w| w[0] < w[1]), "{texts:?}");
        // A warehouse's whole NUMBER sorts numerically, like an integer.
        assert!(one(|b| b.push_number(b"9")) < one(|b| b.push_number(b"10")));
        for push in [
            &(|b: &mut RowBatch| b.push_int(-42)) as &dyn Fn(&mut RowBatch),
            &|b| b.push_float(-0.25),
            &|b| b.push_number(b"-12.50"),
            &|b| b.push_number(b"1e+20"),
        ] {
            let mut orig = RowBatch::new(1);
            push(&mut orig);
            let mut back = RowBatch::new(1);
            decode_key(&key_of(&orig, &[0]), &mut back).unwrap();
            let text = |b: &RowBatch| match b.row(0)[0] {
                Cell::Number(s, l) => String::from_utf8(b.slice(s, l).to_vec()).unwrap(),
                other => format!("{other:?}"),
            };
            assert_eq!(text(&back), text(&orig), "decodes to the same cell");
        }

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
