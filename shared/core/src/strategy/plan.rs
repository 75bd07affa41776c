//! What a table's run is planned to read: its columns, its window (or, for `check`, how rows
//! are compared), the query, and the cursor it starts from. Each strategy fills one in
//! (`TableStrategy::plan`); the runner follows it.

use serde::Serialize;

use super::{Cursor, Strategy};
use crate::error::{Error, Result};
use crate::ports::Query;
use crate::spec::export::{ExportSpec, TableSpec};
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
    /// For the `check` strategy: how rows are compared with the last run's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckPlan>,
    /// The stamp a timestamp table's windows are over, as the source spells it (so a window
    /// can be counted again for late rows even when this run reads none).
    #[serde(skip)]
    pub stamp: Option<crate::ports::WatermarkExpr>,
    /// What a timestamp run counts beside its window (NULL stamps, the previous window again),
    /// set by the runner, which knows the previous window; counted in the read's pass where the
    /// source can.
    #[serde(skip)]
    pub checks: Option<crate::ports::WindowChecks>,
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

impl TablePlan {
    /// The cursor the run starts from, tagged.
    pub fn base(&self) -> Option<Cursor> {
        self.base_watermark.clone().map(Cursor::from_stored)
    }
}

/// The columns a table has, as the source names them, and what a plan asks of them.
pub struct Columns<'a> {
    pub export: &'a ExportSpec,
    pub table: &'a TableSpec,
    /// Every column of the table, in its order.
    pub all: Vec<Column>,
}

impl Columns<'_> {
    /// The column named `name`. Identifiers differ in case between engines (SQLite folds,
    /// Snowflake upper-cases unquoted names): a unique case-insensitive match is accepted,
    /// spelled as the source does.
    pub fn find(&self, name: &str) -> Result<Column> {
        self.all
            .iter()
            .find(|c| c.name == name)
            .or_else(|| {
                let mut m = self.all.iter().filter(|c| c.name.eq_ignore_ascii_case(name));
                match (m.next(), m.next()) {
                    (Some(c), None) => Some(c),
                    _ => None,
                }
            })
            .cloned()
            .ok_or_else(|| Error::MissingColumn {
                export: self.export.name.clone(),
                table: self.table.name.clone(),
                column: name.to_string(),
                available: self.all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
            })
    }

    /// The columns the table's config exports (all when it names none), in that order.
    pub fn exported(&self) -> Result<Vec<Column>> {
        match &self.table.columns {
            Some(names) => names.iter().map(|n| self.find(n)).collect(),
            None => Ok(self.all.clone()),
        }
    }

    /// The error of a table planned by a strategy it is not configured with: the dispatch in
    /// `choose` makes this unreachable, but it is an error, not a panic.
    pub fn not_configured(&self, strategy: Strategy) -> Error {
        Error::Check {
            export: self.export.name.clone(),
            table: self.table.name.clone(),
            problem: format!("configured with strategy {}, not {strategy}", self.table.incremental.strategy()),
        }
    }

    /// The error of a committed cursor left by another strategy.
    pub fn strategy_changed(&self, committed: &Cursor, strategy: Strategy) -> Error {
        Error::StrategyChanged {
            export: self.export.name.clone(),
            table: self.table.name.clone(),
            committed: committed.to_string(),
            strategy,
        }
    }
}
