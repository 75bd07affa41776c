//! The event port: what Sluice announces when a run or a delivery ends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::BoxError;
use crate::manifest::Changes;
use crate::ports::history::RunState;
use crate::strategy::Strategy;
use crate::value::Window;

/// The run summary's schema version (it is also the body of `ExportSucceeded`/`ExportFailed`).
/// Version 2 added the table outcomes' `added_columns`, `late_rows` and `backfill` (absent when
/// empty).
pub const SUMMARY_VERSION: u32 = 2;

/// What Sluice announces: a finished export run, or a finished (or stopped) delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    /// `ExportSucceeded`, `ExportFailed`, `IntegrationSucceeded`, `IntegrationFailed` or
    /// `ExportAlert`.
    pub detail_type: String,
    pub detail: EventDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventDetail {
    Export(ExportRunSummary),
    Integration(DeliverySummary),
    /// `ExportAlert`: an alert opening or closing (`alert::AlertEvent`).
    Alert(crate::ports::alerts::AlertEvent),
}

#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, event: &RunEvent) -> Result<(), BoxError>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableOutcome {
    pub table: String,
    /// `full`, `timestamp` or `check`.
    pub strategy: Strategy,
    pub state: RunState,
    pub window: Window,
    pub rows: u64,
    pub bytes: u64,
    pub parts: u32,
    pub null_rows: u64,
    pub manifest_key: Option<String>,
    pub error: Option<String>,
    /// A `check` run's inserts, updates and deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// Columns the source added, exported from this run on (`on_schema_change = "add_columns"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_columns: Vec<crate::value::Column>,
    /// Rows found in the previous run's window after it closed: they were missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_rows: Option<crate::manifest::LateRows>,
    /// A backfill's run: outside the chain, the cursor unmoved.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
}

impl TableOutcome {
    /// A table whose run failed: nothing written, nothing committed.
    pub fn failed(table: &str, strategy: Strategy, error: String) -> TableOutcome {
        TableOutcome {
            table: table.to_string(),
            strategy,
            state: RunState::Failed,
            window: Window::default(),
            rows: 0,
            bytes: 0,
            parts: 0,
            null_rows: 0,
            manifest_key: None,
            error: Some(error),
            changes: None,
            added_columns: vec![],
            late_rows: None,
            backfill: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRunSummary {
    pub version: u32,
    pub export: String,
    pub run_id: String,
    pub succeeded: bool,
    pub tables: Vec<TableOutcome>,
    pub rows: u64,
    pub bytes: u64,
    pub parts: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// What a finished (or stopped) delivery reports, in its event and to the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverySummary {
    pub version: u32,
    pub integration: String,
    pub kind: String,
    pub export: String,
    pub table: String,
    pub run_id: String,
    pub manifest_key: String,
    /// Rows in the manifest.
    pub rows: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Where the failed records are (relative to the export's destination), if any failed.
    pub failures_key: Option<String>,
    /// Every row delivered or written to the failures: the delivery will not be attempted again.
    pub done: bool,
    pub requests: u64,
    pub retries: u64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub error: Option<String>,
}
