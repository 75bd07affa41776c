//! A real history store with something done to it just before a run commits (another writer
//! moving the watermark, say), so a test can reach the conditional commit's refusal through the
//! store's own checks rather than through a mock.

use async_trait::async_trait;
use futures::future::BoxFuture;
use std::time::Duration;

use sluice_core::ports::{HistoryStore, Lease, LeaseOwner, RunRecord, WatermarkRecord};
use sluice_core::value::Watermark;
use sluice_core::HistoryError;

pub struct BeforeCommit<'a> {
    inner: &'a dyn HistoryStore,
    hook: Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync + 'a>,
}

impl<'a> BeforeCommit<'a> {
    /// Delegates everything to `inner`; `commit_run` first awaits `hook()`.
    pub fn new(inner: &'a dyn HistoryStore, hook: impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'a) -> Self {
        BeforeCommit { inner, hook: Box::new(hook) }
    }
}

#[async_trait]
impl HistoryStore for BeforeCommit<'_> {
    async fn acquire_lease(&self, e: &str, o: &LeaseOwner, t: Duration) -> Result<Lease, HistoryError> {
        self.inner.acquire_lease(e, o, t).await
    }
    async fn renew_lease(&self, l: &Lease, t: Duration) -> Result<Lease, HistoryError> {
        self.inner.renew_lease(l, t).await
    }
    async fn release_lease(&self, l: &Lease) -> Result<(), HistoryError> {
        self.inner.release_lease(l).await
    }
    async fn lease(&self, e: &str) -> Result<Option<Lease>, HistoryError> {
        self.inner.lease(e).await
    }
    async fn watermark(&self, e: &str, t: &str) -> Result<Option<WatermarkRecord>, HistoryError> {
        self.inner.watermark(e, t).await
    }
    async fn watermarks(&self, e: &str) -> Result<Vec<WatermarkRecord>, HistoryError> {
        self.inner.watermarks(e).await
    }
    async fn begin_run(&self, l: &Lease, r: &RunRecord) -> Result<(), HistoryError> {
        self.inner.begin_run(l, r).await
    }
    async fn commit_run(
        &self,
        l: &Lease,
        r: &RunRecord,
        e: Option<&Watermark>,
        n: Option<&Watermark>,
    ) -> Result<(), HistoryError> {
        (self.hook)().await;
        self.inner.commit_run(l, r, e, n).await
    }
    async fn fail_run(&self, r: &RunRecord) -> Result<(), HistoryError> {
        self.inner.fail_run(r).await
    }
    async fn runs(&self, e: &str, n: usize) -> Result<Vec<RunRecord>, HistoryError> {
        self.inner.runs(e, n).await
    }
    async fn open_runs(&self, e: &str) -> Result<Vec<RunRecord>, HistoryError> {
        self.inner.open_runs(e).await
    }
}
