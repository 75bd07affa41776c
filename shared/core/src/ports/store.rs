//! The object store port: a destination's files (a folder, an S3 bucket and prefix).

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::error::BoxError;

/// What an object is, for stores that record it (S3's Content-Type and Content-Encoding).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectMeta {
    pub content_type: String,
    pub content_encoding: Option<String>,
}

/// An object being written. Nothing is visible under its key until `finish` returns.
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes. Taken by reference so the caller reuses one buffer for the whole part;
    /// an adapter that must hold bytes (an S3 multipart part) copies them into its own.
    async fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError>;
    /// Makes the object visible whole; returns its size.
    async fn finish(self: Box<Self>) -> Result<u64, BoxError>;
    /// Drops what was written; the key stays absent.
    async fn abort(self: Box<Self>) -> Result<(), BoxError>;
}

/// An entity tag from an object's content, for stores that have none of their own (a folder,
/// memory): like S3's ETag, it changes when the object is rewritten with other content.
pub fn content_tag(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(bytes)[..16])
}

/// Keys as a listing finds them.
pub type KeyStream<'a> = BoxStream<'a, Result<String, BoxError>>;

/// An object's bytes as they arrive.
pub type ByteStream = BoxStream<'static, Result<Vec<u8>, BoxError>>;

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Where keys land, for messages and manifests (`/data/exports`, `s3://bucket/prefix`).
    fn location(&self) -> String;
    /// Starts a streaming write to `key`.
    async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn ObjectWriter>, BoxError>;
    /// Writes a small object in one go, atomically.
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), BoxError>;
    /// Reads a small object whole; `None` when absent.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError>;
    /// Reads a small object whole with its entity tag (S3's ETag, a content hash elsewhere), which
    /// changes whenever the object is rewritten.
    async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BoxError>;
    /// Streams an object in chunks, for parts too large to hold; `None` when absent.
    async fn read(&self, key: &str) -> Result<Option<ByteStream>, BoxError>;
    async fn delete(&self, key: &str) -> Result<(), BoxError>;
    /// Deletes every object under `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BoxError>;
    /// Keys under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BoxError>;
    /// The keys `list` gives, in the same order, as they are found: a store with many objects
    /// (a thousand runs of a table) is walked without holding its listing. The default lists
    /// whole; stores that page (S3) or walk folders override it.
    fn list_stream<'a>(&'a self, prefix: &'a str) -> KeyStream<'a> {
        Box::pin(
            futures::stream::once(async move { self.list(prefix).await })
                .map(|listed| match listed {
                    Ok(keys) => futures::stream::iter(keys.into_iter().map(Ok)).left_stream(),
                    Err(e) => futures::stream::iter([Err(e)]).right_stream(),
                })
                .flatten(),
        )
    }
}
