//! `full`: every row, every run, and no cursor. The destination replaces its copy each time.

use async_trait::async_trait;

use super::plan::{Columns, TablePlan};
use super::table::TableStrategy;
use super::{Cursor, Strategy};
use crate::error::Result;
use crate::layout::RunFolder;
use crate::ports::{Filter, Query, Source};
use crate::value::Window;

pub struct Full;

#[async_trait]
impl TableStrategy for Full {
    async fn plan(
        &self,
        _source: &dyn Source,
        columns: &Columns<'_>,
        committed: Option<Cursor>,
        _full_refresh: bool,
    ) -> Result<TablePlan> {
        let exported = columns.exported()?;
        Ok(TablePlan {
            table: columns.table.name.clone(),
            strategy: Strategy::Full,
            query: Some(Query {
                table: columns.table.table.clone(),
                columns: exported.iter().map(|c| c.name.clone()).collect(),
                filter: Filter::All,
                order_by: vec![],
            }),
            columns: exported,
            window: Window::default(),
            base_watermark: committed.map(|c| c.stored()),
            check: None,
            stamp: None,
            checks: None,
        })
    }

    fn cursor_to_commit(&self, _window: &Window, _base: Option<&Cursor>, _folder: &RunFolder) -> Option<Cursor> {
        None
    }
}
