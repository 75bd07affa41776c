//! An object store that passes everything to a real one, but for what a test intercepts: the
//! writers of streamed objects (to fail or hang part way) and small `put`s (refused before, or
//! hung after, being written). Runs then fail or die where a test wants, on real files.

use async_trait::async_trait;
use futures::future::BoxFuture;

use sluice_core::ports::{ByteStream, ObjectMeta, ObjectStore, ObjectWriter};
use sluice_core::BoxError;

type WriterHook = Box<dyn Fn(&str, Box<dyn ObjectWriter>) -> Box<dyn ObjectWriter> + Send + Sync>;
type BeforePut = Box<dyn Fn(&str) -> Result<(), BoxError> + Send + Sync>;
type AfterPut = Box<dyn Fn(&str) -> BoxFuture<'static, ()> + Send + Sync>;

pub struct Intercepted<S> {
    inner: S,
    writer: WriterHook,
    before_put: BeforePut,
    after_put: AfterPut,
}

impl<S: ObjectStore> Intercepted<S> {
    /// Everything goes to `inner` until a hook is set.
    pub fn new(inner: S) -> Self {
        Intercepted {
            inner,
            writer: Box::new(|_, w| w),
            before_put: Box::new(|_| Ok(())),
            after_put: Box::new(|_| Box::pin(async {})),
        }
    }

    /// Each streamed object's writer (for its key) goes through `hook`, which may wrap it.
    pub fn writers(
        self,
        hook: impl Fn(&str, Box<dyn ObjectWriter>) -> Box<dyn ObjectWriter> + Send + Sync + 'static,
    ) -> Self {
        Intercepted { writer: Box::new(hook), ..self }
    }

    /// A `put` of a key is refused when `hook` says so, before anything is written.
    pub fn before_put(self, hook: impl Fn(&str) -> Result<(), BoxError> + Send + Sync + 'static) -> Self {
        Intercepted { before_put: Box::new(hook), ..self }
    }

    /// `hook` is awaited after a `put` is written (a hang there kills the run just after it).
    pub fn after_put(self, hook: impl Fn(&str) -> BoxFuture<'static, ()> + Send + Sync + 'static) -> Self {
        Intercepted { after_put: Box::new(hook), ..self }
    }
}

/// A writer that never finishes a write: the run is killed (its future dropped) there.
pub struct Hang;

#[async_trait]
impl ObjectWriter for Hang {
    async fn write(&mut self, _: &[u8]) -> Result<(), BoxError> {
        std::future::pending().await
    }
    async fn finish(self: Box<Self>) -> Result<u64, BoxError> {
        std::future::pending().await
    }
    async fn abort(self: Box<Self>) -> Result<(), BoxError> {
        Ok(())
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for Intercepted<S> {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn ObjectWriter>, BoxError> {
        Ok((self.writer)(key, self.inner.create(key, meta).await?))
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), BoxError> {
        (self.before_put)(key)?;
        self.inner.put(key, bytes, meta).await?;
        (self.after_put)(key).await;
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError> {
        self.inner.get(key).await
    }
    async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BoxError> {
        self.inner.get_tagged(key).await
    }
    async fn read(&self, key: &str) -> Result<Option<ByteStream>, BoxError> {
        self.inner.read(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        self.inner.delete(key).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BoxError> {
        self.inner.delete_prefix(prefix).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BoxError> {
        self.inner.list(prefix).await
    }
}
