//! The backlog: an integration's committed manifests whose delivery has not finished, oldest
//! first. A delivery that stops (an API down) leaves its manifest behind; the next run, and the
//! integration function's next event, deliver the backlog in run order before anything newer,
//! and `status` counts it.
//!
//! The history says which runs committed; the ledger says which deliveries finished. Walking a
//! table's committed runs from the newest, everything above the newest finished delivery is
//! undelivered, so the walk reads one manifest and one ledger record per undelivered run, plus
//! one for the boundary. A table the integration never finished a delivery of is undelivered
//! from its oldest attempted manifest, or the oldest committed within `FIRST_DELIVERY_GRACE`,
//! on: runs committed before that (before the integration was configured) are not sent. When
//! the walk reaches the end of what it reads
//! (`LOOKBACK` records) without finding a boundary, everything it walked is undelivered: a
//! backlog older than that may be missing from the list, but none of it is dropped as
//! "before the integration".
//!
//! Order is the promise: [`turn`] tells the integration function whether a manifest's rows may
//! go now. Its run must have committed (the history says so: a manifest anyone else put under
//! the prefix is not delivered), and every earlier committed run of its table goes first, so a
//! delivery that waited out an outage never lands after, and over, a newer one.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::BoxError;
use crate::integrate::spec::IntegrationSpec;
use crate::ports::{
    DeliveryId, DeliveryLedger, DeliveryRecord, DeliveryState, HistoryStore, ObjectStore, RunRecord, RunState,
};
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

/// How recently before an integration's first finished delivery of a table a run must have
/// committed to be delivered too. A new integration starts with the runs whose events it gets;
/// when two arrive at once (a backlog at deployment, an API down from the start), the later
/// one must not go first, so runs committed this recently are taken as the integration's and
/// delivered oldest first. Older ones, from before the integration, are not sent.
pub const FIRST_DELIVERY_GRACE: chrono::Duration = chrono::Duration::hours(1);

/// One table's committed runs as one integration sees them.
struct TableWalk {
    /// Committed, not delivered, oldest first.
    undelivered: Vec<Undelivered>,
    /// When the newest run whose delivery finished (or was skipped) started, if one is read.
    delivered_through: Option<DateTime<Utc>>,
}

/// `runs` is the export's newest run records, newest first; `read_all` says they are all of them.
async fn walk_table(
    runs: &[RunRecord],
    read_all: bool,
    ledger: &dyn DeliveryLedger,
    store: &dyn ObjectStore,
    spec: &IntegrationSpec,
    table: &str,
    now: DateTime<Utc>,
) -> Result<TableWalk, BacklogError> {
    let committed = runs.iter().filter(|r| r.table == table && r.state == RunState::Succeeded);
    let mut walked = Vec::new();
    let mut boundary = false;
    let mut delivered_through = None;
    for run in committed {
        // A manifest gone (removed by retention) ends what can be delivered.
        let Some(record) = delivery_of(ledger, store, spec, &run.manifest_key).await? else {
            boundary = true;
            break;
        };
        if record.as_ref().is_some_and(|r| r.state == DeliveryState::Done) {
            boundary = true;
            delivered_through = Some(run.started_at);
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
        // Never finished one: from the oldest attempted or recent run on (nothing, if none).
        let recent = |u: &Undelivered| u.committed_at.is_some_and(|c| now - c <= FIRST_DELIVERY_GRACE);
        match walked.iter().rposition(|u| u.attempted || recent(u)) {
            Some(oldest) => walked.truncate(oldest + 1),
            None => walked.clear(),
        }
    } else if !boundary {
        tracing::warn!(integration = %spec.name, table, lookback = LOOKBACK,
            "no finished delivery among the newest run records: an older backlog may not be listed");
    }
    walked.reverse();
    Ok(TableWalk { undelivered: walked, delivered_through })
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
    let now = Utc::now();
    let mut out = Vec::new();
    for table in tables {
        out.extend(walk_table(&runs, read_all, ledger, store, spec, table, now).await?.undelivered);
    }
    out.sort_by(|a, b| (a.started_at, &a.table).cmp(&(b.started_at, &b.table)));
    Ok(out)
}

/// Whether a manifest may be delivered now, and what must go before it.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// Its run committed. `earlier` (oldest first) go before it: every earlier committed run of
    /// its table that is not delivered. `later` are the ones after it, for whoever delivers it
    /// to carry on with.
    Ready { earlier: Vec<Undelivered>, later: Vec<Undelivered> },
    /// Its run has not committed (yet): the event came before the commit, or the run stopped
    /// after writing it and the next run settles it. The sweep delivers it once committed.
    Uncommitted { run_id: String },
    /// No committed run wrote it: the history has no such run, the run failed, or its manifest
    /// is elsewhere. Somebody else wrote the file; it is not delivered.
    Foreign { why: String },
    /// A later run of its table was delivered already: sending this one now would overwrite
    /// newer rows with older ones. Only an operator can say it should go (`--manifest`).
    Stale { delivered_run: String },
}

/// The ledger's record of `spec`'s delivery of the manifest at `key` as it is now (its version
/// is the delivery's identity): `None` when the manifest is gone, `Some(None)` when never tried.
async fn delivery_of(
    ledger: &dyn DeliveryLedger,
    store: &dyn ObjectStore,
    spec: &IntegrationSpec,
    key: &str,
) -> Result<Option<Option<DeliveryRecord>>, BacklogError> {
    let tagged = store.get_tagged(key).await.map_err(|source| BacklogError::Store { key: key.into(), source })?;
    let Some((_, etag)) = tagged else { return Ok(None) };
    let id = DeliveryId { integration: spec.name.clone(), manifest_key: key.into(), etag };
    ledger.delivery(&id).await.map(Some).map_err(BacklogError::History)
}

/// Whether the delivery of the manifest at `key` (as it is now) finished.
async fn delivered(
    ledger: &dyn DeliveryLedger,
    store: &dyn ObjectStore,
    spec: &IntegrationSpec,
    key: &str,
) -> Result<bool, BacklogError> {
    let record = delivery_of(ledger, store, spec, key).await?.flatten();
    Ok(record.is_some_and(|r| r.state == DeliveryState::Done))
}

/// Where `manifest`, read at `key`, stands for `spec`. The run it names (`run_id`, `table`,
/// `started_at`) is looked up directly, however old.
pub async fn turn(
    history: &dyn HistoryStore,
    ledger: &dyn DeliveryLedger,
    store: &dyn ObjectStore,
    spec: &IntegrationSpec,
    key: &str,
    manifest: &crate::manifest::Manifest,
) -> Result<Turn, BacklogError> {
    let (run_id, table) = (manifest.run_id.as_str(), manifest.table.as_str());
    let found = history.run(&spec.export, table, run_id, manifest.started_at).await.map_err(BacklogError::History)?;
    let Some(run) = found else {
        return Ok(Turn::Foreign {
            why: format!("the history of export {:?} has no run {run_id} of table {table:?}", spec.export),
        });
    };
    let run = &run;
    if run.manifest_key != key {
        return Ok(Turn::Foreign { why: format!("run {run_id} wrote its manifest to {}, not here", run.manifest_key) });
    }
    match run.state {
        RunState::Succeeded => {}
        RunState::Running => return Ok(Turn::Uncommitted { run_id: run_id.into() }),
        RunState::Failed => {
            return Ok(Turn::Foreign { why: format!("run {run_id} failed, so its manifest is not a committed one") })
        }
    }
    let runs = history.runs(&spec.export, LOOKBACK).await.map_err(BacklogError::History)?;
    let walk = walk_table(&runs, runs.len() < LOOKBACK, ledger, store, spec, table, Utc::now()).await?;
    match walk.undelivered.iter().position(|u| u.manifest_key == key) {
        Some(at) => {
            let mut earlier = walk.undelivered;
            let later = earlier.split_off(at + 1);
            earlier.pop();
            Ok(Turn::Ready { earlier, later })
        }
        // Delivered already (the deliverer says "duplicate"), or delivered through a later run.
        None => match walk.delivered_through {
            Some(through) if through > run.started_at && !delivered(ledger, store, spec, key).await? => {
                let newer = runs.iter().find(|r| r.table == table && r.started_at == through);
                Ok(Turn::Stale { delivered_run: newer.map_or_else(|| through.to_rfc3339(), |r| r.run_id.clone()) })
            }
            _ => Ok(Turn::Ready { earlier: Vec::new(), later: Vec::new() }),
        },
    }
}
