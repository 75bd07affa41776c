//! The ports: what the domain needs from the outside world, named for that need. Adapters live
//! in their own crates (`sluice-local` now; AWS and Snowflake later) and are named for what
//! they talk to.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::error::{BoxError, HistoryError};
use crate::format::CsvFormat;
use crate::manifest::PartInfo;
use crate::spec::{TableName, UpperBound};
use crate::value::{Column, RowBatch, Watermark, Window};

// ---------------------------------------------------------------------------------------------
// Source
// ---------------------------------------------------------------------------------------------

/// The expression a window filters on: the incremental column, or `COALESCE(column, fallback)`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkExpr {
    pub column: String,
    pub fallback: Option<String>,
}

/// Which rows of a table a query reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All,
    /// `low < expr <= high` (no lower bound when `low` is `None`).
    Window {
        expr: WatermarkExpr,
        low: Option<Watermark>,
        high: Watermark,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub table: TableName,
    pub columns: Vec<String>,
    pub filter: Filter,
    /// Columns the rows must arrive sorted by (the `check` strategy's key); none: any order.
    pub order_by: Vec<String>,
}

/// A query as the source would send it: SQL with placeholders, and the values bound to them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedQuery {
    pub sql: String,
    pub params: Vec<Watermark>,
}

/// Rows arrive in batches; a source keeps only a bounded number of batches in flight.
pub type RowStream = BoxStream<'static, Result<RowBatch, BoxError>>;

/// The reader's end of `row_channel`: a source's reader task or thread sends batches through it.
pub struct RowSender {
    tx: tokio::sync::mpsc::Sender<Result<RowBatch, BoxError>>,
    finished: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RowSender {
    /// Sends from async code; `false` when the stream was dropped (stop reading).
    pub async fn send(&self, item: Result<RowBatch, BoxError>) -> bool {
        self.tx.send(item).await.is_ok()
    }

    /// Sends from a blocking thread; `false` when the stream was dropped (stop reading).
    pub fn blocking_send(&self, item: Result<RowBatch, BoxError>) -> bool {
        self.tx.blocking_send(item).is_ok()
    }

    /// Every row was sent: the stream ends cleanly.
    pub fn finish(self) {
        self.finished.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// A bounded channel from a source's reader to the runner. A reader that stops without
/// `finish` (a panic, a forgotten path) ends the stream with an error, never with a clean end
/// that would commit a window with rows missing.
pub fn row_channel(capacity: usize) -> (RowSender, RowStream) {
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = finished.clone();
    let stream = futures::stream::unfold(Some(rx), move |rx| {
        let done = done.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(item) => Some((item, Some(rx))),
                None if done.load(std::sync::atomic::Ordering::Acquire) => None,
                None => {
                    Some((Err("the source's reader stopped before the last row; nothing is committed".into()), None))
                }
            }
        }
    });
    (RowSender { tx, finished }, stream.boxed())
}

#[async_trait]
pub trait Source: Send + Sync {
    /// The table's columns in order, with the types the source declares. A missing table is an
    /// error that names it and says what to check.
    async fn columns(&self, table: &TableName) -> Result<Vec<Column>, BoxError>;

    /// Captures a run's `high` before it reads. `None` when the table has no value to bound by.
    async fn upper_bound(
        &self,
        table: &TableName,
        expr: &WatermarkExpr,
        bound: UpperBound,
    ) -> Result<Option<Watermark>, BoxError>;

    /// The exact SQL and parameters `read` would run.
    fn render(&self, query: &Query) -> RenderedQuery;

    /// How many rows the query would return.
    async fn count(&self, query: &Query) -> Result<u64, BoxError>;

    /// How many rows have a NULL watermark expression: they are in no window.
    async fn count_null(&self, table: &TableName, expr: &WatermarkExpr) -> Result<u64, BoxError>;

    /// Streams the query's rows.
    async fn read(&self, query: &Query) -> Result<RowStream, BoxError>;

    /// The statement `unload` would run, for `sluice plan`; `None` when the source cannot unload.
    fn render_unload(&self, _query: &Query, _target: &UnloadTarget) -> Option<RenderedQuery> {
        None
    }

    /// Server-side unload: the source writes the query's rows as CSV parts under
    /// `target.prefix` of the export's destination itself, and reports them. Sluice then writes
    /// the manifest and commits the history as for a streamed run.
    async fn unload(&self, _query: &Query, _target: &UnloadTarget) -> Result<Vec<PartInfo>, BoxError> {
        Err("this source cannot unload: use mode = \"stream\"".into())
    }
}

/// Where and how an unload writes its parts.
#[derive(Debug, Clone)]
pub struct UnloadTarget {
    /// The run's folder, relative to the destination (`<export>/<table>/<run_id>`).
    pub prefix: String,
    pub format: CsvFormat,
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// A secret store (AWS Secrets Manager): sources fetch their credentials from it at start-up.
#[async_trait]
pub trait Secrets: Send + Sync {
    /// The secret's string value. Errors name the secret, never its value.
    async fn secret_string(&self, id: &str) -> Result<String, BoxError>;
}

/// For builds and places without a secret store: every lookup says how to get one.
pub struct NoSecrets(pub &'static str);

#[async_trait]
impl Secrets for NoSecrets {
    async fn secret_string(&self, id: &str) -> Result<String, BoxError> {
        Err(format!("cannot read secret {id:?}: {}", self.0).into())
    }
}

// ---------------------------------------------------------------------------------------------
// Object store
// ---------------------------------------------------------------------------------------------

/// What an object is, for stores that record it (S3's Content-Type and Content-Encoding).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectMeta {
    pub content_type: String,
    pub content_encoding: Option<String>,
}

/// An object being written. Nothing is visible under its key until `finish` returns.
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes. Taken by reference so the caller reuses one buffer for the whole part;
    /// an adapter that must hold bytes (an S3 multipart part) copies them into its own.
    async fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError>;
    /// Makes the object visible whole; returns its size.
    async fn finish(self: Box<Self>) -> Result<u64, BoxError>;
    /// Drops what was written; the key stays absent.
    async fn abort(self: Box<Self>) -> Result<(), BoxError>;
}

/// An entity tag from an object's content, for stores that have none of their own (a folder,
/// memory): like S3's ETag, it changes when the object is rewritten with other content.
pub fn content_tag(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(bytes)[..16])
}

/// An object's bytes as they arrive.
pub type ByteStream = BoxStream<'static, Result<Vec<u8>, BoxError>>;

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Where keys land, for messages and manifests (`/data/exports`, `s3://bucket/prefix`).
    fn location(&self) -> String;
    /// Starts a streaming write to `key`.
    async fn create(&self, key: &str, meta: &ObjectMeta) -> Result<Box<dyn ObjectWriter>, BoxError>;
    /// Writes a small object in one go, atomically.
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), BoxError>;
    /// Reads a small object whole; `None` when absent.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError>;
    /// Reads a small object whole with its entity tag (S3's ETag, a content hash elsewhere), which
    /// changes whenever the object is rewritten.
    async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BoxError>;
    /// Streams an object in chunks, for parts too large to hold; `None` when absent.
    async fn read(&self, key: &str) -> Result<Option<ByteStream>, BoxError>;
    async fn delete(&self, key: &str) -> Result<(), BoxError>;
    /// Deletes every object under `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BoxError>;
    /// Keys under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BoxError>;
}

// ---------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------

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
    pub strategy: crate::strategy::Strategy,
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
    pub changes: Option<crate::check::Changes>,
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

// ---------------------------------------------------------------------------------------------
// Delivery ledger
// ---------------------------------------------------------------------------------------------

/// One manifest as one integration delivers it. The ETag tells a rewritten object from a
/// duplicated event about the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryId {
    pub integration: String,
    pub manifest_key: String,
    pub etag: String,
}

/// A batch settled after an earlier one still in flight: kept apart until the gap closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledBatch {
    pub seq: u64,
    pub delivered: u64,
    pub failed: u64,
}

/// How far a delivery got. Batch `seq` holds rows `[seq * batch_size, (seq + 1) * batch_size)`;
/// every row below `settled_rows` is delivered or written to the failures, as are the rows of
/// the batches in `ahead`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryProgress {
    pub batch_size: u64,
    pub settled_rows: u64,
    pub delivered: u64,
    pub failed: u64,
    pub ahead: Vec<SettledBatch>,
}

impl DeliveryProgress {
    /// Records delivered and failed so far, ahead batches included.
    pub fn totals(&self) -> (u64, u64) {
        let ahead = |f: fn(&SettledBatch) -> u64| self.ahead.iter().map(f).sum::<u64>();
        (self.delivered + ahead(|b| b.delivered), self.failed + ahead(|b| b.failed))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Being delivered, or stopped part-way (a deadline, an API down): the next claim resumes it.
    InProgress,
    /// Every row delivered or written to the failures file: a later event for it is a duplicate.
    Done,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::InProgress => "in_progress",
            DeliveryState::Done => "done",
        }
    }
}

/// When a claim or lease taken now for `ttl` expires.
pub fn expires_in(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub state: DeliveryState,
    /// The manifest's row count.
    pub rows: u64,
    pub progress: DeliveryProgress,
    /// Where the failed records are, once the delivery is done and some failed.
    pub failures_key: Option<String>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: u32,
    /// Why the last attempt stopped, if it did.
    pub error: Option<String>,
    /// Who skipped it, when and why, if an operator did: a skipped delivery counts as done, so
    /// later runs of its table are no longer held behind it; none of its rows were sent since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl DeliveryRecord {
    /// A delivery not attempted yet.
    pub fn new(id: &DeliveryId, rows: u64, now: DateTime<Utc>) -> DeliveryRecord {
        DeliveryRecord {
            id: id.clone(),
            state: DeliveryState::InProgress,
            rows,
            progress: DeliveryProgress::default(),
            failures_key: None,
            started_at: now,
            updated_at: now,
            attempts: 0,
            error: None,
            skipped: None,
        }
    }
}

/// What claiming a delivery found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This owner now holds it; the record carries any progress of earlier attempts.
    Mine(DeliveryRecord),
    /// Already done: the event is a duplicate.
    Done(DeliveryRecord),
    /// Another invocation holds it until `expires_at`.
    Held { owner: String, expires_at: DateTime<Utc> },
}

/// Where integrations record what they delivered: exactly-once in effect over at-least-once
/// events. A claim is a lease: one owner at a time, lapsing at `expires_at` if its owner dies.
#[async_trait]
pub trait DeliveryLedger: Send + Sync {
    /// Takes the delivery for `owner` until `now + ttl`, creating its record (with `rows`) if new.
    async fn claim(&self, id: &DeliveryId, owner: &str, ttl: Duration, rows: u64) -> Result<Claim, HistoryError>;
    /// Saves the record if `owner` still holds the claim (`LeaseLost` otherwise). `hold` extends
    /// the claim by that long; `None` gives it up (done, or stopped for a later attempt).
    async fn save(&self, record: &DeliveryRecord, owner: &str, hold: Option<Duration>) -> Result<(), HistoryError>;
    async fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, HistoryError>;
    /// The integration's latest delivery: the one most recently claimed, finished or stopped
    /// (its checkpoints since may not show), read at a constant cost however many deliveries
    /// the ledger holds.
    async fn last_delivery(&self, integration: &str) -> Result<Option<DeliveryRecord>, HistoryError>;
    /// Takes the integration's next send slot, shared by every process delivering it: a time no
    /// earlier than `not_before` and at least `spacing` after the slot taken before it (by any
    /// process), and counts one request against the UTC day of `not_before` (the caller's
    /// now). One atomic step: of any number of concurrent callers, each gets its own slot.
    async fn take_send_slot(
        &self,
        integration: &str,
        spacing: Duration,
        not_before: DateTime<Utc>,
    ) -> Result<SendSlot, HistoryError>;
}

/// One request's turn in an integration's shared rate ([`DeliveryLedger::take_send_slot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSlot {
    /// When the request may go.
    pub at: DateTime<Utc>,
    /// Requests counted on the caller's UTC day, this one included (possibly a few more than
    /// were sent: a count errs high, never low).
    pub day_count: u64,
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// What Sluice announces: a finished export run, or a finished (or stopped) delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    /// `ExportSucceeded`, `ExportFailed`, `IntegrationSucceeded` or `IntegrationFailed`.
    pub detail_type: String,
    pub detail: EventDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventDetail {
    Export(crate::run::ExportRunSummary),
    Integration(crate::integrate::DeliverySummary),
}

#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, event: &RunEvent) -> Result<(), BoxError>;
}

#[cfg(test)]
mod row_channel_tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_reader_that_stops_without_finishing_ends_the_stream_with_an_error() {
        let (tx, mut stream) = row_channel(2);
        assert!(tx.send(Ok(RowBatch::new(1))).await);
        drop(tx); // as a panicking reader would
        assert!(stream.next().await.unwrap().is_ok());
        let err = stream.next().await.unwrap().unwrap_err().to_string();
        assert!(err.contains("stopped before the last row"), "{err}");
        assert!(stream.next().await.is_none());

        let (tx, mut stream) = row_channel(2);
        assert!(tx.send(Ok(RowBatch::new(1))).await);
        tx.finish();
        assert!(stream.next().await.unwrap().is_ok());
        assert!(stream.next().await.is_none(), "a finished reader ends the stream cleanly");
    }
}
