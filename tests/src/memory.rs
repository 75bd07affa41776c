//! In-memory adapters: an object store in a map, for unit tests of code that writes and reads a
//! destination without a folder or a bucket. It keeps the `ObjectStore` contract as the real
//! stores do (`object_store::check_contract` runs on it).

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sluice_core::ports::{ByteStream, ObjectMeta, ObjectStore, ObjectWriter};
use sluice_core::BoxError;

type Objects = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// Objects by key, shared by clones.
#[derive(Clone, Default)]
pub struct MemoryStore {
    objects: Objects,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An object being written: its bytes stay here until `finish` puts them under the key.
struct MemoryWriter {
    key: String,
    bytes: Vec<u8>,
    objects: Objects,
}

#[async_trait]
impl ObjectWriter for MemoryWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError> {
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<u64, BoxError> {
        let size = self.bytes.len() as u64;
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).insert(self.key, self.bytes);
        Ok(size)
    }
    async fn abort(self: Box<Self>) -> Result<(), BoxError> {
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn location(&self) -> String {
        "memory:".into()
    }
    async fn create(&self, key: &str, _: &ObjectMeta) -> Result<Box<dyn ObjectWriter>, BoxError> {
        Ok(Box::new(MemoryWriter { key: key.to_string(), bytes: Vec::new(), objects: self.objects.clone() }))
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, _: &ObjectMeta) -> Result<(), BoxError> {
        self.objects().insert(key.to_string(), bytes);
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError> {
        Ok(self.objects().get(key).cloned())
    }
    async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BoxError> {
        Ok(self.objects().get(key).map(|b| (b.clone(), sluice_core::ports::content_tag(b))))
    }
    async fn read(&self, key: &str) -> Result<Option<ByteStream>, BoxError> {
        let Some(bytes) = self.objects().get(key).cloned() else { return Ok(None) };
        // In pieces, as a real stream arrives.
        let chunks: Vec<Result<Vec<u8>, BoxError>> = bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        Ok(Some(Box::pin(futures::stream::iter(chunks))))
    }
    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        self.objects().remove(key);
        Ok(())
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BoxError> {
        let keys = self.list(prefix).await?;
        let mut objects = self.objects();
        for k in &keys {
            objects.remove(k);
        }
        Ok(keys.len() as u64)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BoxError> {
        // A prefix is a folder, as in the other stores: `e/t` holds `e/t/…`, not `e/t2/…`.
        let folder = prefix.trim_end_matches('/');
        let under = |k: &String| folder.is_empty() || k.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'));
        Ok(self.objects().keys().filter(|k| under(k)).cloned().collect())
    }
}
