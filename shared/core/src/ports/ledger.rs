//! The delivery ledger port: which manifests each integration delivered, how far, and the send
//! slots that pace its requests.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::error::HistoryError;

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
