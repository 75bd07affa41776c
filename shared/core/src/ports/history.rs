//! The history port: leases, runs and the watermark committed with a run's success.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::error::HistoryError;
use crate::manifest::Changes;
use crate::strategy::Strategy;
use crate::value::{Watermark, Window};

/// Who holds an export's lease: the run, and the process and host it runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseOwner {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
}

impl std::fmt::Display for LeaseOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {} (pid {} on {})", self.run_id, self.pid, self.host)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub export: String,
    pub owner: LeaseOwner,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Started; parts may be written. A record left in this state by a dead process is
    /// reconciled by the next run of its export.
    Running,
    Succeeded,
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
        }
    }
}

/// One run of one table of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub export: String,
    pub table: String,
    pub run_id: String,
    pub state: RunState,
    pub strategy: Strategy,
    pub full_refresh: bool,
    pub window: Window,
    /// The table's watermark when the run started; the commit is conditioned on it.
    pub base_watermark: Option<Watermark>,
    pub rows: u64,
    pub bytes: u64,
    pub parts: u32,
    /// Rows left out because their incremental column (and fallback) is NULL.
    pub null_rows: u64,
    /// The run's folder: parts and manifest live under it.
    pub prefix: String,
    pub manifest_key: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// A `check` run's inserts, updates and deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// Rows found in the previous run's window after it closed (see `manifest::LateRows`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub late_rows: u64,
    /// A backfill's run (`sluice backfill`): its commit never moves the watermark, whoever
    /// commits it (the run, or the next run's reconciliation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A table's committed watermark: the `export_history(table_name, last_export)` of a dbt setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkRecord {
    pub export: String,
    pub table: String,
    pub watermark: Watermark,
    pub run_id: String,
    pub committed_at: DateTime<Utc>,
}

/// How long after its expiry a lease may be taken over. Machines' clocks differ: one running
/// ahead sees a live run's lease expire early, takes it, and both runs write at once. With this
/// margin a takeover waits until the lease has been expired this long by the taker's clock, so
/// clocks that agree within it (NTP keeps them within milliseconds; Lambda's are synchronised)
/// never take a live lease. A dead process on the same machine is taken over at once.
pub const LEASE_TAKEOVER_MARGIN: Duration = Duration::from_secs(30);

#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Takes the export's lease, or fails with `HistoryError::LeaseHeld` naming the holder. An
    /// expired lease is taken over only [`LEASE_TAKEOVER_MARGIN`] after its expiry. A lease the
    /// same run holds already (a retried call whose answer was lost) is the caller's.
    async fn acquire_lease(&self, export: &str, owner: &LeaseOwner, ttl: Duration) -> Result<Lease, HistoryError>;
    /// Extends the lease to `ttl` from now if this owner still holds it; `LeaseLost` otherwise.
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease, HistoryError>;
    /// Gives the lease back if still held by this owner.
    async fn release_lease(&self, lease: &Lease) -> Result<(), HistoryError>;
    /// The current holder of an export's lease, if any and unexpired.
    async fn lease(&self, export: &str) -> Result<Option<Lease>, HistoryError>;

    async fn watermark(&self, export: &str, table: &str) -> Result<Option<WatermarkRecord>, HistoryError>;
    async fn watermarks(&self, export: &str) -> Result<Vec<WatermarkRecord>, HistoryError>;

    /// Records a run as running (insert or replace).
    async fn begin_run(&self, lease: &Lease, run: &RunRecord) -> Result<(), HistoryError>;
    /// In one atomic step, conditioned on `lease` still being held and the table's watermark
    /// still being `expected`: records the run as succeeded and sets the watermark to `new`
    /// (left alone when `new` is `None`).
    async fn commit_run(
        &self,
        lease: &Lease,
        run: &RunRecord,
        expected: Option<&Watermark>,
        new: Option<&Watermark>,
    ) -> Result<(), HistoryError>;
    /// Records a run as failed (its record carries the error), unless the history already
    /// records it as succeeded: a run the lease's next holder committed from its manifest
    /// stays committed, whatever its first process says afterwards.
    async fn fail_run(&self, run: &RunRecord) -> Result<(), HistoryError>;
    /// An export's runs, newest first.
    async fn runs(&self, export: &str, limit: usize) -> Result<Vec<RunRecord>, HistoryError>;
    /// One table run's record, found by what names it (a manifest holds all four), read
    /// consistently, however old it is.
    async fn run(
        &self,
        export: &str,
        table: &str,
        run_id: &str,
        started_at: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, HistoryError>;
    /// Runs of an export still marked running.
    async fn open_runs(&self, export: &str) -> Result<Vec<RunRecord>, HistoryError>;
}
