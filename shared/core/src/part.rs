//! Rolling parts: encoded rows go into `part-00000.<ext>`, `part-00001.<ext>`, … of a run's
//! folder, each at most `max_file_size` bytes as stored (a part exceeds it only when a single
//! row does), compressed on the way and checksummed as written. Memory stays bounded: encoded
//! bytes are handed to the store in chunks of `CHUNK` bytes.

use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::Write;

use crate::error::BoxError;
use crate::format::encode::{EncodeProblem, Encoder};
use crate::format::{Compression, FileFormat};
use crate::layout::RunFolder;
use crate::manifest::PartInfo;
use crate::ports::{ObjectMeta, ObjectStore, ObjectWriter};
use crate::value::{Column, RowBatch};

/// Encoded bytes are compressed and handed to the store in chunks of about this size.
pub const CHUNK: usize = 1024 * 1024;
/// Input a compressor may hold before it emits output (deflate's block buffer is smaller; zstd's
/// workers each hold a job of `ZSTD_JOB` and one more is being filled); counted at full size when
/// deciding whether a row still fits a part.
const COMPRESSOR_SLACK: u64 = 4 * ZSTD_JOB;
/// The input each of zstd's worker threads compresses at once.
const ZSTD_JOB: u64 = 1024 * 1024;

/// How many threads compress beside the one encoding: every core (the encoding thread mostly
/// waits on the source, and a compressor keeps a core busy).
fn compress_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8)
}
/// Framing a compressor adds when it finishes (gzip header and trailer, zstd frame and blocks).
const FRAME_OVERHEAD: u64 = 64;

/// Why writing parts failed.
#[derive(Debug)]
pub enum PartError {
    /// A value the format cannot hold: the row (within the run, from 1) and column index.
    Encode { row: u64, problem: EncodeProblem },
    /// The store refused a write; `key` is the part being written.
    Store { key: String, source: BoxError },
}

enum Compressor {
    None,
    Gzip(GzipBlocks),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Compressor {
    fn new(c: Compression) -> std::io::Result<Self> {
        Ok(match c {
            Compression::None => Compressor::None,
            Compression::Gzip { level } => Compressor::Gzip(GzipBlocks::new(level)),
            Compression::Zstd { level } => {
                let mut enc = zstd::stream::write::Encoder::new(Vec::with_capacity(CHUNK), level)?;
                // zstd's own threads: one frame, as any reader reads it, compressed on every core.
                let workers = compress_workers();
                if workers > 1 {
                    enc.multithread(workers as u32)?;
                    enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB as u32))?;
                }
                Compressor::Zstd(enc)
            }
        })
    }
}

/// gzip on every core, as pigz writes it: one gzip member whose deflate stream is made of
/// blocks of `CHUNK` bytes compressed apart, each primed with the last 32 KiB of the block
/// before it (so the ratio is one stream's) and ended by a sync flush (so the next starts on a
/// byte boundary), then an empty final block and the trailer with the CRC of the whole. Every
/// gzip reader reads it as one stream. Blocks compress on the part's own worker threads while
/// the next is encoded; at most one per worker is in flight, and they are stored in order.
struct GzipBlocks {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    inflight: VecDeque<tokio::sync::oneshot::Receiver<std::io::Result<Block>>>,
    /// Uncompressed bytes in flight (their compressed size is not known yet).
    inflight_bytes: u64,
    /// The end of the last block pushed: the next one's dictionary.
    tail: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
    header_written: bool,
    /// An input buffer back from a finished block, to encode the next one into.
    spare: Option<Vec<u8>>,
}

/// Deflate's window: what a block may refer back to.
const WINDOW: usize = 32 * 1024;

struct Job {
    input: Vec<u8>,
    dictionary: Vec<u8>,
    done: tokio::sync::oneshot::Sender<std::io::Result<Block>>,
}

struct Block {
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
    /// The input, returned for reuse.
    input: Vec<u8>,
}

/// A gzip header: deflate, no name, no time, unknown OS (as `gzip -n` writes).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty fixed-Huffman block with the final bit set: ends the deflate stream.
const DEFLATE_END: [u8; 2] = [0x03, 0x00];

impl GzipBlocks {
    fn new(level: u32) -> Self {
        // Threads of the part's own, not a shared pool's: their buffers are the part's, and
        // they end with it.
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        let workers = (0..compress_workers())
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let _ = job.done.send(Self::deflate(level, job.input, &job.dictionary));
                })
            })
            .collect();
        GzipBlocks {
            jobs: Some(jobs),
            workers,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            tail: Vec::new(),
            crc: crc32fast::Hasher::new(),
            len: 0,
            header_written: false,
            spare: None,
        }
    }

    /// Raw deflate of one block primed with `dictionary`, ended by a sync flush; its CRC.
    fn deflate(level: u32, input: Vec<u8>, dictionary: &[u8]) -> std::io::Result<Block> {
        let mut c = flate2::Compress::new(flate2::Compression::new(level), false);
        if !dictionary.is_empty() {
            c.set_dictionary(dictionary).map_err(std::io::Error::other)?;
        }
        let mut out = Vec::with_capacity(input.len() / 2 + 4096);
        loop {
            let consumed = c.total_in() as usize;
            c.compress_vec(&input[consumed..], &mut out, flate2::FlushCompress::Sync).map_err(std::io::Error::other)?;
            if c.total_in() as usize == input.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64 * 1024));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&input);
        Ok(Block { deflated: out, crc, len: input.len() as u64, input })
    }

    /// Starts compressing `input`; returns the compressed blocks now due, in order (those
    /// beyond the number of workers wait for the oldest).
    async fn push(&mut self, input: Vec<u8>) -> std::io::Result<Vec<Vec<u8>>> {
        self.inflight_bytes += input.len() as u64;
        let from = input.len().saturating_sub(WINDOW);
        let dictionary = std::mem::replace(&mut self.tail, input[from..].to_vec());
        let (done, result) = tokio::sync::oneshot::channel();
        let gone = || std::io::Error::other("the compressing threads stopped");
        self.jobs.as_ref().ok_or_else(gone)?.send(Job { input, dictionary, done }).map_err(|_| gone())?;
        self.inflight.push_back(result);
        let mut due = Vec::new();
        while self.inflight.len() > self.workers.len() {
            due.push(self.next().await?);
        }
        Ok(due)
    }

    /// The oldest block, compressed, behind the header if it is the first.
    async fn next(&mut self) -> std::io::Result<Vec<u8>> {
        let result = self.inflight.pop_front().expect("a block in flight");
        let block = result.await.map_err(|_| std::io::Error::other("a compressing thread stopped"))??;
        self.inflight_bytes -= block.len;
        self.crc.combine(&block.crc);
        self.len += block.len;
        let mut out = Vec::with_capacity(block.deflated.len() + GZIP_HEADER.len());
        if !std::mem::replace(&mut self.header_written, true) {
            out.extend_from_slice(&GZIP_HEADER);
        }
        out.extend_from_slice(&block.deflated);
        let mut input = block.input;
        input.clear();
        self.spare = Some(input);
        Ok(out)
    }

    /// Every block still in flight, then the end of the stream and the trailer.
    async fn finish(mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while !self.inflight.is_empty() {
            out.extend_from_slice(&self.next().await?);
        }
        if !self.header_written {
            out.extend_from_slice(&GZIP_HEADER);
        }
        out.extend_from_slice(&DEFLATE_END);
        out.extend_from_slice(&self.crc.clone().finalize().to_le_bytes());
        out.extend_from_slice(&(self.len as u32).to_le_bytes());
        Ok(out)
    }
}

impl Drop for GzipBlocks {
    /// The workers end when their queue closes; an aborted part's blocks are dropped.
    fn drop(&mut self) {
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

struct OpenPart {
    key: String,
    writer: Box<dyn ObjectWriter>,
    compressor: Compressor,
    hasher: Sha256,
    rows: u64,
    /// Bytes handed to the writer so far.
    stored: u64,
    /// Uncompressed bytes fed to the compressor so far.
    fed: u64,
}

/// Writes one table's rows of one run as rolling parts in its run folder.
pub struct PartWriter<'a> {
    store: &'a dyn ObjectStore,
    folder: RunFolder,
    extension: String,
    meta: ObjectMeta,
    compression: Compression,
    max_file_size: u64,
    encoder: Box<dyn Encoder>,
    columns: Vec<Column>,
    /// Encoded bytes not yet compressed or stored.
    buf: Vec<u8>,
    current: Option<OpenPart>,
    done: Vec<PartInfo>,
    rows: u64,
}

impl<'a> PartWriter<'a> {
    pub fn new(store: &'a dyn ObjectStore, folder: RunFolder, format: &FileFormat, columns: Vec<Column>) -> Self {
        PartWriter {
            store,
            folder,
            extension: format.extension(),
            meta: ObjectMeta {
                content_type: format.content_type().to_string(),
                content_encoding: format.compression().content_encoding().map(str::to_string),
            },
            compression: format.compression(),
            max_file_size: format.max_file_size(),
            encoder: format.encoder(&columns),
            columns,
            buf: Vec::with_capacity(CHUNK + 64 * 1024),
            current: None,
            done: Vec::new(),
            rows: 0,
        }
    }

    /// The run folder the parts go to.
    pub fn folder(&self) -> &RunFolder {
        &self.folder
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes stored so far (compressed, as the parts hold them), for progress display. Bytes
    /// still buffered are left out: counted before compression, they would make the figure
    /// drop each time the buffer is compressed and written.
    pub fn bytes(&self) -> u64 {
        self.done.iter().map(|p| p.bytes).sum::<u64>() + self.current.as_ref().map_or(0, |p| p.stored)
    }

    pub async fn write_batch(&mut self, batch: &RowBatch) -> Result<(), PartError> {
        for row in 0..batch.rows() {
            if self.current.is_none() {
                self.open().await?;
            }
            let start = self.buf.len();
            self.encoder
                .encode_row(batch, row, &mut self.buf)
                .map_err(|problem| PartError::Encode { row: self.rows + 1, problem })?;
            let part = self.current.as_ref().map_or(0, |p| p.rows);
            if part > 0 && self.projected_size() > self.max_file_size {
                // The row does not fit: close the part without it and start the next with it.
                let row_bytes = self.buf.split_off(start);
                self.close().await?;
                self.open().await?;
                self.buf.extend_from_slice(&row_bytes);
            }
            if let Some(p) = self.current.as_mut() {
                p.rows += 1;
            }
            self.rows += 1;
            if self.buf.len() >= CHUNK {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Closes the open part and returns every part written.
    pub async fn finish(mut self) -> Result<Vec<PartInfo>, PartError> {
        if self.current.is_some() {
            self.close().await?;
        }
        Ok(self.done)
    }

    /// Aborts the open part and deletes the finished ones, so nothing of the run stays behind.
    pub async fn abort(mut self) -> Result<(), BoxError> {
        if let Some(p) = self.current.take() {
            p.writer.abort().await?;
        }
        for part in &self.done {
            self.store.delete(&part.key).await?;
        }
        Ok(())
    }

    /// The size the open part would have if it were closed now.
    fn projected_size(&self) -> u64 {
        let Some(p) = &self.current else { return 0 };
        let pending = self.buf.len() as u64 + self.encoder.buffered();
        match &p.compressor {
            Compressor::None => p.stored + pending,
            // Blocks in flight count at their uncompressed size (an upper bound, bar deflate's
            // few bytes per stored block).
            Compressor::Gzip(blocks) => p.stored + blocks.inflight_bytes + pending + FRAME_OVERHEAD,
            Compressor::Zstd(_) => p.stored + p.fed.min(COMPRESSOR_SLACK) + pending + FRAME_OVERHEAD,
        }
    }

    async fn open(&mut self) -> Result<(), PartError> {
        let key = self.folder.part(self.done.len(), &self.extension);
        let store_err = |source: BoxError| PartError::Store { key: key.clone(), source };
        let writer = self.store.create(&key, &self.meta).await.map_err(store_err)?;
        let compressor = Compressor::new(self.compression).map_err(|e| store_err(e.into()))?;
        self.current = Some(OpenPart { key, writer, compressor, hasher: Sha256::new(), rows: 0, stored: 0, fed: 0 });
        self.encoder.begin_part(&self.columns, &mut self.buf);
        Ok(())
    }

    /// Moves the buffer through the compressor into the store. Both buffers are reused: memory
    /// stays the same however many chunks a part has.
    async fn flush(&mut self) -> Result<(), PartError> {
        let Some(p) = self.current.as_mut() else { return Ok(()) };
        let compress_err = |key: &str, e: std::io::Error| PartError::Store { key: key.to_string(), source: e.into() };
        match &mut p.compressor {
            Compressor::None => {
                store_chunk(p, &self.buf).await?;
                self.buf.clear();
            }
            Compressor::Gzip(blocks) => {
                if self.buf.is_empty() {
                    return Ok(());
                }
                // The buffer goes to a worker whole; encoding goes on in a buffer a finished
                // block gave back (at most workers + 1 buffers live).
                let next = blocks.spare.take().unwrap_or_else(|| Vec::with_capacity(CHUNK + 64 * 1024));
                let input = std::mem::replace(&mut self.buf, next);
                p.fed += input.len() as u64;
                let due = blocks.push(input).await.map_err(|e| compress_err(&p.key, e))?;
                for out in due {
                    store_chunk(p, &out).await?;
                }
            }
            Compressor::Zstd(enc) => {
                enc.write_all(&self.buf).map_err(|e| compress_err(&p.key, e))?;
                p.fed += self.buf.len() as u64;
                self.buf.clear();
                let out = std::mem::take(enc.get_mut());
                let stored = store_chunk(p, &out).await;
                if let Compressor::Zstd(enc) = &mut p.compressor {
                    *enc.get_mut() = out;
                    enc.get_mut().clear();
                }
                stored?;
            }
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), PartError> {
        self.encoder.end_part(&mut self.buf);
        self.flush().await?;
        let Some(mut p) = self.current.take() else { return Ok(()) };
        let compressor = std::mem::replace(&mut p.compressor, Compressor::None);
        let tail = match compressor {
            Compressor::None => Ok(Vec::new()),
            Compressor::Gzip(blocks) => blocks.finish().await,
            Compressor::Zstd(enc) => enc.finish(),
        };
        let tail = match tail {
            Ok(t) => t,
            Err(e) => {
                let key = p.key.clone();
                let _ = p.writer.abort().await;
                return Err(PartError::Store { key, source: e.into() });
            }
        };
        if let Err(e) = store_chunk(&mut p, &tail).await {
            let _ = p.writer.abort().await;
            return Err(e);
        }
        let OpenPart { key, writer, hasher, rows, stored, .. } = p;
        writer.finish().await.map_err(|source| PartError::Store { key: key.clone(), source })?;
        self.done.push(PartInfo { key, rows, bytes: stored, sha256: Some(hex::encode(hasher.finalize())) });
        Ok(())
    }
}

async fn store_chunk(p: &mut OpenPart, chunk: &[u8]) -> Result<(), PartError> {
    if chunk.is_empty() {
        return Ok(());
    }
    p.hasher.update(chunk);
    p.stored += chunk.len() as u64;
    p.writer.write(chunk).await.map_err(|source| PartError::Store { key: p.key.clone(), source })
}
