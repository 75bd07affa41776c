//! The `ObjectStore` contract, run against every implementation (a folder, S3 on moto, the
//! in-memory store) so each behaves as the runner and the integrations rely on: nothing is
//! visible until it is whole, an aborted write leaves nothing, entity tags follow content,
//! listing is by folder and sorted, and deleting a folder counts what it removed.

use futures::StreamExt;

use sluice_core::ports::{ObjectMeta, ObjectStore};

fn meta() -> ObjectMeta {
    ObjectMeta { content_type: "text/csv".into(), content_encoding: None }
}

/// Every rule of the contract, on an empty store.
pub async fn check_contract(store: &dyn ObjectStore) {
    // Absent is `None`, not an error.
    assert_eq!(store.get("e/t/r/manifest.json").await.unwrap(), None);
    assert!(store.get_tagged("e/t/r/manifest.json").await.unwrap().is_none());
    assert!(store.read("e/t/r/manifest.json").await.unwrap().is_none());
    assert!(store.list("").await.unwrap().is_empty());

    // A streamed object is invisible until finished, to reads and to listings alike.
    let mut w = store.create("e/t/r/part-00000.csv", &meta()).await.unwrap();
    w.write(b"a|b\n").await.unwrap();
    w.write(b"c|d\n").await.unwrap();
    assert_eq!(store.get("e/t/r/part-00000.csv").await.unwrap(), None, "invisible until finished");
    assert!(store.list("e").await.unwrap().is_empty(), "an unfinished object is not listed");
    assert_eq!(w.finish().await.unwrap(), 8);
    assert_eq!(store.get("e/t/r/part-00000.csv").await.unwrap().unwrap(), b"a|b\nc|d\n");

    // An aborted write leaves nothing under its key.
    let mut w = store.create("e/t/r/part-00001.csv", &meta()).await.unwrap();
    w.write(b"half").await.unwrap();
    w.abort().await.unwrap();
    assert_eq!(store.get("e/t/r/part-00001.csv").await.unwrap(), None);
    assert_eq!(store.list("e/t/r").await.unwrap(), vec!["e/t/r/part-00000.csv"]);

    // A large object streams back whole, in order.
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let mut w = store.create("e/t/r/part-00002.csv", &meta()).await.unwrap();
    for chunk in big.chunks(100_000) {
        w.write(chunk).await.unwrap();
    }
    assert_eq!(w.finish().await.unwrap(), big.len() as u64);
    let mut stream = store.read("e/t/r/part-00002.csv").await.unwrap().unwrap();
    let mut back = Vec::new();
    while let Some(chunk) = stream.next().await {
        back.extend(chunk.unwrap());
    }
    assert!(back == big, "streamed back whole ({} of {} bytes)", back.len(), big.len());

    // Entity tags: the same for the same object, another for other content.
    store.put("e/t/r/manifest.json", b"{\"v\":1}".to_vec(), &meta()).await.unwrap();
    let (bytes, first) = store.get_tagged("e/t/r/manifest.json").await.unwrap().unwrap();
    assert_eq!(bytes, b"{\"v\":1}");
    assert_eq!(store.get_tagged("e/t/r/manifest.json").await.unwrap().unwrap().1, first);
    store.put("e/t/r/manifest.json", b"{\"v\":2}".to_vec(), &meta()).await.unwrap();
    let (bytes, second) = store.get_tagged("e/t/r/manifest.json").await.unwrap().unwrap();
    assert_eq!(bytes, b"{\"v\":2}");
    assert_ne!(first, second, "a rewritten object has another tag");

    // Listing is by folder (`e/t` is not `e/t2`), sorted, and `""` is everything.
    store.put("e/t2/r/manifest.json", b"{}".to_vec(), &meta()).await.unwrap();
    let under_t = ["e/t/r/manifest.json", "e/t/r/part-00000.csv", "e/t/r/part-00002.csv"];
    assert_eq!(store.list("e/t").await.unwrap(), under_t);
    assert_eq!(store.list("e/t/").await.unwrap(), under_t);
    let mut all: Vec<&str> = under_t.to_vec();
    all.push("e/t2/r/manifest.json");
    assert_eq!(store.list("").await.unwrap(), all);

    // The streamed listing gives the same keys in the same order, with keys that sort between
    // a folder's name and its slash (`e/t.x` before `e/t/…`, `e/t-1` too).
    store.put("e/t.x", b"{}".to_vec(), &meta()).await.unwrap();
    store.put("e/t-1/r/manifest.json", b"{}".to_vec(), &meta()).await.unwrap();
    for prefix in ["", "e", "e/t", "e/t/", "e/none"] {
        let listed = store.list(prefix).await.unwrap();
        let streamed: Vec<String> = store.list_stream(prefix).map(|k| k.unwrap()).collect().await;
        assert_eq!(streamed, listed, "the streamed listing of {prefix:?}");
    }
    assert_eq!(store.list("e").await.unwrap()[0], "e/t-1/r/manifest.json");
    store.delete("e/t.x").await.unwrap();
    store.delete("e/t-1/r/manifest.json").await.unwrap();

    // Deleting a folder removes what is under it, counted, and nothing beside it.
    assert_eq!(store.delete_prefix("e/t").await.unwrap(), 3);
    assert_eq!(store.list("").await.unwrap(), vec!["e/t2/r/manifest.json"]);
    assert_eq!(store.delete_prefix("e/nothing").await.unwrap(), 0);
    store.delete("e/t2/r/manifest.json").await.unwrap();
    store.delete("e/t2/r/manifest.json").await.unwrap();
    assert!(store.list("").await.unwrap().is_empty(), "deleting twice is no error");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use async_trait::async_trait;
    use sluice_core::ports::{ByteStream, ObjectWriter};
    use sluice_core::BoxError;

    #[tokio::test]
    async fn the_memory_store_keeps_the_contract() {
        check_contract(&MemoryStore::new()).await;
    }

    /// A store that shows an object while it is being written (as a naive folder store that
    /// writes in place would): the contract catches it.
    struct ShowsUnfinished(MemoryStore);

    #[async_trait]
    impl ObjectStore for ShowsUnfinished {
        fn location(&self) -> String {
            self.0.location()
        }
        async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn ObjectWriter>, BoxError> {
            self.0.put(key, Vec::new(), meta).await?;
            self.0.create(key, meta).await
        }
        async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), BoxError> {
            self.0.put(key, bytes, meta).await
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError> {
            self.0.get(key).await
        }
        async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BoxError> {
            self.0.get_tagged(key).await
        }
        async fn read(&self, key: &str) -> Result<Option<ByteStream>, BoxError> {
            self.0.read(key).await
        }
        async fn delete(&self, key: &str) -> Result<(), BoxError> {
            self.0.delete(key).await
        }
        async fn delete_prefix(&self, prefix: &str) -> Result<u64, BoxError> {
            self.0.delete_prefix(prefix).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, BoxError> {
            self.0.list(prefix).await
        }
    }

    #[tokio::test]
    #[should_panic(expected = "invisible until finished")]
    async fn a_store_that_shows_unfinished_objects_breaks_the_contract() {
        check_contract(&ShowsUnfinished(MemoryStore::new())).await;
    }
}
