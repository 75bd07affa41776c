//! The in-memory adapters and the record-only scheduler keep their ports' contracts, and the
//! suites fail an adapter that does not.

use async_trait::async_trait;
use futures::FutureExt;
use std::time::Duration;

use sluice_core::orchestrate::RecordOnly;
use sluice_core::ports::{HistoryStore, Lease, LeaseOwner, RunRecord, WatermarkRecord};
use sluice_core::value::Watermark;
use sluice_core::HistoryError;
use sluice_testkit::catalog::MemoryScheduler;
use sluice_testkit::memory::{MemoryEvents, MemoryHistory};

#[tokio::test]
async fn the_memory_history_keeps_the_history_store_contract() {
    sluice_testkit::history::check_contract(&MemoryHistory::new()).await;
}

/// A history whose commit ignores the watermark it is conditioned on: two runs of one window
/// could both commit, and the suite must say so.
struct Unconditional(MemoryHistory);

#[async_trait]
impl HistoryStore for Unconditional {
    async fn acquire_lease(&self, e: &str, o: &LeaseOwner, t: Duration) -> Result<Lease, HistoryError> {
        self.0.acquire_lease(e, o, t).await
    }
    async fn renew_lease(&self, l: &Lease, t: Duration) -> Result<Lease, HistoryError> {
        self.0.renew_lease(l, t).await
    }
    async fn release_lease(&self, l: &Lease) -> Result<(), HistoryError> {
        self.0.release_lease(l).await
    }
    async fn lease(&self, e: &str) -> Result<Option<Lease>, HistoryError> {
        self.0.lease(e).await
    }
    async fn watermark(&self, e: &str, t: &str) -> Result<Option<WatermarkRecord>, HistoryError> {
        self.0.watermark(e, t).await
    }
    async fn watermarks(&self, e: &str) -> Result<Vec<WatermarkRecord>, HistoryError> {
        self.0.watermarks(e).await
    }
    async fn begin_run(&self, l: &Lease, r: &RunRecord) -> Result<(), HistoryError> {
        self.0.begin_run(l, r).await
    }
    async fn commit_run(
        &self,
        l: &Lease,
        r: &RunRecord,
        _expected: Option<&Watermark>,
        n: Option<&Watermark>,
    ) -> Result<(), HistoryError> {
        let current = self.0.watermark(&r.export, &r.table).await?.map(|w| w.watermark);
        self.0.commit_run(l, r, current.as_ref(), n).await
    }
    async fn fail_run(&self, r: &RunRecord) -> Result<(), HistoryError> {
        self.0.fail_run(r).await
    }
    async fn runs(&self, e: &str, n: usize) -> Result<Vec<RunRecord>, HistoryError> {
        self.0.runs(e, n).await
    }
    async fn run(
        &self,
        e: &str,
        t: &str,
        id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<RunRecord>, HistoryError> {
        self.0.run(e, t, id, at).await
    }
    async fn open_runs(&self, e: &str) -> Result<Vec<RunRecord>, HistoryError> {
        self.0.open_runs(e).await
    }
}

#[tokio::test]
#[should_panic(expected = "expected WatermarkMoved")]
async fn a_history_that_commits_whatever_the_watermark_breaks_the_contract() {
    sluice_testkit::history::check_contract(&Unconditional(MemoryHistory::new())).await;
}

#[tokio::test]
async fn memory_events_keep_the_event_sink_contract() {
    let events = MemoryEvents::new();
    let received = || {
        let entries = events.entries();
        async move { entries }.boxed()
    };
    sluice_testkit::events::check_contract(&events, &received).await;
}

#[tokio::test]
async fn the_memory_scheduler_keeps_the_scheduler_contract() {
    let scheduler = MemoryScheduler::default();
    let inspect = |rule: String| {
        let held = scheduler.held(&rule);
        async move { held }.boxed()
    };
    sluice_testkit::scheduler::check_contract(&scheduler, Some(&inspect)).await;
}

#[tokio::test]
async fn the_record_only_scheduler_keeps_the_scheduler_contract() {
    sluice_testkit::scheduler::check_contract(&RecordOnly, None).await;
}
