//! Rolling parts: encoded rows go into `part-00000.<ext>`, `part-00001.<ext>`, … of a run's
//! folder, each at most `max_file_size` bytes as stored (a part exceeds it only when a single
//! row does), compressed on the way and checksummed as written. Memory stays bounded: encoded
//! bytes are handed to the store in chunks of `CHUNK` bytes.

use sha2::{Digest, Sha256};
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
/// Input a compressor may hold before it emits output (deflate's and zstd's block buffers are
/// smaller); counted at full size when deciding whether a row still fits a part.
const COMPRESSOR_SLACK: u64 = 256 * 1024;
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
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Compressor {
    fn new(c: Compression) -> std::io::Result<Self> {
        Ok(match c {
            Compression::None => Compressor::None,
            Compression::Gzip { level } => Compressor::Gzip(flate2::write::GzEncoder::new(
                Vec::with_capacity(CHUNK),
                flate2::Compression::new(level),
            )),
            Compression::Zstd { level } => {
                Compressor::Zstd(zstd::stream::write::Encoder::new(Vec::with_capacity(CHUNK), level)?)
            }
        })
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
        match p.compressor {
            Compressor::None => p.stored + pending,
            _ => p.stored + p.fed.min(COMPRESSOR_SLACK) + pending + FRAME_OVERHEAD,
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
            Compressor::Gzip(enc) => {
                enc.write_all(&self.buf).map_err(|e| compress_err(&p.key, e))?;
                p.fed += self.buf.len() as u64;
                self.buf.clear();
                let out = std::mem::take(enc.get_mut());
                let stored = store_chunk(p, &out).await;
                if let Compressor::Gzip(enc) = &mut p.compressor {
                    *enc.get_mut() = out;
                    enc.get_mut().clear();
                }
                stored?;
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
            Compressor::Gzip(enc) => enc.finish(),
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
