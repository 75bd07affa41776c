//! Reconciliation: what a run does first, holding the lease, with the runs a dead process left
//! `running`. The manifest is the commit point, so a run whose manifest exists is committed as
//! its own process would have, and one without is marked failed and its folder removed. Records
//! no run of Sluice could have written are refused, not acted on.

use chrono::Utc;
use tracing::{error, info, warn};

use super::context::Ports;
use crate::error::{BoxError, Error, HistoryError, Result};
use crate::layout::is_run_id;
use crate::layout::RunFolder;
use crate::manifest::Manifest;
use crate::ports::ObjectStore;
use crate::ports::{Lease, RunRecord, RunState};
use crate::spec::export::ExportSpec;
use crate::strategy::choose as strategies;
use crate::strategy::Cursor;
use crate::strategy::Strategy;
use crate::value::Watermark;

/// Why a run record read back from the history cannot be trusted to name its own output: its
/// run id is not one Sluice makes, or its folder or manifest is not the one the run id implies.
/// Reconciliation deletes a record's folder or commits its manifest, so a record written by
/// anyone but a run (a forged `prefix: ""` would empty the destination) is refused instead.
pub fn foreign_record(run: &RunRecord, export: &ExportSpec) -> Option<String> {
    if run.export != export.name {
        return Some(format!("it names export {:?}, not {:?}", run.export, export.name));
    }
    if !export.tables.iter().any(|t| t.name == run.table) {
        return Some(format!("export {:?} has no table {:?}", export.name, run.table));
    }
    if !is_run_id(&run.run_id) {
        return Some(format!("run id {:?} is not one Sluice makes", run.run_id));
    }
    let folder = match run.backfill {
        true => RunFolder::backfill(&run.export, &run.table, &run.run_id),
        false => RunFolder::of(&run.export, &run.table, &run.run_id),
    };
    if run.prefix != folder.prefix() {
        return Some(format!("its folder {:?} is not {:?}, the one its run id implies", run.prefix, folder.prefix()));
    }
    let manifest = folder.manifest();
    if run.manifest_key != manifest {
        return Some(format!("its manifest {:?} is not {manifest:?}", run.manifest_key));
    }
    None
}

/// Settles runs a dead process left in `running`: the manifest is the commit point, so a
/// run whose manifest exists is committed now, and one without is marked failed and its
/// parts removed (its window is exported again by this run).
pub(super) async fn reconcile(ports: &Ports<'_>, export: &ExportSpec, lease: &Lease) -> Result<()> {
    let history_err = |source: BoxError| Error::History { export: export.name.clone(), source };
    let open = ports.history.open_runs(&export.name).await.map_err(|e| history_err(Box::new(e)))?;
    for mut run in open {
        if run.run_id == lease.owner.run_id {
            continue;
        }
        // The marker may outlive its run (a migration racing a commit): the record decides.
        let current = ports
            .history
            .run(&run.export, &run.table, &run.run_id, run.started_at)
            .await
            .map_err(|e| history_err(Box::new(e)))?;
        if let Some(settled) = current.filter(|c| c.state != RunState::Running) {
            ports.history.fail_run(&settled).await.map_err(|e| history_err(Box::new(e)))?;
            continue;
        }
        if let Some(why) = foreign_record(&run, export) {
            // Nothing removed, nothing committed: the record is closed as it stands.
            error!(export = %export.name, table = %run.table, run_id = %run.run_id, problem = %why,
                "refused an open run record that no run of Sluice wrote; check who can write the history table");
            run.state = RunState::Failed;
            run.finished_at = Some(Utc::now());
            run.error = Some(format!("refused by reconciliation: {why}; nothing was removed or committed"));
            ports.history.fail_run(&run).await.map_err(|e| history_err(Box::new(e)))?;
            continue;
        }
        let manifest = match ports.store.get(&run.manifest_key).await {
            Ok(m) => m.and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok()),
            Err(source) => {
                return Err(Error::Store {
                    export: export.name.clone(),
                    table: run.table.clone(),
                    key: run.manifest_key.clone(),
                    source,
                })
            }
        };
        run.finished_at = Some(Utc::now());
        if let Some(m) = manifest {
            run.state = RunState::Succeeded;
            run.rows = m.totals.rows;
            run.bytes = m.totals.bytes;
            run.parts = m.totals.parts;
            // As a live run would have committed it (a check run's state was written before
            // the manifest, so it is there).
            let base = run.base_watermark.clone().map(Cursor::from_stored);
            // A backfill's run never moves the cursor.
            let new = match run.backfill {
                true => None,
                false => strategies::of(run.strategy)
                    .cursor_to_commit(&run.window, base.as_ref(), &RunFolder::at(&run.prefix))
                    .map(|c| c.stored()),
            };
            run.changes = m.changes;
            match ports.history.commit_run(lease, &run, run.base_watermark.as_ref(), new.as_ref()).await {
                Ok(()) => {
                    info!(export = %export.name, table = %run.table, run_id = %run.run_id, "committed a run whose process stopped after writing its manifest");
                    let base = run.base_watermark.as_ref();
                    after_commit(ports.store, export, &run.table, run.strategy, base, new.as_ref()).await;
                    continue;
                }
                Err(HistoryError::WatermarkMoved { .. }) => {
                    run.state = RunState::Failed;
                    run.error =
                        Some("superseded: the watermark moved after this run started; its output was removed".into());
                }
                Err(e) => return Err(history_err(Box::new(e))),
            }
        } else {
            run.state = RunState::Failed;
            run.error = Some("abandoned: the process running it stopped before writing its manifest; the window is exported again by the next run".into());
        }
        if let Err(e) = ports.store.delete_prefix(&run.prefix).await {
            warn!(export = %export.name, prefix = %run.prefix, error = %e, "removing an abandoned run's parts failed");
        }
        warn!(export = %export.name, table = %run.table, run_id = %run.run_id, "marked an interrupted run as failed");
        ports.history.fail_run(&run).await.map_err(|e| history_err(Box::new(e)))?;
    }
    Ok(())
}

/// What a commit lets the table's strategy tidy up (a check run's superseded state), by
/// whichever path the run was committed. A failure only costs space: it is logged.
pub(super) async fn after_commit(
    store: &dyn ObjectStore,
    export: &ExportSpec,
    table: &str,
    strategy: Strategy,
    base: Option<&Watermark>,
    committed: Option<&Watermark>,
) {
    let (base, committed) = (base.cloned().map(Cursor::from_stored), committed.cloned().map(Cursor::from_stored));
    if let Err(e) = strategies::of(strategy).committed(store, base.as_ref(), committed.as_ref()).await {
        warn!(export = %export.name, table = %table, error = %e, "removing what the committed run superseded failed; it is no longer used");
    }
}
