//! Schema drift: the columns a run would export against those of the table's last committed
//! run (its manifest's), and what the table's `on_schema_change` makes of a difference.
//!
//! Only a difference the source made counts. A table that lists its `columns` changes its shape
//! by editing the list (and a listed column the source dropped fails as a missing column), so
//! for it only a retyped column is drift. A full refresh sends the table whole in its new shape,
//! which is how a dropped or retyped column is accepted.

use crate::error::{Error, Result};
use crate::manifest::OP_COLUMN;
use crate::spec::export::{ExportSpec, OnSchemaChange, TableSpec};
use crate::value::Column;

/// How the columns changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drift {
    pub added: Vec<Column>,
    pub dropped: Vec<Column>,
    /// (before, now)
    pub retyped: Vec<(Column, Column)>,
}

impl Drift {
    /// From the previous run's columns to the current ones; `listed` when the table's config
    /// names its columns.
    pub fn between(previous: &[Column], current: &[Column], listed: bool) -> Drift {
        let previous: Vec<&Column> = previous.iter().filter(|c| c.name != OP_COLUMN).collect();
        let find = |cols: &[&Column], name: &str| cols.iter().find(|c| c.name == name).map(|c| (*c).clone());
        let current_refs: Vec<&Column> = current.iter().collect();
        let mut drift = Drift::default();
        for c in current {
            match find(&previous, &c.name) {
                Some(before) if before.source_type != c.source_type => drift.retyped.push((before, c.clone())),
                Some(_) => {}
                None if !listed => drift.added.push(c.clone()),
                None => {}
            }
        }
        if !listed {
            drift.dropped =
                previous.iter().filter(|p| find(&current_refs, &p.name).is_none()).map(|p| (*p).clone()).collect();
        }
        drift
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.dropped.is_empty() && self.retyped.is_empty()
    }

    /// Each change, named: `column "region" added (TEXT); column "email" dropped; …`.
    pub fn describe(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        out.extend(self.added.iter().map(|c| format!("column {:?} added ({})", c.name, c.source_type)));
        out.extend(self.dropped.iter().map(|c| format!("column {:?} dropped", c.name)));
        out.extend(
            self.retyped
                .iter()
                .map(|(b, n)| format!("column {:?} retyped from {} to {}", n.name, b.source_type, n.source_type)),
        );
        out.join("; ")
    }
}

/// What a run does with the drift it found.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No difference, or one the policy takes: export these added columns (announced).
    Export { added: Vec<Column> },
    /// Leave these added columns out.
    LeaveOut(Vec<Column>),
}

/// Applies the table's `on_schema_change` to `drift` found against run `since`.
pub fn decide(export: &ExportSpec, table: &TableSpec, since: &str, drift: Drift) -> Result<Decision> {
    if drift.is_empty() {
        return Ok(Decision::Export { added: vec![] });
    }
    let only_added = drift.dropped.is_empty() && drift.retyped.is_empty();
    let policy = table.on_schema_change;
    match (policy, only_added) {
        (OnSchemaChange::AddColumns, true) => return Ok(Decision::Export { added: drift.added }),
        (OnSchemaChange::Ignore, true) => return Ok(Decision::LeaveOut(drift.added)),
        _ => {}
    }
    let todo = if only_added {
        "to export the new columns from now on set on_schema_change = \"add_columns\" on the table (or \"ignore\" to leave them out)".to_string()
    } else {
        format!(
            "a dropped or retyped column changes what consumers receive: send a full copy in the new shape with `sluice run --export {} --full-refresh`{}",
            export.name,
            if table.columns.is_none() { ", or list the columns to export in the table's `columns`" } else { "" }
        )
    };
    Err(Error::SchemaChanged {
        export: export.name.clone(),
        table: table.name.clone(),
        message: format!(
            "the table's columns changed since run {since}: {}. on_schema_change = \"{}\" stops the run so consumers never get a new shape unannounced; {todo}",
            drift.describe(),
            policy.as_str()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, t: &str) -> Column {
        Column { name: name.into(), source_type: t.into() }
    }

    #[test]
    fn drift_names_each_added_dropped_and_retyped_column() {
        let before =
            [col("id", "INTEGER"), col("email", "TEXT"), col("amount", "NUMBER(10,2)"), col(OP_COLUMN, "TEXT")];
        let now = [col("id", "INTEGER"), col("amount", "FLOAT"), col("region", "TEXT")];
        let d = Drift::between(&before, &now, false);
        assert_eq!(d.added, vec![col("region", "TEXT")]);
        assert_eq!(d.dropped, vec![col("email", "TEXT")]);
        assert_eq!(d.retyped, vec![(col("amount", "NUMBER(10,2)"), col("amount", "FLOAT"))]);
        assert_eq!(
            d.describe(),
            "column \"region\" added (TEXT); column \"email\" dropped; column \"amount\" retyped from NUMBER(10,2) to FLOAT"
        );
        // A table that lists its columns changes them by its config: only a retype is drift.
        let listed = Drift::between(&before, &now, true);
        assert!(listed.added.is_empty() && listed.dropped.is_empty() && listed.retyped.len() == 1);
        assert!(Drift::between(&now, &now, false).is_empty());
    }
}
