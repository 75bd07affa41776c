//! `check`: the rows whose checked columns changed since the last committed run, found by
//! key, and the keys that disappeared (as deletes, when asked). The table is read sorted by its
//! key and merged with the state the last run left (key → hash of the checked columns,
//! [`key`], [`state`]); the run writes its own state beside its parts, and that state is its cursor.

pub mod key;
pub mod state;

use async_trait::async_trait;
use futures::StreamExt;
use tracing::{info, warn};

use self::key::{decode_key, encode_key, row_hash, NullKey};
use self::state::{StateMeta, StateReader, StateWriter};
use super::plan::{CheckPlan, Columns, TablePlan};
use super::table::TableStrategy;
use super::{Cursor, Strategy};
use crate::error::{BoxError, Error, Result};
use crate::layout::RunFolder;
use crate::manifest::{Changes, OP_COLUMN};
use crate::part::PartWriter;
use crate::ports::{Filter, ObjectStore, Query, Source};
use crate::run::context::{halted, part_error, TableRun};
use crate::spec::export::Incremental;
use crate::value::{Column, RowBatch, Window};

pub struct Check;

#[async_trait]
impl TableStrategy for Check {
    async fn plan(
        &self,
        _source: &dyn Source,
        columns: &Columns<'_>,
        committed: Option<Cursor>,
        full_refresh: bool,
    ) -> Result<TablePlan> {
        let (export, table) = (columns.export, columns.table);
        let Incremental::Check(c) = &table.incremental else {
            return Err(columns.not_configured(Strategy::Check));
        };
        let exported = columns.exported()?;
        let column_names: Vec<String> = exported.iter().map(|c| c.name.clone()).collect();
        // Key and checked columns must be among those exported: deletes carry the key, and a
        // change a destination cannot see would be an update of nothing.
        let position = |name: &str, what: &str| -> Result<usize> {
            let found = columns.find(name)?;
            column_names.iter().position(|c| *c == found.name).ok_or_else(|| Error::CheckColumn {
                export: export.name.clone(),
                table: table.name.clone(),
                column: found.name.clone(),
                role: what.to_string(),
            })
        };
        let key = c.key.iter().map(|k| position(k, "key")).collect::<Result<Vec<_>>>()?;
        let checked = match &c.columns {
            Some(names) => names.iter().map(|n| position(n, "columns")).collect::<Result<Vec<_>>>()?,
            // All: every exported column but the key (which cannot change, being the key).
            None => (0..column_names.len()).filter(|i| !key.contains(i)).collect(),
        };
        let previous_state = match (&committed, full_refresh) {
            (_, true) | (None, _) => None,
            (Some(Cursor::CheckState(k)), false) => Some(k.clone()),
            (Some(other), false) => return Err(columns.strategy_changed(other, Strategy::Check)),
        };
        let mut out = exported;
        out.push(Column { name: OP_COLUMN.into(), source_type: "TEXT".into() });
        Ok(TablePlan {
            table: table.name.clone(),
            strategy: Strategy::Check,
            columns: out,
            window: Window::default(),
            base_watermark: committed.map(|c| c.stored()),
            query: Some(Query {
                table: table.table.clone(),
                columns: column_names.clone(),
                filter: Filter::All,
                order_by: key.iter().map(|&i| column_names[i].clone()).collect(),
            }),
            check: Some(CheckPlan {
                key_columns: key.iter().map(|&i| column_names[i].clone()).collect(),
                checked_columns: checked.iter().map(|&i| column_names[i].clone()).collect(),
                key,
                checked,
                deletes: c.deletes,
                previous_state,
            }),
            stamp: None,
            checks: None,
        })
    }

    async fn stream(
        &self,
        run: &mut TableRun<'_>,
        plan: &TablePlan,
        query: &Query,
        parts: &mut PartWriter<'_>,
    ) -> Result<Option<Changes>> {
        let Some(check) = &plan.check else {
            return Err(run.check_error("a check run was planned without its comparison".into()));
        };
        let state = parts.folder().state();
        merge(run, plan, check, query, &state, parts).await.map(Some)
    }

    /// The run's own state file, written before its manifest.
    fn cursor_to_commit(&self, _window: &Window, _base: Option<&Cursor>, folder: &RunFolder) -> Option<Cursor> {
        Some(Cursor::CheckState(folder.state()))
    }

    /// A committed run supersedes the state it compared with: nothing references it any more,
    /// so it is removed (only the newest is ever read), whichever path committed the run.
    async fn committed(
        &self,
        store: &dyn ObjectStore,
        base: Option<&Cursor>,
        committed: Option<&Cursor>,
    ) -> Result<(), BoxError> {
        match base.and_then(Cursor::state) {
            Some(old) if committed != base => store.delete(old).await,
            _ => Ok(()),
        }
    }
}

/// A `check` table's run: the rows, sorted by key, merged with the last run's state. New
/// and changed rows go to the parts with their `_sluice_op`, keys gone as deletes (when
/// asked), and every key with its hash to this run's state. Memory holds one batch and one
/// state block, whatever the table's size.
async fn merge(
    run: &mut TableRun<'_>,
    plan: &TablePlan,
    check: &CheckPlan,
    query: &Query,
    state_key: &str,
    parts: &mut PartWriter<'_>,
) -> Result<Changes> {
    let (export, table, store, source, history, observer) =
        (run.export, run.table, run.store, run.source, run.history, run.observer);
    let keeper = &mut run.keeper;
    let source_err = |source| Error::Source { export: export.name.clone(), table: table.name.clone(), source };
    let store_err = |key: &str, source| Error::Store {
        export: export.name.clone(),
        table: table.name.clone(),
        key: key.into(),
        source,
    };
    let problem = |p: String| Error::Check { export: export.name.clone(), table: table.name.clone(), problem: p };
    let stop = keeper.stop.clone();

    let meta = StateMeta::new(&check.key_columns, &check.checked_columns);
    let previous = check.previous_state.as_deref();
    let old_err = |e| store_err(previous.unwrap_or_default(), e);
    let mut state = StateWriter::create(store, state_key, &meta).await.map_err(|e| store_err(state_key, e))?;
    let merged = async {
        let width = plan.columns.len();
        let mut out = RowBatch::with_capacity(width, 4096, 1 << 20);
        let mut gone = RowBatch::new(check.key.len());
        let mut changes = Changes::default();
        let (mut key, mut prev) = (Vec::new(), Vec::new());
        let mut read = 0u64;
        let mut rows = stop
            .until(source.read(query))
            .await
            .map_err(|h| halted(export, table, 0, h))?
            .map_err(source_err)?;
        // The old state is opened once the source answers: a warehouse may sort for minutes
        // before its first row, and an object stream left idle that long can be cut.
        let mut old: Option<StateReader> = None;
        let mut opened = previous.is_none();
        macro_rules! open_old {
            () => {
                if !opened {
                    opened = true;
                    let k = previous.unwrap_or_default();
                    let r = StateReader::open(store, k).await.map_err(old_err)?;
                    if r.meta() != &meta {
                        return Err(problem(format!(
                            "the key or the checked columns changed since the last run (it keyed by {} and checked {}); \
                             run once with --full-refresh to start a new state",
                            r.meta().key.join(", "),
                            r.meta().columns.join(", ")
                        )));
                    }
                    old = Some(r);
                }
            };
        }
        // Writes the rows gathered so far once they make a batch, renewing the lease: deletes
        // can come in long runs between two rows read, or all at the end.
        macro_rules! flush_if_full {
            () => {
                if out.rows() >= 4096 || out.data_len() >= 1 << 20 {
                    parts.write_batch(&out).await.map_err(|e| part_error(export, table, &plan.columns, e))?;
                    out.clear();
                    stop.check().map_err(|h| halted(export, table, read, h))?;
                    keeper.keep(history).await?;
                }
            };
        }
        // Emits the keys of the old state below `upto` (all of them when None) as deletes.
        macro_rules! deletes_below {
            ($upto:expr) => {
                while let Some((k, _)) = old.as_ref().and_then(|o| o.current()) {
                    if $upto.is_some_and(|u: &[u8]| k >= u) {
                        break;
                    }
                    if check.deletes {
                        gone.clear();
                        if decode_key(k, &mut gone) != Some(check.key.len()) {
                            return Err(problem(format!(
                                "the state {} holds a key that does not decode into the key's {} columns; \
                                 run once with --full-refresh",
                                previous.unwrap_or_default(),
                                check.key.len()
                            )));
                        }
                        let key_cells = gone.row(0);
                        for c in 0..width - 1 {
                            match check.key.iter().position(|&k| k == c) {
                                Some(j) => out.push_from(&gone, &key_cells[j]),
                                None => out.push_null(),
                            }
                        }
                        out.push_text(b"delete");
                        changes.deletes += 1;
                    }
                    old.as_mut().expect("current() was Some").advance().await.map_err(old_err)?;
                    flush_if_full!();
                }
            };
        }
        while let Some(batch) = stop.until(rows.next()).await.map_err(|h| halted(export, table, read, h))? {
            let batch = batch.map_err(source_err)?;
            stop.check().map_err(|h| halted(export, table, read, h))?;
            open_old!();
            for r in 0..batch.rows() {
                let row = batch.row(r);
                key.clear();
                if let Err(NullKey { column }) = encode_key(&batch, row, &check.key, &mut key) {
                    return Err(problem(format!(
                        "key column {:?} is NULL in a row: every key column needs a value",
                        check.key_columns[column]
                    )));
                }
                if read > 0 && key <= prev {
                    return Err(problem(if key == prev {
                        format!("the key ({}) is not unique: two rows share a value; choose columns that identify one row", check.key_columns.join(", "))
                    } else {
                        format!("the source returned the rows out of the key's order ({}), so they cannot be compared with the last run's state: check the key columns' collation", check.key_columns.join(", "))
                    }));
                }
                read += 1;
                let hash = row_hash(&batch, row, &check.checked);
                deletes_below!(Some(key.as_slice()));
                let op: Option<&[u8]> = match old.as_ref().and_then(|o| o.current()) {
                    Some((k, h)) if k == key.as_slice() => {
                        let changed = h != hash;
                        old.as_mut().expect("current() was Some").advance().await.map_err(old_err)?;
                        changed.then_some(b"update")
                    }
                    _ => Some(b"insert"),
                };
                match op {
                    Some(op) => {
                        for cell in row {
                            out.push_from(&batch, cell);
                        }
                        out.push_text(op);
                        if op == b"insert" {
                            changes.inserts += 1;
                        } else {
                            changes.updates += 1;
                        }
                    }
                    None => changes.unchanged += 1,
                }
                state.push(&key, hash).await.map_err(|e| store_err(state_key, e))?;
                std::mem::swap(&mut key, &mut prev);
            }
            flush_if_full!();
            observer.progress(&table.name, read, parts.bytes());
            keeper.keep(history).await?;
        }
        // A table with no rows left: every key of the old state is a delete.
        open_old!();
        debug_assert!(opened);
        deletes_below!(None::<&[u8]>);
        if out.rows() > 0 {
            parts.write_batch(&out).await.map_err(|e| part_error(export, table, &plan.columns, e))?;
        }
        Ok::<Changes, Error>(changes)
    }
    .await;
    match merged {
        Ok(changes) => {
            let (keys, bytes) = state.finish().await.map_err(|e| store_err(state_key, e))?;
            info!(export = %export.name, table = %table.name, keys, state_bytes = bytes, changes = %changes, "check state written");
            Ok(changes)
        }
        Err(e) => {
            if let Err(ae) = state.abort().await {
                warn!(export = %export.name, table = %table.name, error = %ae, "removing the failed run's state failed");
            }
            Err(e)
        }
    }
}
