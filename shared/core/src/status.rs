//! The status of every export, as `sluice status` and the control API show it: state and
//! versions, destination, schedule and next run, orchestrations, and per table the last run,
//! the last success, rows, the watermark and the last error; with each integration's latest
//! delivery. Read from the ports only, so the CLI and the control function agree.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{Catalog, CatalogEntry, Lifecycle};
use crate::integrate::backlog;
use crate::orchestrate::Orchestration;
use crate::ports::{DeliveryLedger, HistoryStore, ObjectStore, RunRecord, RunState};
use crate::spec::{Config, ExportSpec, ExportState};
use crate::value::Watermark;
use crate::HistoryError;

/// Opens an export's destination (to read its manifests), when the caller can.
pub type OpenDestination<'a> = &'a (dyn Fn(&ExportSpec) -> Option<Box<dyn ObjectStore>> + Send + Sync);

/// The stores status reads.
pub struct Stores<'a> {
    pub history: &'a dyn HistoryStore,
    pub ledger: &'a dyn DeliveryLedger,
    pub catalog: &'a dyn Catalog,
    /// To count each integration's undelivered manifests; without it they are not counted.
    pub destination: Option<OpenDestination<'a>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub table: String,
    pub last_run: Option<String>,
    pub last_result: Option<String>,
    pub last_finished: Option<DateTime<Utc>>,
    pub rows: u64,
    pub watermark: Option<Watermark>,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    /// The last run's inserts, updates and deletes (the `check` strategy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<crate::manifest::Changes>,
    /// Rows the last run found in its previous window after it closed (missed; a `sluice
    /// backfill` of that window exports them).
    #[serde(skip_serializing_if = "is_zero")]
    pub late_rows: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportStatus {
    pub export: String,
    pub state: String,
    /// For a managed export (`sluice exports`): the version that runs, the pending draft and
    /// the revision changes are made from. Absent for exports written in the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedStatus>,
    /// Who holds the export's lease, while a run is going on.
    pub running: Option<String>,
    pub destination: String,
    pub schedule: Option<String>,
    /// When it runs next: the earliest of its running orchestrations (managed exports), or its
    /// `schedule` counted from its last run (exports of the config file, in AWS).
    pub next_run: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orchestrations: Vec<OrchestrationStatus>,
    pub tables: Vec<TableStatus>,
    /// The export's integrations and their latest delivery.
    pub integrations: Vec<IntegrationStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManagedStatus {
    pub active_version: Option<u64>,
    pub draft_version: Option<u64>,
    pub revision: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IntegrationStatus {
    pub integration: String,
    pub kind: String,
    /// The latest delivery: its manifest, `in_progress` or `done`, counts, and any error.
    pub manifest_key: Option<String>,
    pub state: Option<String>,
    pub rows: u64,
    pub delivered: u64,
    pub failed: u64,
    pub updated_at: Option<DateTime<Utc>>,
    pub failures_key: Option<String>,
    pub error: Option<String>,
    /// Committed manifests not delivered yet (a stopped delivery, and runs behind it); `None`
    /// when the destination could not be read to count them.
    pub undelivered: Option<usize>,
    /// When the oldest of them committed.
    pub oldest_undelivered: Option<DateTime<Utc>>,
}

/// One orchestration as listed.
#[derive(Debug, Clone, Serialize)]
pub struct OrchestrationStatus {
    pub export: String,
    pub orchestration: String,
    pub schedule: String,
    /// running, paused, or "export paused".
    pub state: String,
    pub next_run: Option<DateTime<Utc>>,
    pub destination: String,
    pub rule: String,
    pub created_by: String,
}

impl OrchestrationStatus {
    pub fn of(entry: &CatalogEntry, o: &Orchestration, now: DateTime<Utc>) -> OrchestrationStatus {
        let state = match (o.paused, entry.state) {
            (true, _) => "paused",
            (false, Lifecycle::Active) => "running",
            (false, _) => "export paused",
        };
        OrchestrationStatus {
            export: entry.name.clone(),
            orchestration: o.name.clone(),
            schedule: o.schedule.clone(),
            state: state.into(),
            next_run: (state == "running")
                .then(|| crate::schedule::next_after(&o.schedule, o.created_at, now))
                .flatten(),
            destination: o.destination.clone(),
            rule: o.rule.clone(),
            created_by: o.created_by.clone(),
        }
    }
}

/// Every export that can run (`config.exports`, with the catalog's merged in), then the
/// catalog's drafts (deleted exports are left out).
pub async fn status_of_all(
    stores: &Stores<'_>,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Vec<ExportStatus>, HistoryError> {
    let entries = stores.catalog.entries().await?;
    let mut all = Vec::new();
    for export in &config.exports {
        let entry = entries.iter().find(|e| e.name == export.name);
        all.push(export_status(stores, config, export, entry, now).await?);
    }
    for e in entries.iter().filter(|e| e.state == Lifecycle::Draft) {
        all.push(ExportStatus {
            export: e.name.clone(),
            state: e.state.as_str().into(),
            managed: Some(ManagedStatus { active_version: None, draft_version: e.draft_version, revision: e.revision }),
            running: None,
            destination: String::new(),
            schedule: None,
            next_run: None,
            orchestrations: vec![],
            tables: vec![],
            integrations: vec![],
        });
    }
    Ok(all)
}

/// One runnable export's status; `entry` is its catalog entry when it is a managed one.
pub async fn export_status(
    stores: &Stores<'_>,
    config: &Config,
    export: &ExportSpec,
    entry: Option<&CatalogEntry>,
    now: DateTime<Utc>,
) -> Result<ExportStatus, HistoryError> {
    let runs: Vec<RunRecord> = stores.history.runs(&export.name, 1000).await?;
    let marks = stores.history.watermarks(&export.name).await?;
    let lease = stores.history.lease(&export.name).await?;
    let tables = export
        .tables
        .iter()
        .map(|t| {
            let mine: Vec<&RunRecord> = runs.iter().filter(|r| r.table == t.name).collect();
            let last = mine.first();
            TableStatus {
                table: t.name.clone(),
                last_run: last.map(|r| r.run_id.clone()),
                last_result: last.map(|r| r.state.as_str().to_string()),
                last_finished: last.and_then(|r| r.finished_at),
                rows: last.map_or(0, |r| r.rows),
                watermark: marks.iter().find(|m| m.table == t.name).map(|m| m.watermark.clone()),
                last_success: mine.iter().find(|r| r.state == RunState::Succeeded).map(|r| r.run_id.clone()),
                // The newest error since the last success: an error a later run cured is history.
                last_error: mine.iter().take_while(|r| r.state != RunState::Succeeded).find_map(|r| r.error.clone()),
                changes: last.and_then(|r| r.changes),
                late_rows: last.map_or(0, |r| r.late_rows),
            }
        })
        .collect();
    let mut integrations = Vec::new();
    for spec in config.integrations_of(&export.name) {
        let last = stores.ledger.last_delivery(&spec.name).await?;
        let (delivered, failed) = last.as_ref().map_or((0, 0), |d| d.progress.totals());
        let backlog = match stores.destination.and_then(|open| open(export)) {
            Some(store) => {
                match backlog::undelivered(stores.history, stores.ledger, store.as_ref(), spec, None).await {
                    Ok(b) => Some(b),
                    Err(e) => {
                        tracing::warn!(integration = %spec.name, error = %crate::run::error_chain(&e), "cannot count the undelivered manifests");
                        None
                    }
                }
            }
            None => None,
        };
        integrations.push(IntegrationStatus {
            undelivered: backlog.as_ref().map(Vec::len),
            oldest_undelivered: backlog.as_ref().and_then(|b| b.iter().filter_map(|u| u.committed_at).min()),
            integration: spec.name.clone(),
            kind: spec.kind_name().into(),
            manifest_key: last.as_ref().map(|d| d.id.manifest_key.clone()),
            state: last.as_ref().map(|d| d.state.as_str().into()),
            rows: last.as_ref().map_or(0, |d| d.rows),
            delivered,
            failed,
            updated_at: last.as_ref().map(|d| d.updated_at),
            failures_key: last.as_ref().and_then(|d| d.failures_key.clone()),
            error: last.and_then(|d| d.error),
        });
    }
    let orchestrations: Vec<_> = entry
        .iter()
        .flat_map(|e| e.orchestrations.iter().map(move |o| OrchestrationStatus::of(e, o, now)))
        // Where runs land now: the active version's destination, whatever it was when bound.
        .map(|o| OrchestrationStatus { destination: export.destination.to_string(), ..o })
        .collect();
    let next_run = match entry {
        Some(_) => orchestrations.iter().filter_map(|o| o.next_run).min(),
        None => export.schedule.as_deref().filter(|_| export.state == ExportState::Active).and_then(|s| {
            let anchor = runs.first().map_or(now, |r| r.started_at);
            crate::schedule::next_after(s, anchor, now)
        }),
    };
    Ok(ExportStatus {
        export: export.name.clone(),
        state: export.state.as_str().to_string(),
        managed: entry.map(|e| ManagedStatus {
            active_version: e.active_version,
            draft_version: e.draft_version,
            revision: e.revision,
        }),
        running: lease.map(|l| l.owner.to_string()),
        destination: export.destination.to_string(),
        schedule: export.schedule.clone(),
        next_run,
        orchestrations,
        tables,
        integrations,
    })
}
