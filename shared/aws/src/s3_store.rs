//! The S3 object store. Objects of up to one part are written with a single PUT; larger ones
//! stream as a multipart upload of `PART_SIZE` parts with at most `MAX_IN_FLIGHT` uploading at
//! once, so memory is about `PART_SIZE * (MAX_IN_FLIGHT + 1)` whatever the object's size. An
//! upload that fails, is aborted or dropped unfinished is aborted in S3, so no orphaned parts
//! are left (the bucket's lifecycle rule for incomplete uploads is the backstop).

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, ServerSideEncryption};
use aws_sdk_s3::Client;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use sluice_core::ports::{ByteStream as Chunks, KeyStream, ObjectMeta, ObjectStore, ObjectWriter};
use sluice_core::BoxError;

use crate::error::{boxed, Error};

/// S3's smallest allowed size for every part of a multipart upload but the last.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The part size this store uploads (above the minimum, so a part is never too small).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploading at once per object.
pub const MAX_IN_FLIGHT: usize = 2;
/// S3's limit on parts per multipart upload.
pub const MAX_PARTS: i32 = 10_000;
/// DeleteObjects takes at most this many keys per call.
const DELETE_BATCH: usize = 1000;

const _: () = assert!(PART_SIZE >= MIN_PART_SIZE);

/// Server-side encryption requested on every object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (AES256, keys managed by S3).
    S3,
    /// SSE-KMS with the given key, or the account's `aws/s3` key.
    Kms { key_id: Option<String> },
}

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    encryption: Option<Encryption>,
}

impl S3Store {
    /// A store under `s3://bucket/prefix` (prefix may be empty).
    pub fn new(client: Client, bucket: &str, prefix: &str, encryption: Option<Encryption>) -> Self {
        S3Store { client, bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string(), encryption }
    }

    /// The key prefix a listing of `prefix` asks S3 for: a folder, with its trailing slash.
    fn list_prefix(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            format!("{}/", self.prefix).trim_start_matches('/').to_string()
        } else {
            format!("{}/", self.full_key(prefix.trim_end_matches('/')))
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn relative<'k>(&self, full: &'k str) -> &'k str {
        if self.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.prefix).map(|k| k.trim_start_matches('/')).unwrap_or(full)
        }
    }

    fn err(&self, op: &'static str, key: &str, source: BoxError) -> Error {
        Error::S3 { op, bucket: self.bucket.clone(), key: key.to_string(), source }
    }
}

fn sse(e: &Option<Encryption>) -> (Option<ServerSideEncryption>, Option<String>) {
    match e {
        None => (None, None),
        Some(Encryption::S3) => (Some(ServerSideEncryption::Aes256), None),
        Some(Encryption::Kms { key_id }) => (Some(ServerSideEncryption::AwsKms), key_id.clone()),
    }
}

/// One `PutObject` with the store's encryption and the object's type and encoding.
async fn put_object(
    client: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    meta: &ObjectMeta,
    encryption: &Option<Encryption>,
) -> Result<(), Error> {
    let (sse, kms) = sse(encryption);
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(&meta.content_type)
        .set_content_encoding(meta.content_encoding.clone())
        .set_server_side_encryption(sse)
        .set_ssekms_key_id(kms)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| Error::S3 {
            op: "PutObject",
            bucket: bucket.to_string(),
            key: key.to_string(),
            source: boxed(e),
        })?;
    Ok(())
}

struct S3Writer {
    client: Client,
    bucket: String,
    key: String,
    meta: ObjectMeta,
    encryption: Option<Encryption>,
    buf: Vec<u8>,
    size: u64,
    upload_id: Option<String>,
    next_part: i32,
    uploading: JoinSet<Result<CompletedPart, Error>>,
    uploaded: Vec<CompletedPart>,
    settled: bool,
}

impl S3Writer {
    fn err(&self, op: &'static str, source: BoxError) -> Error {
        Error::S3 { op, bucket: self.bucket.clone(), key: self.key.clone(), source }
    }

    async fn start_upload(&mut self) -> Result<String, Error> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let (sse, kms) = sse(&self.encryption);
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type(&self.meta.content_type)
            .set_content_encoding(self.meta.content_encoding.clone())
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms)
            .send()
            .await
            .map_err(|e| self.err("CreateMultipartUpload", boxed(e)))?;
        let id = out.upload_id().unwrap_or_default().to_string();
        debug!(key = %self.key, upload_id = %id, "multipart upload started");
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    /// Waits for one upload in flight to finish.
    async fn settle_one(&mut self) -> Result<(), Error> {
        match self.uploading.join_next().await {
            Some(Ok(part)) => {
                self.uploaded.push(part?);
                Ok(())
            }
            Some(Err(join)) => Err(self.err("UploadPart", boxed(join))),
            None => Ok(()),
        }
    }

    async fn send_part(&mut self, body: Vec<u8>) -> Result<(), Error> {
        let upload_id = self.start_upload().await?;
        if self.next_part >= MAX_PARTS {
            return Err(Error::TooManyParts { bucket: self.bucket.clone(), key: self.key.clone(), max: MAX_PARTS });
        }
        while self.uploading.len() >= MAX_IN_FLIGHT {
            self.settle_one().await?;
        }
        self.next_part += 1;
        let number = self.next_part;
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body));
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        self.uploading.spawn(async move {
            let out =
                request.send().await.map_err(|e| Error::S3 { op: "UploadPart", bucket, key, source: boxed(e) })?;
            Ok(CompletedPart::builder().set_e_tag(out.e_tag().map(str::to_string)).part_number(number).build())
        });
        Ok(())
    }

    async fn abort_upload(&mut self) -> Result<(), Error> {
        self.settled = true;
        self.uploading.abort_all();
        while self.uploading.join_next().await.is_some() {}
        if let Some(id) = self.upload_id.take() {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&id)
                .send()
                .await
                .map_err(|e| self.err("AbortMultipartUpload", boxed(e)))?;
            debug!(key = %self.key, upload_id = %id, "multipart upload aborted");
        }
        Ok(())
    }

    async fn complete(&mut self) -> Result<u64, Error> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = std::mem::take(&mut self.buf);
            put_object(&self.client, &self.bucket, &self.key, body, &self.meta, &self.encryption).await?;
            self.settled = true;
            return Ok(self.size);
        };
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.send_part(last).await?;
        }
        while !self.uploading.is_empty() {
            self.settle_one().await?;
        }
        self.uploaded.sort_by_key(|p| p.part_number());
        let parts = CompletedMultipartUpload::builder().set_parts(Some(std::mem::take(&mut self.uploaded))).build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .multipart_upload(parts)
            .send()
            .await
            .map_err(|e| self.err("CompleteMultipartUpload", boxed(e)))?;
        self.settled = true;
        self.upload_id = None;
        Ok(self.size)
    }
}

#[async_trait]
impl ObjectWriter for S3Writer {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError> {
        self.buf.extend_from_slice(chunk);
        self.size += chunk.len() as u64;
        while self.buf.len() >= PART_SIZE {
            let rest = self.buf.split_off(PART_SIZE);
            let part = std::mem::replace(&mut self.buf, rest);
            if let Err(e) = self.send_part(part).await {
                let _ = self.abort_upload().await;
                return Err(e.into());
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64, BoxError> {
        match self.complete().await {
            Ok(size) => Ok(size),
            Err(e) => {
                if let Err(ae) = self.abort_upload().await {
                    warn!(key = %self.key, error = %ae, "aborting the failed multipart upload failed; the bucket's lifecycle rule removes it");
                }
                Err(e.into())
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<(), BoxError> {
        self.abort_upload().await.map_err(Into::into)
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // Dropped mid-way (the run failed elsewhere): abort in the background if a runtime is
        // there to do it; otherwise the bucket's lifecycle rule cleans up.
        if self.settled {
            return;
        }
        self.uploading.abort_all();
        if let (Some(id), Ok(rt)) = (self.upload_id.take(), tokio::runtime::Handle::try_current()) {
            let request = self.client.abort_multipart_upload().bucket(&self.bucket).key(&self.key).upload_id(id);
            rt.spawn(async move {
                let _ = request.send().await;
            });
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn ObjectWriter>, BoxError> {
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: self.full_key(key),
            meta: meta.clone(),
            encryption: self.encryption.clone(),
            buf: Vec::new(),
            size: 0,
            upload_id: None,
            next_part: 0,
            uploading: JoinSet::new(),
            uploaded: Vec::new(),
            settled: false,
        }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), BoxError> {
        put_object(&self.client, &self.bucket, &self.full_key(key), bytes, meta, &self.encryption).await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError> {
        let full = self.full_key(key);
        let out = match self.client.get_object().bucket(&self.bucket).key(&full).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.err("GetObject", &full, boxed(e)).into()),
        };
        let body = out.body.collect().await.map_err(|e| self.err("GetObject", &full, boxed(e)))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BoxError> {
        let full = self.full_key(key);
        let out = match self.client.get_object().bucket(&self.bucket).key(&full).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.err("GetObject", &full, boxed(e)).into()),
        };
        let etag = out.e_tag().unwrap_or_default().trim_matches('"').to_string();
        let body = out.body.collect().await.map_err(|e| self.err("GetObject", &full, boxed(e)))?;
        Ok(Some((body.into_bytes().to_vec(), etag)))
    }

    async fn read(&self, key: &str) -> Result<Option<Chunks>, BoxError> {
        use futures::StreamExt;
        let full = self.full_key(key);
        let out = match self.client.get_object().bucket(&self.bucket).key(&full).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.err("GetObject", &full, boxed(e)).into()),
        };
        let context = (self.bucket.clone(), full);
        let stream = futures::stream::unfold(Some((out.body, context)), |state| async move {
            let (mut body, (bucket, key)) = state?;
            match body.next().await {
                None => None,
                Some(Ok(bytes)) => Some((Ok(bytes.to_vec()), Some((body, (bucket, key))))),
                Some(Err(e)) => {
                    let err = Error::S3 { op: "GetObject", bucket, key, source: boxed(e) };
                    Some((Err(err.into()), None))
                }
            }
        });
        Ok(Some(stream.boxed()))
    }

    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        let full = self.full_key(key);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| self.err("DeleteObject", &full, boxed(e)))?;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BoxError> {
        let keys = self.list(prefix).await?;
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(self.full_key(k)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err("DeleteObjects", prefix, boxed(e)))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| self.err("DeleteObjects", prefix, boxed(e)))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.err("DeleteObjects", prefix, boxed(e)))?;
            // A 200 that reports per-key failures is a failure.
            if let Some(first) = out.errors().first() {
                return Err(Error::PartialDelete {
                    bucket: self.bucket.clone(),
                    prefix: prefix.to_string(),
                    failed: out.errors().len(),
                    first: format!("{}: {}", first.key().unwrap_or("?"), first.message().unwrap_or("?")),
                }
                .into());
            }
        }
        Ok(keys.len() as u64)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BoxError> {
        let full = self.list_prefix(prefix);
        let pages: Vec<_> = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.err("ListObjectsV2", &full, boxed(e)))?;
        let mut keys: Vec<String> = pages
            .iter()
            .flat_map(|p| p.contents())
            .filter_map(|o| o.key())
            .map(|k| self.relative(k).to_string())
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Page by page (1,000 keys each), in S3's order, which is the sorted order `list` gives.
    fn list_stream<'a>(&'a self, prefix: &'a str) -> KeyStream<'a> {
        let full = self.list_prefix(prefix);
        let pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&full).into_paginator().send();
        let state = (pages, std::collections::VecDeque::<String>::new(), full);
        Box::pin(futures::stream::unfold(Some(state), move |state| async move {
            let (mut pages, mut keys, full) = state?;
            loop {
                if let Some(key) = keys.pop_front() {
                    return Some((Ok(key), Some((pages, keys, full))));
                }
                match pages.next().await? {
                    Ok(page) => keys
                        .extend(page.contents().iter().filter_map(|o| o.key()).map(|k| self.relative(k).to_string())),
                    Err(e) => return Some((Err(self.err("ListObjectsV2", &full, boxed(e)).into()), None)),
                }
            }
        }))
    }
}
