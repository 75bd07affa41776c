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

/// The `HistoryStore` contract, on a fresh store (the history file, DynamoDB on moto): the
/// lease with its takeover margin and a retried acquire, a run's begin, its commit conditioned
/// on the watermark and the lease, finding it again, and a late failure report that does not
/// undo a commit.
pub async fn check_contract(h: &dyn HistoryStore) {
    use sluice_core::ports::RunState;
    use sluice_core::value::Window;
    let me = LeaseOwner { run_id: "run-a".into(), host: "lambda-1".into(), pid: 7 };
    let other = LeaseOwner { run_id: "run-b".into(), host: "lambda-2".into(), pid: 8 };
    let ttl = Duration::from_secs(60);

    // A lease expired by less than the takeover margin is still held (clocks differ).
    let brief = h.acquire_lease("e", &me, Duration::ZERO).await.unwrap();
    assert!(matches!(h.acquire_lease("e", &other, ttl).await, Err(HistoryError::LeaseHeld { .. })));
    h.release_lease(&brief).await.unwrap();

    let lease = h.acquire_lease("e", &me, ttl).await.unwrap();
    // The same put again (an SDK retry of one whose answer was lost): ours, not "held".
    let again = h.acquire_lease("e", &me, ttl).await.unwrap();
    assert_eq!(again.owner, me);
    match h.acquire_lease("e", &other, ttl).await {
        Err(HistoryError::LeaseHeld { owner, .. }) => {
            assert!(owner.contains("run-a") && owner.contains("lambda-1"), "{owner}")
        }
        other => panic!("expected LeaseHeld, got {other:?}"),
    }
    assert_eq!(h.lease("e").await.unwrap().unwrap().owner, me);
    h.renew_lease(&lease, ttl).await.unwrap();

    let mut run = RunRecord {
        export: "e".into(),
        table: "contacts".into(),
        run_id: "run-a".into(),
        state: RunState::Running,
        strategy: sluice_core::strategy::Strategy::Timestamp,
        full_refresh: false,
        window: Window { low: None, high: Some(Watermark::Text("2026-01-01".into())) },
        base_watermark: None,
        rows: 3,
        bytes: 30,
        parts: 1,
        null_rows: 0,
        prefix: "e/contacts/run-a".into(),
        manifest_key: "e/contacts/run-a/manifest.json".into(),
        started_at: chrono::Utc::now(),
        finished_at: None,
        error: None,
        changes: None,
        late_rows: 0,
        backfill: false,
    };
    h.begin_run(&lease, &run).await.unwrap();
    assert_eq!(h.open_runs("e").await.unwrap().len(), 1);
    // A run is found by what names it (a manifest holds all four), and by nothing less.
    assert_eq!(h.run("e", "contacts", "run-a", run.started_at).await.unwrap().unwrap().state, RunState::Running);
    assert!(h.run("e", "orders", "run-a", run.started_at).await.unwrap().is_none());

    // A commit conditioned on the wrong watermark is refused and changes nothing.
    let wrong = Watermark::Text("1999".into());
    match h.commit_run(&lease, &run, Some(&wrong), run.window.high.as_ref()).await {
        Err(HistoryError::WatermarkMoved { found: None, .. }) => {}
        other => panic!("expected WatermarkMoved, got {other:?}"),
    }
    assert!(h.watermarks("e").await.unwrap().is_empty());

    h.commit_run(&lease, &run, None, run.window.high.as_ref()).await.unwrap();
    assert_eq!(h.watermark("e", "contacts").await.unwrap().unwrap().watermark, Watermark::Text("2026-01-01".into()));
    assert!(h.open_runs("e").await.unwrap().is_empty());
    assert_eq!(h.runs("e", 10).await.unwrap()[0].state, RunState::Succeeded);
    // A late failure report of a run another process committed leaves it committed.
    h.fail_run(&RunRecord { error: Some("late".into()), ..run.clone() }).await.unwrap();
    assert_eq!(h.runs("e", 10).await.unwrap()[0].state, RunState::Succeeded);

    // Once the lease is gone, nothing commits in its name.
    h.release_lease(&lease).await.unwrap();
    let theirs = h.acquire_lease("e", &other, ttl).await.unwrap();
    run.run_id = "run-a-2".into();
    assert!(matches!(h.renew_lease(&lease, ttl).await, Err(HistoryError::LeaseLost)));
    assert!(matches!(h.begin_run(&lease, &run).await, Err(HistoryError::LeaseLost)));
    assert!(matches!(
        h.commit_run(&lease, &run, run.window.high.as_ref(), Some(&Watermark::Text("2027".into()))).await,
        Err(HistoryError::LeaseLost)
    ));
    h.release_lease(&lease).await.unwrap();
    assert_eq!(h.lease("e").await.unwrap().unwrap().owner, theirs.owner, "releasing another's lease is a no-op");
}
