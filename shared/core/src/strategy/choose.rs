//! The strategy of each table, for the runner and reconciliation: which one, its plan, and the
//! cursor a successful run commits.

use super::check::Check;
use super::drift::{self, Decision, Drift};
use super::full::Full;
use super::plan::{Columns, TablePlan};
use super::table::TableStrategy;
use super::timestamp::Timestamp;
use super::{Cursor, Strategy};
use crate::error::{Error, Result};
use crate::layout::RunFolder;
use crate::manifest::Manifest;
use crate::ports::Source;
use crate::spec::export::{ExportSpec, TableSpec};
use crate::value::{Column, Watermark};

/// The strategy of that name.
pub fn of(strategy: Strategy) -> &'static dyn TableStrategy {
    match strategy {
        Strategy::Full => &Full,
        Strategy::Timestamp => &Timestamp,
        Strategy::Check => &Check,
    }
}

/// Plans one table's run from its committed cursor (in the form the history stores it).
pub async fn plan_table(
    source: &dyn Source,
    export: &ExportSpec,
    table: &TableSpec,
    committed: Option<Watermark>,
    full_refresh: bool,
    previous: Option<&Manifest>,
) -> Result<(TablePlan, Vec<Column>)> {
    let all = source.columns(&table.table).await.map_err(|source| Error::Source {
        export: export.name.clone(),
        table: table.name.clone(),
        source,
    })?;
    let mut columns = Columns { export, table, all };
    let mut added = Vec::new();
    // A full refresh sends the table whole in its new shape: that is how a change is accepted.
    // (A manifest that records no columns, a moved cursor's with none before it, says nothing.)
    if let Some(previous) = previous.filter(|p| !full_refresh && !p.columns.is_empty()) {
        let drift = Drift::between(&previous.columns, &columns.exported()?, table.columns.is_some());
        match drift::decide(export, table, &previous.run_id, drift)? {
            Decision::Export { added: new } => added = new,
            Decision::LeaveOut(new) => columns.all.retain(|c| !new.iter().any(|n| n.name == c.name)),
        }
    }
    let plan = of(table.incremental.strategy())
        .plan(source, &columns, committed.map(Cursor::from_stored), full_refresh)
        .await?;
    Ok((plan, added))
}

/// The cursor a successful run of `plan` commits, in the form the history stores.
pub fn next_watermark(plan: &TablePlan, folder: &RunFolder) -> Option<Watermark> {
    of(plan.strategy).cursor_to_commit(&plan.window, plan.base().as_ref(), folder).map(|c| c.stored())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Window;

    #[test]
    fn each_strategy_commits_its_own_cursor() {
        let folder = RunFolder::new("e", "t", "r");
        let base = Cursor::Value(Watermark::Text("2026-01-01".into()));
        let high = Watermark::Text("2026-01-02".into());
        let window = Window { low: Some(base.stored()), high: Some(high.clone()) };
        let empty = Window { low: Some(base.stored()), high: Some(base.stored()) };
        let timestamp = of(Strategy::Timestamp);
        assert_eq!(timestamp.cursor_to_commit(&window, Some(&base), &folder), Some(Cursor::Value(high)));
        assert_eq!(timestamp.cursor_to_commit(&empty, Some(&base), &folder), Some(base.clone()));
        assert_eq!(
            of(Strategy::Check).cursor_to_commit(&window, Some(&base), &folder),
            Some(Cursor::CheckState(folder.state()))
        );
        assert_eq!(of(Strategy::Full).cursor_to_commit(&window, Some(&base), &folder), None);
    }
}
