//! The history rebuilt from the destination: when the history lost an export (its file was
//! deleted, the table is new, the account is new), the committed manifests still say every run,
//! window and cursor. Once `verify` proves them a chain, each is recorded as a succeeded run and
//! the watermark is moved along it exactly as the runs moved it, so the next run carries on
//! where the last committed one ended.

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use std::time::Duration;

use super::{committed_cursor, Report, Scope, Verifier};
use crate::error::BoxError;
use crate::layout::{new_run_id, RunFolder};
use crate::manifest::Manifest;
use crate::ports::{HistoryStore, LeaseOwner, ObjectStore, RunRecord, RunState};
use crate::value::Watermark;

/// What a rebuild did for one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rebuilt {
    pub table: String,
    /// Runs recorded from their manifests.
    pub runs: u64,
    /// Runs the history already had (left as they were).
    pub kept: u64,
    /// The watermark the table's history now holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Watermark>,
}

/// Why a rebuild did not start.
#[derive(Debug)]
pub enum RebuildError {
    /// `verify` found violations: the files are no proof to rebuild from.
    Unverified(Report),
    /// The export's lease is held (a run is going on).
    Busy(String),
    Failed(BoxError),
}

impl std::fmt::Display for RebuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RebuildError::Unverified(report) => write!(
                f,
                "the destination does not verify ({} violation(s)), so the history is not rebuilt from it: see `sluice verify` and fix what it names first",
                report.violations()
            ),
            RebuildError::Busy(holder) => write!(f, "the export is running ({holder}); rebuild once it has finished"),
            RebuildError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RebuildError {}

/// Rebuilds `scope.export`'s history (one table with `scope.table`) from its verified manifests.
pub async fn rebuild(
    store: &dyn ObjectStore,
    history: &dyn HistoryStore,
    scope: &Scope,
    host: &str,
) -> Result<Vec<Rebuilt>, RebuildError> {
    let export =
        scope.export.clone().ok_or_else(|| RebuildError::Failed("a rebuild needs the export's name".into()))?;
    let whole = Scope { since: None, ..scope.clone() };
    // The files alone: a history that lost the export cannot agree with them.
    let report = Verifier { store, history: None }.verify(&whole).await.map_err(RebuildError::Failed)?;
    if report.violations() > 0 {
        return Err(RebuildError::Unverified(report));
    }
    // A history that knows some runs already (a rebuild that stopped part way, a history
    // restored from a backup) is caught up: the runs it records are kept, and the cursor is
    // carried through them, so the first run recorded commits on the history's own watermark.
    // One whose watermark is not on the chain refuses that commit (the watermark moved), and
    // nothing is written for that table.

    let owner = LeaseOwner {
        run_id: format!("rebuild-{}", new_run_id(Utc::now())),
        host: host.to_string(),
        pid: std::process::id(),
    };
    let lease = match history.acquire_lease(&export, &owner, LEASE_TTL).await {
        Ok(l) => l,
        Err(crate::HistoryError::LeaseHeld { owner, .. }) => return Err(RebuildError::Busy(owner.to_string())),
        Err(e) => return Err(RebuildError::Failed(e.into())),
    };
    // The lease is released once the records are written; after a failure it expires.
    record_all(store, history, &whole, lease).await.map_err(RebuildError::Failed)
}

/// How long the rebuild's lease lasts between renewals.
const LEASE_TTL: Duration = Duration::from_secs(300);

async fn record_all(
    store: &dyn ObjectStore,
    history: &dyn HistoryStore,
    scope: &Scope,
    mut lease: crate::ports::Lease,
) -> Result<Vec<Rebuilt>, BoxError> {
    let verifier = Verifier { store, history: None };
    let prefix = scope.prefix();
    let mut manifests = verifier.manifests(&prefix);
    let mut done: Vec<Rebuilt> = Vec::new();
    let mut watermark: Option<Watermark> = None;
    while let Some(next) = manifests.next().await {
        let (key, m) = next?;
        // Renewed as it goes: a scheduled run must not take the lease from a long rebuild.
        if lease.expires_at - Utc::now() < chrono::Duration::seconds(LEASE_TTL.as_secs() as i64 / 2) {
            lease = history.renew_lease(&lease, LEASE_TTL).await?;
        }
        if done.last().is_none_or(|t| t.table != m.table) {
            done.push(Rebuilt { table: m.table.clone(), runs: 0, kept: 0, watermark: None });
            watermark = None;
        }
        let table = done.last_mut().expect("pushed above");
        // A backfill's run is recorded, and leaves the cursor where the chain has it.
        let (folder, next) = match m.backfill {
            Some(_) => (RunFolder::backfill(&m.export, &m.table, &m.run_id), None),
            None => {
                let folder = RunFolder::of(&m.export, &m.table, &m.run_id);
                let next = committed_cursor(&m, &folder);
                (folder, next)
            }
        };
        let known = history.run(&m.export, &m.table, &m.run_id, m.started_at).await?;
        if known.is_some_and(|r| r.state == RunState::Succeeded) {
            table.kept += 1;
        } else {
            let mut record = record_of(&m, &key, &folder, watermark.clone());
            history.begin_run(&lease, &record).await?;
            record.state = RunState::Succeeded;
            // The watermark moves as the run moved it: a full run leaves it where it was.
            history.commit_run(&lease, &record, watermark.as_ref(), next.as_ref()).await.map_err(|e| {
                format!(
                    "table {:?}, run {}: {e}: the history's watermark is not on the files' chain, so the table's later runs are not recorded",
                    m.table, m.run_id
                )
            })?;
            table.runs += 1;
        }
        if next.is_some() {
            watermark = next;
        }
        table.watermark = watermark.clone();
    }
    if let Err(e) = history.release_lease(&lease).await {
        tracing::warn!(export = %lease.export, error = %e, "releasing the lease after the rebuild failed; it expires on its own");
    }
    Ok(done)
}

/// The run record a committed manifest stands for.
fn record_of(m: &Manifest, key: &str, folder: &RunFolder, base: Option<Watermark>) -> RunRecord {
    RunRecord {
        export: m.export.clone(),
        table: m.table.clone(),
        run_id: m.run_id.clone(),
        state: RunState::Running,
        strategy: m.strategy,
        full_refresh: m.full_refresh,
        window: m.window.clone(),
        base_watermark: base,
        rows: m.totals.rows,
        bytes: m.totals.bytes,
        parts: m.totals.parts,
        null_rows: m.null_rows,
        prefix: folder.prefix().to_string(),
        manifest_key: key.to_string(),
        started_at: m.started_at,
        finished_at: Some(m.written_at),
        error: None,
        changes: m.changes,
        late_rows: 0,
        backfill: m.backfill.is_some(),
    }
}
