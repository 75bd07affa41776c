//! The backlog: an integration's committed manifests whose delivery has not finished, oldest
//! first. A delivery that stops (an API down) leaves its manifest behind; the next run, and the
//! integration function's next event, deliver the backlog in run order before anything newer,
//! and `status` counts it.
//!
//! The history says which runs committed; the ledger says which deliveries finished. Walking a
//! table's committed runs from the newest, everything above the newest finished delivery is
//! undelivered, so the walk reads one manifest and one ledger record per undelivered run, plus
//! one for the boundary. A table the integration never finished a delivery of is undelivered
//! from its oldest attempted manifest on: runs committed before the integration's first attempt
//! (before it was configured) are not sent. When the walk reaches the end of what it reads
//! (`LOOKBACK` records) without finding a boundary, everything it walked is undelivered: a
//! backlog older than that may be missing from the list, but none of it is dropped as
//! "before the integration".

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::BoxError;
use crate::integrate::spec::IntegrationSpec;
use crate::ports::{DeliveryId, DeliveryLedger, DeliveryState, HistoryStore, ObjectStore, RunState};
use crate::HistoryError;

/// How many of an export's newest run records the walk reads: a backlog older than that is
/// not seen (nor counted), which `status` says.
pub const LOOKBACK: usize = 500;

/// A committed manifest not yet delivered by one integration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Undelivered {
    pub table: String,
    pub run_id: String,
    pub manifest_key: String,
    /// When its run started: runs of one export are ordered by it (their lease keeps them apart).
    pub started_at: DateTime<Utc>,
    /// When its run committed.
    pub committed_at: Option<DateTime<Utc>>,
    /// Whether a delivery of it started (and stopped), as opposed to never being tried.
    pub attempted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BacklogError {
    #[error("reading the history failed")]
    History(#[source] HistoryError),
    #[error("reading manifest {key} failed")]
    Store {
        key: String,
        #[source]
        source: BoxError,
    },
}

/// `spec`'s undelivered manifests of its export (of `only` that table, when given), oldest
/// first (by run, then table).
pub async fn undelivered(
    history: &dyn HistoryStore,
    ledger: &dyn DeliveryLedger,
    store: &dyn ObjectStore,
    spec: &IntegrationSpec,
    only: Option<&str>,
) -> Result<Vec<Undelivered>, BacklogError> {
    let runs = history.runs(&spec.export, LOOKBACK).await.map_err(BacklogError::History)?;
    let read_all = runs.len() < LOOKBACK;
    let mut tables: Vec<&str> = runs
        .iter()
        .map(|r| r.table.as_str())
        .filter(|t| spec.wants(&spec.export, t) && only.is_none_or(|o| o == *t))
        .collect();
    tables.sort_unstable();
    tables.dedup();
    let mut out = Vec::new();
    for table in tables {
        // Newest first, as the history lists them.
        let committed = runs.iter().filter(|r| r.table == table && r.state == RunState::Succeeded);
        let mut walked = Vec::new();
        let mut boundary = false;
        for run in committed {
            let tagged = store
                .get_tagged(&run.manifest_key)
                .await
                .map_err(|source| BacklogError::Store { key: run.manifest_key.clone(), source })?;
            // A manifest gone (removed by retention) ends what can be delivered.
            let Some((_, etag)) = tagged else {
                boundary = true;
                break;
            };
            let id = DeliveryId { integration: spec.name.clone(), manifest_key: run.manifest_key.clone(), etag };
            let record = ledger.delivery(&id).await.map_err(BacklogError::History)?;
            if record.as_ref().is_some_and(|r| r.state == DeliveryState::Done) {
                boundary = true;
                break;
            }
            walked.push(Undelivered {
                table: table.to_string(),
                run_id: run.run_id.clone(),
                manifest_key: run.manifest_key.clone(),
                started_at: run.started_at,
                committed_at: run.finished_at,
                attempted: record.is_some(),
            });
        }
        if !boundary && read_all {
            // Never finished one: from the oldest attempted on (nothing, if none was tried).
            match walked.iter().rposition(|u| u.attempted) {
                Some(oldest) => walked.truncate(oldest + 1),
                None => walked.clear(),
            }
        } else if !boundary {
            tracing::warn!(integration = %spec.name, table, lookback = LOOKBACK,
                "no finished delivery among the newest run records: an older backlog may not be listed");
        }
        walked.reverse();
        out.extend(walked);
    }
    out.sort_by(|a, b| (a.started_at, &a.table).cmp(&(b.started_at, &b.table)));
    Ok(out)
}
