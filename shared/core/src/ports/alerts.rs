//! The alert port: each export's alert records, so an alert fires once per incident and says
//! when it resolved, whichever process (a run, a delivery, the freshness check) sees it first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::HistoryError;

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Nothing wrong yet, but a clock is running: the freshness of an export that has never
    /// succeeded counts from when it was first watched (`since`).
    Watching,
    /// The incident is open; it was announced once, when it opened.
    Firing,
    /// The last incident closed (`resolved_at`); announced once, when it closed.
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Watching => "watching",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert of one export: `key` is the rule (`failed_run`, `freshness`, …), with the
/// integration after a colon for `rejected_rows:<integration>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub export: String,
    pub key: String,
    pub state: AlertState,
    /// When the incident opened (or, `Watching`, when watching began).
    pub since: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// What is wrong and why, as announced when it opened.
    pub what: String,
    pub why: String,
    /// The run (or the manifest delivered) the incident points to.
    pub run_id: Option<String>,
    /// Where that run's manifest is (`s3://…` or a path), when there is one.
    pub manifest: Option<String>,
    /// Bumped by every save; a save names the revision it read (0: no record yet).
    pub revision: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    FailedRun,
    Freshness,
    ZeroRows,
    RowsBand,
    SlowRun,
    RejectedRows,
    LateRows,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::FailedRun => "failed_run",
            AlertKind::Freshness => "freshness",
            AlertKind::ZeroRows => "zero_rows",
            AlertKind::RowsBand => "rows_band",
            AlertKind::SlowRun => "slow_run",
            AlertKind::RejectedRows => "rejected_rows",
            AlertKind::LateRows => "late_rows",
        }
    }
}

/// `ExportAlert`'s detail: an incident opening (`firing`) or closing (`resolved`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    pub version: u32,
    pub export: String,
    pub alert: AlertKind,
    pub key: String,
    /// `firing` or `resolved`.
    pub status: AlertState,
    pub what: String,
    pub why: String,
    /// When the incident opened.
    pub since: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The run it points to, and that run's manifest where the export's files are
    /// (`s3://bucket/prefix/…` or a path): open it, or `sluice history EXPORT`, to see the run.
    pub run_id: Option<String>,
    pub manifest: Option<String>,
}

#[async_trait]
pub trait AlertStore: Send + Sync {
    /// The export's alert records, by key.
    async fn alerts(&self, export: &str) -> Result<Vec<AlertRecord>, HistoryError>;
    /// Saves `record` (with `revision` one more than `expected`) only if the stored record's
    /// revision is still `expected` (0: none stored). Another process that saved first makes it
    /// `HistoryError::Stale`: that process announced the change, so this one must not.
    async fn save_alert(&self, record: &AlertRecord, expected: u64) -> Result<(), HistoryError>;
}
