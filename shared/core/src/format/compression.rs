//! Compression of a part as stored: the writer compresses as it goes, readers decompress by the
//! name the manifest records. Formats that compress on their own (a columnar format's pages)
//! take `Compression::None` here.

use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip { level: u32 },
    Zstd { level: i32 },
}

impl Compression {
    /// The suffix after the format's extension (`.gz`, `.zst`).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip { .. } => ".gz",
            Compression::Zstd { .. } => ".zst",
        }
    }

    /// The HTTP `Content-Encoding` an object store should record.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip { .. } => Some("gzip"),
            Compression::Zstd { .. } => Some("zstd"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip { .. } => "gzip",
            Compression::Zstd { .. } => "zstd",
        }
    }
}

impl Compression {
    /// The compression a manifest names (`"none"`, `"gzip"`, `"zstd"`), at its default level.
    pub fn from_name(name: &str) -> Option<Compression> {
        match name {
            "none" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip { level: 6 }),
            "zstd" => Some(Compression::Zstd { level: 3 }),
            _ => None,
        }
    }

    /// A reader of `stored`'s decompressed bytes. Gzip is read multi-member aware: a part is one
    /// member, but concatenations stay readable.
    pub fn decompress<'a>(self, stored: impl Read + 'a) -> std::io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(stored),
            Compression::Gzip { .. } => Box::new(flate2::read::MultiGzDecoder::new(stored)),
            Compression::Zstd { .. } => Box::new(zstd::stream::read::Decoder::new(stored)?),
        })
    }
}
