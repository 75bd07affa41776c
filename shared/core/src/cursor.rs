//! A table's cursor, shown and moved by hand (`sluice state show|set|rewind`, the control
//! API's `state`).
//!
//! A move is a run of its own: it takes the export's lease (refused while a run holds it), then
//! writes a manifest with no parts into the table's chain, saying who moved the cursor, from
//! where to where and why, and commits the history with it exactly as a run commits. So the
//! move is atomic, a kill between the manifest and the commit is settled by the next run like
//! any run's, `verify` sees the move in the chain (a notice, not a gap or an overlap), and a
//! rebuilt history moves the cursor again.
//!
//! Only timestamp cursors move: a check table keeps only its newest state (the older ones are
//! removed as they are superseded), and a full table has none.

use chrono::Utc;
use serde::Serialize;
use std::time::Duration;

use crate::layout::{new_run_id, RunFolder};
use crate::manifest::{CursorMove, Manifest, Totals, MANIFEST_VERSION};
use crate::ports::{HistoryStore, LeaseOwner, ObjectMeta, ObjectStore, RunRecord, RunState};
use crate::run::chain::previous_manifest;
use crate::spec::export::{ExportSpec, Incremental};
use crate::strategy::Strategy;
use crate::value::{Watermark, Window};
use crate::{BoxError, HistoryError};

/// A table's cursor as the history holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CursorState {
    pub table: String,
    pub strategy: Strategy,
    /// `None` before the table's first committed run (and always for a full table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Watermark>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<chrono::DateTime<Utc>>,
}

/// Every table's cursor (or one table's).
pub async fn show(
    history: &dyn HistoryStore,
    export: &ExportSpec,
    table: Option<&str>,
) -> Result<Vec<CursorState>, MoveError> {
    let marks = history.watermarks(&export.name).await.map_err(|e| MoveError::Failed(e.into()))?;
    let mut out = Vec::new();
    for t in export.tables.iter().filter(|t| table.is_none_or(|n| n == t.name)) {
        let mark = marks.iter().find(|m| m.table == t.name);
        out.push(CursorState {
            table: t.name.clone(),
            strategy: t.incremental.strategy(),
            cursor: mark.map(|m| m.watermark.clone()),
            committed_by: mark.map(|m| m.run_id.clone()),
            committed_at: mark.map(|m| m.committed_at),
        });
    }
    if let Some(name) = table {
        if out.is_empty() {
            return Err(MoveError::Refused(no_table(export, name)));
        }
    }
    Ok(out)
}

/// Where to move a cursor.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A value, written as the cursor's type reads it (`2026-01-31 00:00:00`, `1700000000`).
    Value(String),
    /// Back to where run `RUN` of the table started, so its rows and every later run's are
    /// exported again.
    Run(String),
}

/// A move to make.
#[derive(Debug, Clone)]
pub struct MoveRequest<'a> {
    pub export: &'a ExportSpec,
    pub table: &'a str,
    pub to: Target,
    /// Allow moving forward, past rows that will then never be exported.
    pub forward: bool,
    /// Who moves it (a user and host, or an IAM principal), for the manifest and the history.
    pub by: String,
    pub reason: Option<String>,
    /// This machine, for the lease.
    pub host: String,
}

/// A move made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moved {
    pub table: String,
    pub from: Watermark,
    pub to: Watermark,
    pub run_id: String,
    pub manifest_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The request cannot be done as asked; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// A run holds the export's lease.
    #[error("export {export:?} is running ({holder}); move its cursor once the run has finished")]
    Busy { export: String, holder: String },
    #[error(transparent)]
    Failed(BoxError),
}

fn no_table(export: &ExportSpec, name: &str) -> String {
    let has: Vec<&str> = export.tables.iter().map(|t| t.name.as_str()).collect();
    format!("export {:?} has no table {name:?}; it has: {}", export.name, has.join(", "))
}

/// Moves a table's cursor: see the module's comment.
pub async fn move_cursor(
    history: &dyn HistoryStore,
    store: &dyn ObjectStore,
    req: &MoveRequest<'_>,
) -> Result<Moved, MoveError> {
    let export = req.export;
    let table = export
        .tables
        .iter()
        .find(|t| t.name == req.table)
        .ok_or_else(|| MoveError::Refused(no_table(export, req.table)))?;
    if !matches!(table.incremental, Incremental::Timestamp(_)) {
        return Err(MoveError::Refused(format!(
            "table {:?} uses strategy \"{}\", whose cursor cannot be moved (a check table keeps only its newest state; a full table has no cursor): send a full copy with `sluice run --export {} --full-refresh`",
            table.name,
            table.incremental.strategy(),
            export.name
        )));
    }
    let failed = |e: HistoryError| MoveError::Failed(e.into());
    let run_id = new_run_id(Utc::now());
    let owner = LeaseOwner { run_id: run_id.clone(), host: req.host.clone(), pid: std::process::id() };
    let lease = match history.acquire_lease(&export.name, &owner, Duration::from_secs(300)).await {
        Ok(l) => l,
        Err(HistoryError::LeaseHeld { owner, .. }) => {
            return Err(MoveError::Busy { export: export.name.clone(), holder: owner.to_string() })
        }
        Err(e) => return Err(failed(e)),
    };
    let moved = move_under_lease(history, store, req, &lease, &run_id).await;
    if let Err(e) = history.release_lease(&lease).await {
        tracing::warn!(export = %export.name, error = %e, "releasing the lease after moving the cursor failed; it expires on its own");
    }
    moved
}

async fn move_under_lease(
    history: &dyn HistoryStore,
    store: &dyn ObjectStore,
    req: &MoveRequest<'_>,
    lease: &crate::ports::Lease,
    run_id: &str,
) -> Result<Moved, MoveError> {
    let (export, name) = (req.export, req.table);
    let table = export.tables.iter().find(|t| t.name == name).expect("checked by the caller");
    let failed = |e: HistoryError| MoveError::Failed(e.into());
    // A run a dead process left open is settled by the export's next run; moving the cursor
    // under it would race that settlement.
    let open = history.open_runs(&export.name).await.map_err(failed)?;
    if let Some(r) = open.iter().find(|r| r.table == name) {
        return Err(MoveError::Refused(format!(
            "run {} of table {name:?} was left open by a process that stopped; `sluice run --export {}` settles it, then move the cursor",
            r.run_id, export.name
        )));
    }
    let Some(mark) = history.watermark(&export.name, name).await.map_err(failed)? else {
        return Err(MoveError::Refused(format!(
            "table {name:?} has no committed cursor yet: its next run exports every row anyway"
        )));
    };
    let from = mark.watermark.clone();
    let to = match &req.to {
        Target::Value(raw) => Watermark::parse_like(raw, &from).ok_or_else(|| {
            MoveError::Refused(format!("{raw:?} is not a cursor of the table's type (it is now {from:?})"))
        })?,
        Target::Run(run) => {
            let key = RunFolder::of(&export.name, name, run).manifest();
            let bytes = store.get(&key).await.map_err(MoveError::Failed)?.ok_or_else(|| {
                MoveError::Refused(format!(
                    "run {run} of table {name:?} has no manifest at {key}: name a committed run (sluice history {})",
                    export.name
                ))
            })?;
            let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| MoveError::Failed(e.into()))?;
            m.window.low.ok_or_else(|| {
                MoveError::Refused(format!(
                    "run {run} was the table's first (its window has no start): to export every row again, run `sluice run --export {} --full-refresh`",
                    export.name
                ))
            })?
        }
    };
    match to.partial_cmp_same_type(&from) {
        None => {
            return Err(MoveError::Refused(format!("{to} does not compare with the cursor {from} (another type)")))
        }
        Some(std::cmp::Ordering::Equal) => {
            return Err(MoveError::Refused(format!("the cursor of table {name:?} is {from} already")))
        }
        Some(std::cmp::Ordering::Greater) if !req.forward => {
            return Err(MoveError::Refused(format!(
                "{to} is after the cursor {from}: rows stamped in between would never be exported. To skip them on purpose, use `sluice state set` with --skip"
            )))
        }
        _ => {}
    }

    let folder = RunFolder::of(&export.name, name, run_id);
    let previous = previous_manifest(history, store, export, table, Some(&mark.run_id)).await;
    let shape = previous.as_ref().and_then(|p| p.manifest.as_ref());
    let now = Utc::now();
    // The window the history and the chain read the new cursor from: everything up to `to`,
    // with no rows in it (a manifest marked as a move).
    let window = Window { low: None, high: Some(to.clone()) };
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        export: export.name.clone(),
        table: name.to_string(),
        run_id: run_id.to_string(),
        strategy: Strategy::Timestamp,
        full_refresh: false,
        window: window.clone(),
        format: export.format.describe(),
        columns: shape.map(|m| m.columns.clone()).unwrap_or_default(),
        parts: vec![],
        totals: Totals { rows: 0, bytes: 0, parts: 0 },
        null_rows: 0,
        changes: None,
        started_at: now,
        written_at: now,
        previous: previous.as_ref().map(|p| p.link.clone()),
        schema: shape.and_then(|m| m.schema.clone()),
        added_columns: vec![],
        late_rows: None,
        backfill: None,
        moved: Some(CursorMove { from: from.clone(), to: to.clone(), by: req.by.clone(), reason: req.reason.clone() }),
    };
    let mut record = RunRecord {
        export: export.name.clone(),
        table: name.to_string(),
        run_id: run_id.to_string(),
        state: RunState::Running,
        strategy: Strategy::Timestamp,
        full_refresh: false,
        window,
        base_watermark: Some(from.clone()),
        rows: 0,
        bytes: 0,
        parts: 0,
        null_rows: 0,
        prefix: folder.prefix().to_string(),
        manifest_key: folder.manifest(),
        started_at: now,
        finished_at: None,
        error: None,
        changes: None,
        late_rows: 0,
        backfill: false,
    };
    history.begin_run(lease, &record).await.map_err(failed)?;
    let body = manifest.to_json().map_err(|e| MoveError::Failed(e.into()))?;
    let meta = ObjectMeta { content_type: "application/json".into(), content_encoding: None };
    if let Err(e) = store.put(&record.manifest_key, body, &meta).await {
        record.error = Some(format!("writing the manifest failed: {e}"));
        let _ = history.fail_run(&record).await;
        return Err(MoveError::Failed(e));
    }
    record.state = RunState::Succeeded;
    record.finished_at = Some(Utc::now());
    let moved = Moved {
        table: name.to_string(),
        from: from.clone(),
        to: to.clone(),
        run_id: run_id.to_string(),
        manifest_key: record.manifest_key.clone(),
    };
    match history.commit_run(lease, &record, Some(&from), Some(&to)).await {
        Ok(()) => {}
        // Another process holds the lease now: its reconciliation settles this move from its
        // manifest, so the manifest stays.
        Err(HistoryError::LeaseLost) => return Err(failed(HistoryError::LeaseLost)),
        Err(e) => {
            // An answer lost on the way may hide a commit that landed (a retry then sees the
            // watermark moved): ask the history before removing anything.
            match history.run(&export.name, name, run_id, record.started_at).await {
                Ok(Some(r)) if r.state == RunState::Succeeded => return Ok(moved),
                Ok(_) if matches!(e, HistoryError::WatermarkMoved { .. }) => {
                    let _ = store.delete(&record.manifest_key).await;
                    record.state = RunState::Failed;
                    record.error = Some(format!("the commit was refused: {e}"));
                    let _ = history.fail_run(&record).await;
                    return Err(failed(e));
                }
                // Unknown: the manifest stays and the record `running`; the export's next run
                // settles it (commits it from its manifest, or not).
                _ => {
                    return Err(MoveError::Failed(
                        format!("the history did not answer the commit ({e}); the export's next run settles the move from its manifest").into(),
                    ))
                }
            }
        }
    }
    Ok(moved)
}
