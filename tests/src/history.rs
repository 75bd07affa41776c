//! A real history store with something done to its commits: another writer moving the
//! watermark just before, or the answer lost on the way back.

use async_trait::async_trait;
use futures::future::BoxFuture;
use std::time::Duration;

use sluice_core::ports::{HistoryStore, Lease, LeaseOwner, RunRecord, WatermarkRecord};
use sluice_core::value::Watermark;
use sluice_core::HistoryError;

/// A real history store with something done to its commits: a hook run just before the first
/// commit ([`BeforeCommit`]), or the first commit's answer lost ([`LostCommit`]). Everything
/// else goes straight to the store.
pub struct Hooked<'a> {
    inner: &'a dyn HistoryStore,
    hook: Option<Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync + 'a>>,
    lost: Option<Lost>,
    /// With a lost answer: reading the runs fails too, so the runner cannot tell what happened.
    blind: bool,
    tripped: std::sync::atomic::AtomicBool,
}

/// `commit_run` first awaits a hook (another writer moving the watermark, say), so a test reaches
/// the conditional commit's refusal through the store's own checks rather than through a mock.
pub type BeforeCommit<'a> = Hooked<'a>;
/// The first `commit_run` ends in an error without a verdict (a network failure).
pub type LostCommit<'a> = Hooked<'a>;

/// Where a commit's answer gets lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The commit was applied, and the answer never came back.
    AfterApplying,
    /// The commit failed before it reached the store.
    BeforeApplying,
}

impl<'a> Hooked<'a> {
    /// Delegates everything to `inner`; `commit_run` first awaits `hook()`.
    pub fn new(inner: &'a dyn HistoryStore, hook: impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'a) -> Self {
        Hooked { hook: Some(Box::new(hook)), ..Hooked::plain(inner) }
    }

    /// The first commit's answer is lost after or before it is applied; with `blind`, the
    /// runs cannot be read afterwards either.
    pub fn losing(inner: &'a dyn HistoryStore, lost: Lost, blind: bool) -> Self {
        Hooked { lost: Some(lost), blind, ..Hooked::plain(inner) }
    }

    fn plain(inner: &'a dyn HistoryStore) -> Self {
        Hooked { inner, hook: None, lost: None, blind: false, tripped: std::sync::atomic::AtomicBool::new(false) }
    }
}

fn lost() -> HistoryError {
    HistoryError::Other("the connection was reset before the answer (injected)".into())
}

#[async_trait]
impl HistoryStore for Hooked<'_> {
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
        if let Some(hook) = &self.hook {
            hook().await;
        }
        let first = !self.tripped.swap(true, std::sync::atomic::Ordering::SeqCst);
        match (self.lost, first) {
            (Some(Lost::AfterApplying), true) => {
                self.inner.commit_run(l, r, e, n).await?;
                Err(lost())
            }
            (Some(Lost::BeforeApplying), true) => Err(lost()),
            _ => self.inner.commit_run(l, r, e, n).await,
        }
    }
    async fn fail_run(&self, r: &RunRecord) -> Result<(), HistoryError> {
        self.inner.fail_run(r).await
    }
    async fn runs(&self, e: &str, n: usize) -> Result<Vec<RunRecord>, HistoryError> {
        if self.blind && self.tripped.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(lost());
        }
        self.inner.runs(e, n).await
    }
    async fn run(
        &self,
        e: &str,
        t: &str,
        id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<RunRecord>, HistoryError> {
        if self.blind && self.tripped.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(lost());
        }
        self.inner.run(e, t, id, at).await
    }
    async fn open_runs(&self, e: &str) -> Result<Vec<RunRecord>, HistoryError> {
        self.inner.open_runs(e).await
    }
}
