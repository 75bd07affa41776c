//! Reading a run's parts back, as the manifest describes them: decompressed as they stream,
//! checked against the manifest's row count and checksum, and decoded by the format's own
//! decoder into rows of JSON values in the manifest's column order.

use sha2::{Digest, Sha256};
use std::io::{BufReader, Read};

pub use crate::format::decode::Row;
use crate::format::decode::{DecodeError, Decoder};
use crate::format::jsonl::JsonLinesDecoder;
use crate::format::{Compression, FileFormat, FormatDescription};
use crate::manifest::PartInfo;
use crate::value::Column;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("part {key}: {problem}; the part does not match its manifest (was it changed after the run?)")]
    Corrupt { key: String, problem: String },
    #[error("part {key}: reading failed")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the manifest's format cannot be read: {0}")]
    Format(String),
}

/// The format kind of a failures file read back as a part.
pub const FAILURES_KIND: &str = "failures";

/// How a manifest's parts are read: by their format, or as a failures file (JSON lines whose
/// `row` holds the row, for `--retry-failures`).
#[derive(Debug, Clone)]
pub enum PartReading {
    Format(FileFormat),
    Failures(Compression),
}

impl PartReading {
    pub fn from_manifest(f: &FormatDescription) -> Result<PartReading, ReadError> {
        if f.kind == FAILURES_KIND {
            let compression = Compression::from_name(&f.compression)
                .ok_or_else(|| ReadError::Format(format!("unknown compression {:?}", f.compression)))?;
            return Ok(PartReading::Failures(compression));
        }
        FileFormat::from_description(f).map(PartReading::Format).map_err(|e| ReadError::Format(e.0))
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        match self {
            PartReading::Format(f) => f.decoder(),
            PartReading::Failures(_) => Box::new(JsonLinesDecoder::within("row")),
        }
    }

    fn compression(&self) -> Compression {
        match self {
            PartReading::Format(f) => f.compression(),
            PartReading::Failures(c) => *c,
        }
    }
}

/// Counts and hashes the stored (compressed) bytes as they pass.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads every row of one part, calling `each` with the row's index within the part. Checks the
/// header, the row count and the checksum the manifest records.
pub fn read_part(
    part: &PartInfo,
    columns: &[Column],
    reading: &PartReading,
    stored: impl Read,
    mut each: impl FnMut(u64, Row) -> bool,
) -> Result<u64, ReadError> {
    let key = &part.key;
    let io = |source| ReadError::Io { key: key.clone(), source };
    let corrupt = |problem: String| ReadError::Corrupt { key: key.clone(), problem };
    let mut hashing = Hashing { inner: stored, hash: Sha256::new() };
    let decoded = reading.compression().decompress(&mut hashing).map_err(io)?;
    let mut input = BufReader::with_capacity(256 * 1024, decoded);
    let mut stopped = false;
    let rows = reading
        .decoder()
        .rows(&mut input, columns, &mut |i, row| {
            let go_on = each(i, row);
            stopped = !go_on;
            go_on
        })
        .map_err(|e| match e {
            DecodeError::Io(source) => io(source),
            DecodeError::Corrupt(problem) => corrupt(problem),
        })?;
    if stopped {
        return Ok(rows);
    }
    // Drain what the decoder did not need (a trailing gzip member boundary) so the hash is whole.
    std::io::copy(&mut input, &mut std::io::sink()).map_err(io)?;
    drop(input);
    if rows != part.rows {
        return Err(corrupt(format!("{rows} rows read, the manifest says {}", part.rows)));
    }
    if let Some(want) = &part.sha256 {
        let got = hex::encode(hashing.hash.finalize());
        if &got != want {
            return Err(corrupt(format!("SHA-256 is {got}, the manifest says {want}")));
        }
    }
    Ok(rows)
}
