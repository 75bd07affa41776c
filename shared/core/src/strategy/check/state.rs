//! The `check` strategy's state file: every key of a run with its hash, sorted, compressed in
//! blocks, that the run leaves for the next one to compare with.
//!
//! A run reads the table ordered by its key and walks the previous state alongside: a merge of
//! two sorted streams, so memory stays flat whatever the table's size. A key only in the table
//! is an insert, one in both with another hash an update, one only in the state a delete. The
//! state is written under the run's own folder before its manifest, and the run's commit makes
//! it the table's cursor (`Cursor::CheckState(<its key>)`): a run that fails leaves the previous
//! state in force, and its folder (with its state) is removed.

use crate::ports::{ByteStream, ObjectMeta, ObjectStore, ObjectWriter};
use crate::BoxError;

const MAGIC: &[u8] = b"SLUICE-STATE\x01";
/// Uncompressed bytes per block: a reader holds one block at a time.
const BLOCK: usize = 256 * 1024;

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
