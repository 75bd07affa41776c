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

/// Where a commit's answer gets lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The commit was applied, and the answer never came back.
    AfterApplying,
    /// The commit failed before it reached the store.
    BeforeApplying,
}

/// A real history store whose first `commit_run` ends in an error without a verdict (a network
/// failure), after or before applying it; with `blind`, reading the runs fails too, so the
/// runner cannot tell which.
pub struct LostCommit<'a> {
    inner: &'a dyn HistoryStore,
    lost: Lost,
    blind: bool,
    tripped: std::sync::atomic::AtomicBool,
}

impl<'a> LostCommit<'a> {
    pub fn new(inner: &'a dyn HistoryStore, lost: Lost, blind: bool) -> Self {
        LostCommit { inner, lost, blind, tripped: std::sync::atomic::AtomicBool::new(false) }
    }

    fn tripped(&self) -> bool {
        self.tripped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn lost() -> HistoryError {
    HistoryError::Other("the connection was reset before the answer (injected)".into())
}

#[async_trait]
impl HistoryStore for LostCommit<'_> {
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
        if self.tripped.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return self.inner.commit_run(l, r, e, n).await;
        }
        if self.lost == Lost::AfterApplying {
            self.inner.commit_run(l, r, e, n).await?;
        }
        Err(lost())
    }
    async fn fail_run(&self, r: &RunRecord) -> Result<(), HistoryError> {
        self.inner.fail_run(r).await
    }
    async fn runs(&self, e: &str, n: usize) -> Result<Vec<RunRecord>, HistoryError> {
        if self.blind && self.tripped() {
            return Err(lost());
        }
        self.inner.runs(e, n).await
    }
    async fn open_runs(&self, e: &str) -> Result<Vec<RunRecord>, HistoryError> {
        self.inner.open_runs(e).await
    }
}
