//! One export run: take the export's lease, reconcile runs a dead process left behind, then per
//! table plan the window, stream rows into parts, write the manifest last and commit the run and
//! the watermark in one conditional step. Any failure before the commit removes what the run
//! wrote and leaves the watermark where it was, so the next run exports the window again.

pub mod chain;
pub mod context;
mod reconcile;

use self::reconcile::{after_commit, reconcile};

use chrono::Utc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

use self::context::{halted, part_error, LeaseKeeper, TableRun};
pub use self::context::{Observer, Ports, Quiet};
pub use self::reconcile::foreign_record;
pub use crate::error::error_chain;
use crate::error::{BoxError, Error, HistoryError, Result};
use crate::format::FileFormat;
pub use crate::layout::{is_run_id, new_run_id};
use crate::layout::{path_segment, RunFolder};
use crate::manifest::{
    schema_fingerprint, LateRows, Manifest, ManifestLink, PartInfo, Requested, Totals, MANIFEST_VERSION,
};
use crate::part::PartWriter;
pub use crate::ports::events::{ExportRunSummary, TableOutcome, SUMMARY_VERSION};
use crate::ports::{
    count_checks, EventDetail, Filter, Lease, LeaseOwner, ObjectMeta, Query, RunEvent, RunRecord, RunState,
    UnloadTarget, WindowChecks,
};
use crate::spec::export::{ExportSpec, Incremental, TableMode, TableSpec};
use crate::stop::{Interrupt, Stop};
use crate::strategy::choose::{self as strategies, next_watermark, plan_table};
use crate::strategy::plan::TablePlan;
use crate::strategy::Strategy;
use crate::value::{Column, UpperBound, Watermark, Window};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Ignore the committed watermark: export everything up to `high`, then commit `high`.
    pub full_refresh: bool,
    /// Only these tables (as named in the config); all when `None`.
    pub tables: Option<Vec<String>>,
    /// The host and process this run executes in, for the lease.
    pub host: String,
    pub pid: u32,
    /// How long the lease is held without being renewed.
    pub lease_ttl: Duration,
    /// When the run must have stopped (a Lambda's deadline less a margin for cleaning up):
    /// past it, no new batch or table is started and the table's run fails cleanly.
    pub stop_by: Option<Instant>,
    /// A signal to stop (SIGINT, SIGTERM, the runtime's shutdown): the run stops reading at its
    /// next step, aborts its parts, records the table's run as failed ("interrupted"), releases
    /// the lease and returns.
    pub interrupt: Option<Interrupt>,
    /// Export one table's bounded window again, outside the chain, instead of its next window.
    pub backfill: Option<Backfill>,
}

/// A backfill: the rows of `table` stamped in `(from, to]`, exported into the table's
/// `backfills/` folder with a manifest that says so, outside the chain: the cursor does not
/// move, and `to` may not pass it (later rows are the next run's). Atomic as any run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backfill {
    pub table: String,
    /// Values of the table's stamp, read as the cursor's type; without `from`, from the first
    /// row.
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
    /// Who asks (a user and host, an IAM principal); the manifest names them.
    #[serde(default = "Backfill::someone")]
    pub by: String,
    #[serde(default)]
    pub reason: Option<String>,
}

impl Backfill {
    fn someone() -> String {
        "the export function's caller".into()
    }
}

impl RunOptions {
    fn stop(&self) -> Stop {
        Stop { deadline: self.stop_by, interrupt: self.interrupt.clone() }
    }
}

/// What a table run's manifest says beside its window and parts.
struct Outside<'a> {
    added: &'a [Column],
    /// The previous run's manifest, whose window the checks count again for late rows (none
    /// for a backfill, which is outside the chain).
    late_of: Option<&'a Manifest>,
    backfill: Option<Requested>,
}

pub struct Runner<'a> {
    ports: Ports<'a>,
    observer: &'a dyn Observer,
}

impl<'a> Runner<'a> {
    pub fn new(ports: Ports<'a>, observer: &'a dyn Observer) -> Self {
        Runner { ports, observer }
    }

    /// Runs one export. `Err` when the run could not start (lease held, history unreachable);
    /// otherwise a summary whose `succeeded` says whether every table committed.
    pub async fn run(&self, export: &ExportSpec, opts: &RunOptions) -> Result<ExportRunSummary> {
        let started = Instant::now();
        let started_at = Utc::now();
        let run_id = new_run_id(started_at);
        let owner = LeaseOwner { run_id: run_id.clone(), host: opts.host.clone(), pid: opts.pid };
        let history_err = |source: BoxError| Error::History { export: export.name.clone(), source };

        let lease = match self.ports.history.acquire_lease(&export.name, &owner, opts.lease_ttl).await {
            Ok(lease) => lease,
            Err(HistoryError::LeaseHeld { owner, expires_at }) => {
                return Err(Error::LeaseHeld { export: export.name.clone(), owner, expires_at })
            }
            Err(e) => return Err(history_err(Box::new(e))),
        };
        info!(export = %export.name, run_id = %run_id, "lease acquired");

        let result = self.run_tables(export, opts, &lease, &run_id).await;
        if let Err(e) = self.ports.history.release_lease(&lease).await {
            warn!(export = %export.name, error = %e, "releasing the lease failed; it expires by itself");
        }
        let tables = result?;

        let failed: Vec<&TableOutcome> = tables.iter().filter(|t| t.state != RunState::Succeeded).collect();
        let error = (!failed.is_empty()).then(|| {
            error_chain(&Error::TablesFailed {
                export: export.name.clone(),
                count: failed.len(),
                tables: failed.iter().map(|t| t.table.as_str()).collect::<Vec<_>>().join(", "),
            })
        });
        let summary = ExportRunSummary {
            version: SUMMARY_VERSION,
            export: export.name.clone(),
            run_id,
            succeeded: failed.is_empty(),
            rows: tables.iter().map(|t| t.rows).sum(),
            bytes: tables.iter().map(|t| t.bytes).sum(),
            parts: tables.iter().map(|t| t.parts).sum(),
            tables,
            started_at,
            finished_at: Utc::now(),
            duration_ms: started.elapsed().as_millis() as u64,
            error,
        };
        let detail_type = if summary.succeeded { "ExportSucceeded" } else { "ExportFailed" };
        let event = RunEvent { detail_type: detail_type.into(), detail: EventDetail::Export(summary.clone()) };
        if let Err(e) = self.ports.events.publish(&event).await {
            // The run is committed either way; a lost event must not make it look failed.
            warn!(export = %export.name, error = %e, "publishing the run event failed");
        }
        Ok(summary)
    }

    async fn run_tables(
        &self,
        export: &ExportSpec,
        opts: &RunOptions,
        lease: &Lease,
        run_id: &str,
    ) -> Result<Vec<TableOutcome>> {
        reconcile(&self.ports, export, lease).await?;
        let mut outcomes = Vec::new();
        if let Some(b) = &opts.backfill {
            if !export.tables.iter().any(|t| t.name == b.table) {
                let has: Vec<&str> = export.tables.iter().map(|t| t.name.as_str()).collect();
                return Err(Error::Backfill {
                    export: export.name.clone(),
                    table: b.table.clone(),
                    problem: format!("the export has no such table; it has: {}", has.join(", ")),
                });
            }
        }
        for table in &export.tables {
            if opts.backfill.as_ref().is_some_and(|b| b.table != table.name) {
                continue;
            }
            if let Some(only) = &opts.tables {
                if !only.iter().any(|t| t == &table.name) {
                    continue;
                }
            }
            let outcome = match self.run_table(export, table, opts, lease, run_id).await {
                Ok(o) => o,
                Err(e) => {
                    let message = error_chain(&e);
                    warn!(export = %export.name, table = %table.name, error = %message, "table run failed");
                    TableOutcome::failed(&table.name, table.incremental.strategy(), message)
                }
            };
            self.observer.table_finished(&outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn run_table(
        &self,
        export: &ExportSpec,
        table: &TableSpec,
        opts: &RunOptions,
        lease: &Lease,
        run_id: &str,
    ) -> Result<TableOutcome> {
        let history = self.ports.history;
        let history_err = |source: BoxError| Error::History { export: export.name.clone(), source };
        // The watermark, and the run that committed it (the previous link of the manifest chain).
        let (committed, committed_by) = history
            .watermark(&export.name, &table.name)
            .await
            .map_err(|e| history_err(Box::new(e)))?
            .map(|w| (w.watermark, w.run_id))
            .unzip();
        let stop = opts.stop();
        stop.check().map_err(|h| halted(export, table, 0, h))?;
        // A backfill is outside the chain: no link, no drift, no late rows, no lost history.
        let backfill = opts.backfill.as_ref().filter(|b| b.table == table.name);
        let planned = match committed.is_none() && !opts.full_refresh && backfill.is_none() {
            true => self.history_lost(export, table).await,
            false => Ok(()),
        };
        // The chain's last manifest: a run links to it; a backfill (outside the chain) only takes
        // its shape, so its columns follow `on_schema_change` as the chain's runs do.
        let previous =
            chain::previous_manifest(history, self.ports.store, export, table, committed_by.as_deref()).await;
        let previous_manifest = previous.as_ref().and_then(|p| p.manifest.as_ref());
        let planned = match (planned, backfill) {
            (Ok(()), Some(b)) => stop
                .until(self.plan_backfill(export, table, committed.clone(), b, previous_manifest))
                .await
                .unwrap_or_else(|h| Err(halted(export, table, 0, h))),
            (Ok(()), None) => stop
                .until(plan_table(
                    self.ports.source,
                    export,
                    table,
                    committed.clone(),
                    opts.full_refresh,
                    previous_manifest,
                ))
                .await
                .unwrap_or_else(|h| Err(halted(export, table, 0, h))),
            (Err(e), _) => Err(e),
        };
        let (mut plan, added) = match planned {
            Ok(planned) => planned,
            Err(e) => {
                // Recorded, so `status` shows why the table did not run; nothing was written.
                let folder = match backfill {
                    Some(_) => RunFolder::backfill(&export.name, &table.name, run_id),
                    None => RunFolder::of(&export.name, &table.name, run_id),
                };
                let record = RunRecord {
                    export: export.name.clone(),
                    table: table.name.clone(),
                    run_id: run_id.to_string(),
                    state: RunState::Failed,
                    strategy: table.incremental.strategy(),
                    full_refresh: opts.full_refresh,
                    window: Window::default(),
                    base_watermark: committed,
                    rows: 0,
                    bytes: 0,
                    parts: 0,
                    null_rows: 0,
                    manifest_key: folder.manifest(),
                    prefix: folder.prefix().to_string(),
                    started_at: Utc::now(),
                    finished_at: Some(Utc::now()),
                    error: Some(error_chain(&e)),
                    changes: None,
                    late_rows: 0,
                    backfill: backfill.is_some(),
                };
                if let Err(fe) = history.fail_run(&record).await {
                    warn!(export = %export.name, table = %table.name, error = %fe, "recording the failed run failed");
                }
                return Err(e);
            }
        };
        let late_of = previous_manifest.filter(|m| backfill.is_none() && late_window(m).is_some());
        if plan.strategy == Strategy::Timestamp {
            plan.checks = plan.stamp.clone().map(|expr| WindowChecks {
                table: table.table.clone(),
                expr,
                previous: late_of.and_then(late_window),
                times: matches!(&table.incremental, Incremental::Timestamp(ts) if matches!(ts.upper_bound, UpperBound::Now { .. })),
            });
        }
        let folder = match backfill {
            Some(_) => RunFolder::backfill(&export.name, &table.name, run_id),
            None => RunFolder::of(&export.name, &table.name, run_id),
        };
        // A `check` run with no state to compare with exports every row as an insert: a
        // complete copy of the table, to replace a destination's copy with, not to apply to it.
        let complete_copy = plan.check.as_ref().is_some_and(|c| c.previous_state.is_none());
        let mut record = RunRecord {
            export: export.name.clone(),
            table: table.name.clone(),
            run_id: run_id.to_string(),
            state: RunState::Running,
            strategy: plan.strategy,
            full_refresh: opts.full_refresh || complete_copy,
            window: plan.window.clone(),
            base_watermark: plan.base_watermark.clone(),
            rows: 0,
            bytes: 0,
            parts: 0,
            // Counted with the read (`checked`).
            null_rows: 0,
            manifest_key: folder.manifest(),
            prefix: folder.prefix().to_string(),
            started_at: Utc::now(),
            finished_at: None,
            error: None,
            changes: None,
            late_rows: 0,
            backfill: backfill.is_some(),
        };
        history.begin_run(lease, &record).await.map_err(|e| history_err(Box::new(e)))?;
        let total = match (&plan.query, table.mode) {
            (Some(query), TableMode::Stream) if self.observer.wants_total() => {
                self.ports.source.count(query).await.ok()
            }
            _ => None,
        };
        self.observer.table_started(&export.name, &table.name, &plan.window, total);
        info!(export = %export.name, table = %table.name, run_id, window = %plan.window, "table run started");

        if !added.is_empty() {
            warn!(export = %export.name, table = %table.name, added = %crate::strategy::drift::Drift { added: added.clone(), ..Default::default() }.describe(),
                "the table has new columns; they are exported from this run on (on_schema_change = \"add_columns\")");
        }
        let link = previous.as_ref().filter(|_| backfill.is_none()).map(|p| p.link.clone());
        let requested = backfill.map(|b| Requested { by: b.by.clone(), reason: b.reason.clone() });
        let outside = Outside { added: &added, late_of, backfill: requested };
        match self.write_and_commit(export, table, &plan, link, outside, lease, opts, &mut record).await {
            Ok(late) => Ok(TableOutcome {
                table: table.name.clone(),
                strategy: record.strategy,
                state: RunState::Succeeded,
                window: record.window.clone(),
                rows: record.rows,
                bytes: record.bytes,
                parts: record.parts,
                null_rows: record.null_rows,
                manifest_key: Some(record.manifest_key.clone()),
                error: None,
                changes: record.changes,
                added_columns: added,
                late_rows: late,
                backfill: record.backfill,
            }),
            // Its manifest is kept and its record left `running`: the lease's holder (the next
            // run) settles it. Marking it failed here could overwrite that holder's commit.
            Err(e @ (Error::CommitUncertain { .. } | Error::LeaseLostAfterManifest { .. })) => Err(e),
            Err(e) => {
                record.state = RunState::Failed;
                record.finished_at = Some(Utc::now());
                record.error = Some(error_chain(&e));
                if let Err(fe) = history.fail_run(&record).await {
                    warn!(export = %export.name, table = %table.name, error = %fe, "recording the failed run failed; the next run reconciles it");
                }
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_and_commit(
        &self,
        export: &ExportSpec,
        table: &TableSpec,
        plan: &TablePlan,
        previous: Option<ManifestLink>,
        outside: Outside<'_>,
        lease: &Lease,
        opts: &RunOptions,
        record: &mut RunRecord,
    ) -> Result<Option<LateRows>> {
        let store = self.ports.store;
        let mut run = TableRun {
            export,
            table,
            source: self.ports.source,
            store,
            history: self.ports.history,
            observer: self.observer,
            keeper: LeaseKeeper {
                lease,
                ttl: opts.lease_ttl,
                export: &export.name,
                renewed: Instant::now(),
                stop: opts.stop(),
            },
            counted: None,
        };
        let written = match (table.mode, &plan.query) {
            (TableMode::Unload, Some(query)) => {
                match self.unload(export, table, query, &record.prefix, &mut run.keeper).await {
                    Ok(parts) => parts,
                    Err(e) => {
                        // The source may have written some files before it failed.
                        self.remove_output(export, record).await;
                        return Err(e);
                    }
                }
            }
            (TableMode::Unload, None) => Vec::new(),
            (TableMode::Stream, query) => {
                let mut parts =
                    PartWriter::new(store, RunFolder::at(&record.prefix), &export.format, plan.columns.clone());
                // An empty window has nothing to read, but its checks still look at the table:
                // where the source counts and checks in a read's pass, read a window that holds
                // no row (from the cursor to a bound at or below it), in one pass.
                let nothing = match (query, &plan.checks, &plan.window.high) {
                    (None, Some(checks), Some(high)) if self.ports.source.counts_in_read() => Some(Query {
                        table: checks.table.clone(),
                        columns: plan.columns.iter().map(|c| c.name.clone()).collect(),
                        filter: Filter::Window {
                            expr: checks.expr.clone(),
                            low: Some(plan.window.low.clone().unwrap_or_else(|| high.clone())),
                            high: high.clone(),
                        },
                        order_by: vec![],
                    }),
                    _ => None,
                };
                if let Some(query) = query.as_ref().or(nothing.as_ref()) {
                    match strategies::of(plan.strategy).stream(&mut run, plan, query, &mut parts).await {
                        Ok(changes) => record.changes = changes,
                        Err(e) => {
                            if let Err(ae) = parts.abort().await {
                                warn!(export = %export.name, table = %table.name, error = %ae, "removing the failed run's parts failed");
                            }
                            // A strategy may have written files of its own beside the parts (a
                            // check run's state).
                            self.remove_output(export, record).await;
                            return Err(e);
                        }
                    }
                }
                match parts.finish().await {
                    Ok(w) => w,
                    Err(e) => {
                        self.remove_output(export, record).await;
                        return Err(part_error(export, table, &plan.columns, e));
                    }
                }
            }
        };
        let late = match self.checked(export, table, plan, &mut run, outside.late_of, record).await {
            Ok(late) => late,
            Err(e) => {
                self.remove_output(export, record).await;
                return Err(e);
            }
        };
        let totals = Totals {
            rows: written.iter().map(|p| p.rows).sum(),
            bytes: written.iter().map(|p| p.bytes).sum(),
            parts: written.len() as u32,
        };
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            export: export.name.clone(),
            table: table.name.clone(),
            run_id: record.run_id.clone(),
            strategy: plan.strategy,
            full_refresh: record.full_refresh,
            window: plan.window.clone(),
            format: export.format.describe(),
            columns: plan.columns.clone(),
            parts: written,
            totals: totals.clone(),
            null_rows: record.null_rows,
            changes: record.changes,
            started_at: record.started_at,
            written_at: Utc::now(),
            previous,
            schema: Some(schema_fingerprint(&plan.columns)),
            added_columns: outside.added.to_vec(),
            late_rows: late.clone(),
            moved: None,
            backfill: outside.backfill,
        };
        record.rows = totals.rows;
        record.bytes = totals.bytes;
        record.parts = totals.parts;
        let store_err = |key: &str, source: BoxError| Error::Store {
            export: export.name.clone(),
            table: table.name.clone(),
            key: key.to_string(),
            source,
        };
        let body = manifest.to_json().map_err(|e| store_err(&record.manifest_key, e.into()))?;
        // The manifest is the commit point: write it only while the lease is surely ours, so no
        // run that took over an expired lease can have abandoned this one in the meantime.
        if let Err(e) = run.renew_lease().await {
            self.remove_output(export, record).await;
            return Err(e);
        }
        let meta = ObjectMeta { content_type: "application/json".into(), content_encoding: None };
        if let Err(e) = store.put(&record.manifest_key, body, &meta).await {
            self.remove_output(export, record).await;
            return Err(store_err(&record.manifest_key, e));
        }

        record.state = RunState::Succeeded;
        record.finished_at = Some(Utc::now());
        // A backfill leaves the cursor where the chain has it.
        let next = match record.backfill {
            true => None,
            false => next_watermark(plan, &RunFolder::at(&record.prefix)),
        };
        let committed = self.ports.history.commit_run(lease, record, plan.base_watermark.as_ref(), next.as_ref()).await;
        match committed {
            Ok(()) => {}
            // Refused because another run holds the lease now. That run's reconciliation
            // commits a run whose manifest it finds, and it may be doing so for this very run:
            // removing the output here could pull the files from under its commit. The holder
            // owns this run now; the manifest stays and the record stays `running` for it.
            Err(HistoryError::LeaseLost) => match self.recorded_state(export, record).await {
                Some(RunState::Succeeded) => {
                    warn!(export = %export.name, table = %table.name, run_id = %record.run_id,
                        "the lease was taken over, and the run holding it committed this run from its manifest");
                }
                // The holder settled it as failed (before this manifest landed): nothing will
                // reference this output, so it goes.
                Some(RunState::Failed) => {
                    self.remove_output(export, record).await;
                    return Err(Error::LeaseLost { export: export.name.clone() });
                }
                _ => {
                    return Err(Error::LeaseLostAfterManifest {
                        export: export.name.clone(),
                        table: table.name.clone(),
                    })
                }
            },
            // Refused while this run still held the lease: nobody else may settle it, but ask
            // the history before removing anything a committed run may reference.
            Err(HistoryError::WatermarkMoved { expected, found }) => match self.recorded_state(export, record).await {
                Some(RunState::Succeeded) => {
                    warn!(export = %export.name, table = %table.name, run_id = %record.run_id,
                        "the commit was refused, but the history shows this run committed");
                }
                Some(_) => {
                    let refused = Error::WatermarkMoved {
                        export: export.name.clone(),
                        table: table.name.clone(),
                        expected: expected.map_or("none".into(), |w| w.to_string()),
                        found: found.map_or("none".into(), |w| w.to_string()),
                    };
                    return Err(self.withdraw(export, table, record, &mut run.keeper, refused).await);
                }
                None => {
                    return Err(Error::CommitUncertain {
                        export: export.name.clone(),
                        table: table.name.clone(),
                        source: Box::new(HistoryError::WatermarkMoved { expected, found }),
                    })
                }
            },
            // Failed without an answer: the commit may have landed (a reply lost on the way).
            // Removing the output of a commit that landed would lose its rows, so ask first.
            Err(other) => match self.recorded_state(export, record).await {
                Some(RunState::Succeeded) => {
                    warn!(export = %export.name, table = %table.name, run_id = %record.run_id, error = %other,
                        "the commit's answer was lost, but the history shows it landed");
                }
                Some(_) => {
                    let failed = Error::History { export: export.name.clone(), source: Box::new(other) };
                    return Err(self.withdraw(export, table, record, &mut run.keeper, failed).await);
                }
                None => {
                    return Err(Error::CommitUncertain {
                        export: export.name.clone(),
                        table: table.name.clone(),
                        source: Box::new(other),
                    })
                }
            },
        }
        after_commit(self.ports.store, export, &table.name, plan.strategy, plan.base_watermark.as_ref(), next.as_ref())
            .await;
        info!(export = %export.name, table = %table.name, run_id = %record.run_id, rows = record.rows,
            bytes = record.bytes, parts = record.parts, watermark = %next.as_ref().map_or("-".to_string(), |w| w.to_string()), "table run committed");
        Ok(late)
    }

    /// What the plan's checks counted (in the read's pass, or now by statements of their own
    /// when the read did not count them or nothing was read), recorded and warned about: rows
    /// with a NULL stamp, and late rows in the previous run's window (`late_of`).
    async fn checked(
        &self,
        export: &ExportSpec,
        table: &TableSpec,
        plan: &TablePlan,
        run: &mut TableRun<'_>,
        late_of: Option<&Manifest>,
        record: &mut RunRecord,
    ) -> Result<Option<LateRows>> {
        let Some(checks) = &plan.checks else { return Ok(None) };
        let counted = match run.counted.take() {
            Some(counted) => counted,
            None => run
                .stop()
                .until(count_checks(self.ports.source, checks))
                .await
                .map_err(|h| halted(export, table, record.rows, h))?
                .map_err(|source| Error::Source { export: export.name.clone(), table: table.name.clone(), source })?,
        };
        record.null_rows = counted.null_rows;
        if counted.null_rows > 0 {
            warn!(export = %export.name, table = %table.name, null_rows = counted.null_rows,
                "rows with a NULL incremental column are in no window; set incremental.fallback_column to export them");
        }
        let late = late_of.zip(counted.previous_window).and_then(|(previous, now)| {
            let rows = now.saturating_sub(previous.totals.rows);
            (rows > 0).then(|| LateRows { run_id: previous.run_id.clone(), window: previous.window.clone(), rows })
        });
        if let Some(late) = &late {
            record.late_rows = late.rows;
            let cure = late.backfill_command(&export.name, &table.name);
            warn!(export = %export.name, table = %table.name, late_rows = late.rows, run = %late.run_id, window = %late.window,
                "rows arrived in the previous run's window after it was exported: no run holds them; export that window again with `{cure}`");
        }
        Ok(late)
    }

    /// Has the source write the parts itself, renewing the lease while it works and giving up
    /// at the deadline (dropping the source's future cancels its statement).
    async fn unload(
        &self,
        export: &ExportSpec,
        table: &TableSpec,
        query: &crate::ports::Query,
        prefix: &str,
        keeper: &mut LeaseKeeper<'_>,
    ) -> Result<Vec<PartInfo>> {
        let FileFormat::Csv(format) = &export.format else {
            return Err(Error::Source {
                export: export.name.clone(),
                table: table.name.clone(),
                source: "unload writes CSV only: use format.kind = \"csv\" or mode = \"stream\"".into(),
            });
        };
        let stop = keeper.stop.clone();
        stop.check().map_err(|h| halted(export, table, 0, h))?;
        let target = UnloadTarget { prefix: prefix.to_string(), format: format.clone() };
        let Some(unloader) = self.ports.source.unloader() else {
            return Err(Error::Source {
                export: export.name.clone(),
                table: table.name.clone(),
                source: "this source cannot unload: use mode = \"stream\"".into(),
            });
        };
        let unload = unloader.unload(query, &target);
        tokio::pin!(unload);
        let mut renew = tokio::time::interval_at((Instant::now() + keeper.ttl / 3).into(), keeper.ttl / 3);
        loop {
            // Between renewals the unload runs until it ends, the deadline passes or an
            // interrupt comes; dropping it cancels the statement.
            match stop
                .until(async {
                    tokio::select! { parts = &mut unload => Some(parts), _ = renew.tick() => None }
                })
                .await
            {
                Ok(Some(parts)) => {
                    return parts.map_err(|source| Error::Source {
                        export: export.name.clone(),
                        table: table.name.clone(),
                        source,
                    });
                }
                Ok(None) => keeper.renew(self.ports.history).await?,
                Err(h) => return Err(halted(export, table, 0, h)),
            }
        }
    }

    /// A backfill's plan: the timestamp table's rows in `(from, to]`, `to` no later than the
    /// committed cursor (rows after it are the next run's), the commit conditioned on the cursor
    /// as it is and leaving it there.
    async fn plan_backfill(
        &self,
        export: &ExportSpec,
        table: &TableSpec,
        committed: Option<Watermark>,
        b: &Backfill,
        shape: Option<&Manifest>,
    ) -> Result<(TablePlan, Vec<Column>)> {
        let refuse =
            |problem: String| Error::Backfill { export: export.name.clone(), table: table.name.clone(), problem };
        if table.incremental.strategy() != Strategy::Timestamp {
            return Err(refuse(format!(
                "strategy \"{}\" has no window to export again; send a full copy with --full-refresh",
                table.incremental.strategy()
            )));
        }
        let Some(cursor) = committed else {
            return Err(refuse("the table has no committed run yet: its next run exports every row".into()));
        };
        let read = |raw: &str| {
            Watermark::parse_like(raw, &cursor)
                .ok_or_else(|| refuse(format!("{raw:?} is not a value of the table's stamp (the cursor is {cursor})")))
        };
        let from = b.from.as_deref().map(read).transpose()?;
        let to = read(&b.to)?;
        if to.partial_cmp_same_type(&cursor).is_none_or(|o| o == std::cmp::Ordering::Greater) {
            return Err(refuse(format!(
                "--to {to} is after the cursor {cursor}: rows after the cursor are the next run's; backfill up to {cursor} at most"
            )));
        }
        if let Some(from) = from.as_ref().filter(|f| f.partial_cmp_same_type(&to) != Some(std::cmp::Ordering::Less)) {
            return Err(refuse(format!("--from {from} must be before --to {to}")));
        }
        let (mut plan, added) = plan_table(self.ports.source, export, table, from.clone(), false, shape).await?;
        let expr = plan.stamp.clone().ok_or_else(|| refuse("the table has no stamp".into()))?;
        plan.window = Window { low: from.clone(), high: Some(to.clone()) };
        plan.query = Some(Query {
            table: table.table.clone(),
            columns: plan.columns.iter().map(|c| c.name.clone()).collect(),
            filter: Filter::Window { expr, low: from, high: to },
            order_by: vec![],
        });
        plan.base_watermark = Some(cursor);
        Ok((plan, added))
    }

    /// Refuses a table the history does not know (no watermark) while the destination holds
    /// committed runs of it the history does not record either: the history was lost, and
    /// starting over would export every row again beside the copies already there. A full
    /// table exports every row each run anyway; a table whose runs were all empty has runs the
    /// history records.
    async fn history_lost(&self, export: &ExportSpec, table: &TableSpec) -> Result<()> {
        if table.incremental.strategy() == Strategy::Full {
            return Ok(());
        }
        let store = self.ports.store;
        let store_err = |key: &str, source: BoxError| Error::Store {
            export: export.name.clone(),
            table: table.name.clone(),
            key: key.to_string(),
            source,
        };
        let folder = format!("{}/{}", export.name, path_segment(&table.name));
        let newest = crate::verify::newest_manifest(store, &export.name, &table.name)
            .await
            .map_err(|e| store_err(&folder, e))?;
        let Some(key) = newest else { return Ok(()) };
        let bytes = store.get(&key).await.map_err(|e| store_err(&key, e))?;
        let manifest = bytes.and_then(|b| serde_json::from_slice::<crate::manifest::Manifest>(&b).ok());
        let recorded = match &manifest {
            Some(m) => self
                .ports
                .history
                .run(&export.name, &table.name, &m.run_id, m.started_at)
                .await
                .map_err(|e| Error::History { export: export.name.clone(), source: Box::new(e) })?
                .is_some(),
            None => false,
        };
        if recorded {
            return Ok(());
        }
        let newest = RunFolder::of_manifest(&key).map_or(key.clone(), |f| f.prefix().to_string());
        Err(Error::HistoryLost {
            export: export.name.clone(),
            table: table.name.clone(),
            location: store.location(),
            newest,
        })
    }

    /// The state the history records for this table run (`Running` when it has no record of
    /// it); `None` when it cannot tell.
    async fn recorded_state(&self, export: &ExportSpec, record: &RunRecord) -> Option<RunState> {
        let runs = self.ports.history.runs(&export.name, 500).await.ok()?;
        Some(
            runs.iter()
                .find(|r| r.run_id == record.run_id && r.table == record.table)
                .map_or(RunState::Running, |r| r.state),
        )
    }

    /// Removes the output of a run whose commit did not land, and returns why (`refused`). Only
    /// while the lease is still this run's: otherwise its holder may be settling the run from
    /// its manifest right now, and the output stays for it.
    async fn withdraw(
        &self,
        export: &ExportSpec,
        table: &TableSpec,
        record: &RunRecord,
        keeper: &mut LeaseKeeper<'_>,
        refused: Error,
    ) -> Error {
        if keeper.renew(self.ports.history).await.is_err() {
            return Error::LeaseLostAfterManifest { export: export.name.clone(), table: table.name.clone() };
        }
        self.remove_output(export, record).await;
        refused
    }

    async fn remove_output(&self, export: &ExportSpec, record: &RunRecord) {
        if let Err(e) = self.ports.store.delete_prefix(&record.prefix).await {
            warn!(export = %export.name, prefix = %record.prefix, error = %e, "removing the run's output failed");
        }
    }
}

/// The previous run's window a timestamp run counts again for late rows: a timestamp run's
/// window that exported something (a moved cursor's manifest exported nothing).
fn late_window(previous: &Manifest) -> Option<(Option<Watermark>, Watermark)> {
    let usable = previous.strategy == Strategy::Timestamp && !previous.window.is_empty() && previous.moved.is_none();
    let high = previous.window.high.clone().filter(|_| usable)?;
    Some((previous.window.low.clone(), high))
}
