//! `timestamp`: the rows whose incremental column (or its fallback, where it is NULL) lies in the
//! window `(committed, high]`, with `high` captured from the source before anything is read. The
//! cursor is `high`.

use async_trait::async_trait;

use super::plan::{Columns, TablePlan};
use super::table::TableStrategy;
use super::{Cursor, Strategy};
use crate::error::{Error, Result};
use crate::layout::RunFolder;
use crate::ports::{Filter, Query, Source, WatermarkExpr};
use crate::spec::export::Incremental;
use crate::value::Window;

pub struct Timestamp;

#[async_trait]
impl TableStrategy for Timestamp {
    async fn plan(
        &self,
        source: &dyn Source,
        columns: &Columns<'_>,
        committed: Option<Cursor>,
        full_refresh: bool,
    ) -> Result<TablePlan> {
        let (export, table) = (columns.export, columns.table);
        let Incremental::Timestamp(ts) = &table.incremental else {
            return Err(columns.not_configured(Strategy::Timestamp));
        };
        let source_err = |source| Error::Source { export: export.name.clone(), table: table.name.clone(), source };
        let exported = columns.exported()?;
        let expr = WatermarkExpr {
            column: columns.find(&ts.column)?.name,
            fallback: ts.fallback_column.as_deref().map(|f| columns.find(f)).transpose()?.map(|c| c.name),
        };
        let low = match committed.as_ref().filter(|_| !full_refresh) {
            // A check state's key is text, and would compare with text timestamps.
            Some(c @ Cursor::CheckState(_)) => return Err(columns.strategy_changed(c, Strategy::Timestamp)),
            Some(Cursor::Value(w)) => Some(w.clone()),
            None => None,
        };
        let high = source.upper_bound(&table.table, &expr, ts.upper_bound).await.map_err(source_err)?;
        if let (Some(l), Some(h)) = (&low, &high) {
            if l.partial_cmp_same_type(h).is_none() {
                // Otherwise the window would look empty forever and the table silently stall.
                return Err(Error::WatermarkType {
                    export: export.name.clone(),
                    table: table.name.clone(),
                    committed: l.to_string(),
                    now: h.to_string(),
                });
            }
        }
        let window = Window { low: low.clone(), high: high.clone() };
        let query = match (window.is_empty(), high) {
            (false, Some(high)) => Some(Query {
                table: table.table.clone(),
                columns: exported.iter().map(|c| c.name.clone()).collect(),
                filter: Filter::Window { expr: expr.clone(), low, high },
                order_by: vec![],
            }),
            _ => None,
        };
        Ok(TablePlan {
            table: table.name.clone(),
            strategy: Strategy::Timestamp,
            columns: exported,
            window,
            base_watermark: committed.map(|c| c.stored()),
            query,
            check: None,
            stamp: Some(expr),
            checks: None,
        })
    }

    /// The window's `high`; or the cursor the run started from when the window was empty, so
    /// a clock behind the watermark never moves it backwards.
    fn cursor_to_commit(&self, window: &Window, base: Option<&Cursor>, _folder: &RunFolder) -> Option<Cursor> {
        match (&window.high, window.is_empty()) {
            (Some(high), false) => Some(Cursor::Value(high.clone())),
            _ => base.cloned(),
        }
    }
}
