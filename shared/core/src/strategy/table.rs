//! The one trait an incremental strategy implements, and the row copy two of them share. Adding
//! a strategy is a file beside `full.rs` implementing it, a variant of `Strategy` and its line in
//! `choose::of`; the runner's protocol (lease, reconcile, plan, stream, manifest last,
//! conditional commit) does not change.

use async_trait::async_trait;
use futures::StreamExt;

use super::plan::{Columns, TablePlan};
use super::Cursor;
use crate::error::{BoxError, Result};
use crate::layout::RunFolder;
use crate::manifest::Changes;
use crate::part::PartWriter;
use crate::ports::{ObjectStore, Query, Source};
use crate::run::context::TableRun;
use crate::value::Window;

#[async_trait]
pub trait TableStrategy: Send + Sync {
    /// Plans the read from the table's columns and the cursor the last committed run left
    /// (`None` on a first run or a full refresh, when `full_refresh` says which).
    async fn plan(
        &self,
        source: &dyn Source,
        columns: &Columns<'_>,
        committed: Option<Cursor>,
        full_refresh: bool,
    ) -> Result<TablePlan>;

    /// Streams the plan's rows into parts; what changed, for strategies that know (`check`).
    /// A failure may leave files in the run's folder: the runner removes the folder. By
    /// default every row the query returns is copied as read (`full`, `timestamp`).
    async fn stream(
        &self,
        run: &mut TableRun<'_>,
        plan: &TablePlan,
        query: &Query,
        parts: &mut PartWriter<'_>,
    ) -> Result<Option<Changes>> {
        copy_rows(run, plan, query, parts).await
    }

    /// The cursor a successful run commits, its files written in `folder`.
    fn cursor_to_commit(&self, window: &Window, base: Option<&Cursor>, folder: &RunFolder) -> Option<Cursor>;

    /// After a run moved the table's cursor from `base` to `committed`, by whichever path
    /// (its own process or reconciliation): remove what only `base` referenced.
    async fn committed(
        &self,
        _store: &dyn ObjectStore,
        _base: Option<&Cursor>,
        _committed: Option<&Cursor>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Copies every row the query returns into the parts, as read: the default `stream`.
/// A source can sit on one statement for long (a warehouse resuming, a slow query): it is
/// waited for only until the deadline or an interrupt, and dropping the pending future is how
/// the source learns to cancel its statement.
pub async fn copy_rows(
    run: &mut TableRun<'_>,
    plan: &TablePlan,
    query: &Query,
    parts: &mut PartWriter<'_>,
) -> Result<Option<Changes>> {
    let stop = run.stop();
    let (mut rows, tally) = match &plan.checks {
        Some(checks) => stop
            .until(run.source.read_counting(query, checks))
            .await
            .map_err(|h| run.halted(0, h))?
            .map(|(rows, tally)| (rows, Some(tally))),
        None => stop.until(run.source.read(query)).await.map_err(|h| run.halted(0, h))?.map(|rows| (rows, None)),
    }
    .map_err(|e| run.source_error(e))?;
    while let Some(batch) = stop.until(rows.next()).await.map_err(|h| run.halted(parts.rows(), h))? {
        let batch = batch.map_err(|e| run.source_error(e))?;
        stop.check().map_err(|h| run.halted(parts.rows(), h))?;
        parts.write_batch(&batch).await.map_err(|e| run.part_error(&plan.columns, e))?;
        run.observer.progress(&run.table.name, parts.rows(), parts.bytes());
        run.keep_lease().await?;
    }
    // Unset when a reader ended without filling it: the runner then counts on its own.
    run.counted = tally.and_then(|t| t.get().copied());
    Ok(None)
}
