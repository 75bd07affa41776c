//! The run planner: which columns a table's run reads and which window of rows, with `high`
//! captured from the source before anything is read.

use serde::Serialize;

use crate::check;
use crate::error::{Error, Result};
use crate::layout::RunFolder;
use crate::ports::{Filter, Query, Source, WatermarkExpr};
use crate::spec::{ExportSpec, Incremental, TableSpec};
use crate::strategy::Strategy;
use crate::value::{Column, Watermark, Window};

#[derive(Debug, Clone, Serialize)]
pub struct TablePlan {
    /// The table as named in the config (it keys the history).
    pub table: String,
    pub strategy: Strategy,
    pub columns: Vec<Column>,
    pub window: Window,
    /// The committed watermark the run starts from (kept even on a full refresh, for the
    /// commit's condition).
    pub base_watermark: Option<Watermark>,
    /// `None` when the window is empty and nothing needs reading.
    #[serde(skip)]
    pub query: Option<Query>,
    /// Rows whose incremental column (and fallback) is NULL: in no window, reported each run.
    pub null_rows: u64,
    /// For the `check` strategy: how rows are compared with the last run's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckPlan>,
}

/// How a `check` run compares rows: by key, on the hash of the checked columns, against the
/// state the last committed run left.
#[derive(Debug, Clone, Serialize)]
pub struct CheckPlan {
    /// The key's and the checked columns' positions among the columns read.
    #[serde(skip)]
    pub key: Vec<usize>,
    #[serde(skip)]
    pub checked: Vec<usize>,
    pub key_columns: Vec<String>,
    pub checked_columns: Vec<String>,
    pub deletes: bool,
    /// The state compared with (the committed watermark); None on a first run or a full
    /// refresh, when every row is an insert.
    pub previous_state: Option<String>,
}

/// Plans one table's run from its committed watermark.
pub async fn plan_table(
    source: &dyn Source,
    export: &ExportSpec,
    table: &TableSpec,
    committed: Option<Watermark>,
    full_refresh: bool,
) -> Result<TablePlan> {
    let source_err = |source| Error::Source { export: export.name.clone(), table: table.name.clone(), source };
    let all = source.columns(&table.table).await.map_err(source_err)?;
    let find = |name: &str| -> Result<Column> {
        all.iter()
            .find(|c| c.name == name)
            .or_else(|| {
                // Identifiers differ in case between engines (SQLite folds, Snowflake upper-cases
                // unquoted names); accept a unique case-insensitive match, spelled as the source does.
                let mut m = all.iter().filter(|c| c.name.eq_ignore_ascii_case(name));
                match (m.next(), m.next()) {
                    (Some(c), None) => Some(c),
                    _ => None,
                }
            })
            .cloned()
            .ok_or_else(|| Error::MissingColumn {
                export: export.name.clone(),
                table: table.name.clone(),
                column: name.to_string(),
                available: all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
            })
    };
    let columns = match &table.columns {
        Some(names) => names.iter().map(|n| find(n)).collect::<Result<Vec<_>>>()?,
        None => all.clone(),
    };
    let column_names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();

    match &table.incremental {
        Incremental::Full => Ok(TablePlan {
            table: table.name.clone(),
            strategy: Strategy::Full,
            columns,
            window: Window::default(),
            base_watermark: committed,
            query: Some(Query {
                table: table.table.clone(),
                columns: column_names,
                filter: Filter::All,
                order_by: vec![],
            }),
            null_rows: 0,
            check: None,
        }),
        Incremental::Check(c) => {
            // Key and checked columns must be among those exported: deletes carry the key, and
            // a change a destination cannot see would be an update of nothing.
            let position = |name: &str, what: &str| -> Result<usize> {
                let found = find(name)?;
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
                (Some(Watermark::Text(k)), false) if RunFolder::is_state(k) => Some(k.clone()),
                (Some(other), false) => {
                    return Err(Error::StrategyChanged {
                        export: export.name.clone(),
                        table: table.name.clone(),
                        committed: other.to_string(),
                        strategy: Strategy::Check,
                    })
                }
            };
            let mut out = columns;
            out.push(Column { name: check::OP_COLUMN.into(), source_type: "TEXT".into() });
            Ok(TablePlan {
                table: table.name.clone(),
                strategy: Strategy::Check,
                columns: out,
                window: Window::default(),
                base_watermark: committed,
                query: Some(Query {
                    table: table.table.clone(),
                    columns: column_names.clone(),
                    filter: Filter::All,
                    order_by: key.iter().map(|&i| column_names[i].clone()).collect(),
                }),
                null_rows: 0,
                check: Some(CheckPlan {
                    key_columns: key.iter().map(|&i| column_names[i].clone()).collect(),
                    checked_columns: checked.iter().map(|&i| column_names[i].clone()).collect(),
                    key,
                    checked,
                    deletes: c.deletes,
                    previous_state,
                }),
            })
        }
        Incremental::Timestamp(ts) => {
            let expr = WatermarkExpr {
                column: find(&ts.column)?.name,
                fallback: ts.fallback_column.as_deref().map(find).transpose()?.map(|c| c.name),
            };
            if let Some(Watermark::Text(k)) = committed.as_ref().filter(|_| !full_refresh) {
                if RunFolder::is_state(k) {
                    // A check state's key is text, and would compare with text timestamps.
                    return Err(Error::StrategyChanged {
                        export: export.name.clone(),
                        table: table.name.clone(),
                        committed: k.clone(),
                        strategy: Strategy::Timestamp,
                    });
                }
            }
            let high = source.upper_bound(&table.table, &expr, ts.upper_bound).await.map_err(source_err)?;
            let low = if full_refresh { None } else { committed.clone() };
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
            let null_rows = source.count_null(&table.table, &expr).await.map_err(source_err)?;
            let query = match (window.is_empty(), high) {
                (false, Some(high)) => Some(Query {
                    table: table.table.clone(),
                    columns: column_names,
                    filter: Filter::Window { expr, low, high },
                    order_by: vec![],
                }),
                _ => None,
            };
            Ok(TablePlan {
                table: table.name.clone(),
                strategy: Strategy::Timestamp,
                columns,
                window,
                base_watermark: committed,
                query,
                null_rows,
                check: None,
            })
        }
    }
}

impl TablePlan {
    /// The cursor a successful run of this plan commits, its state written in `folder`.
    pub fn next_watermark(&self, folder: &RunFolder) -> Option<Watermark> {
        self.strategy.cursor_to_commit(&self.window, self.base_watermark.as_ref(), folder)
    }
}
