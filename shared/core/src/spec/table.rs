//! A table's keys in the config (`[[export.table]]`, its `incremental`), validated.

use serde::Deserialize;
use std::collections::BTreeSet;

use super::export::{
    CheckIncremental, Incremental, OnSchemaChange, TableMode, TableSpec, TimestampIncremental, DEFAULT_LAG,
};
use super::validate::{parse_duration, Validator};
use crate::layout::path_segment;
use crate::value::{TableName, UpperBound};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    pub(super) name: String,
    columns: Option<Vec<String>>,
    incremental: Option<RawIncremental>,
    mode: Option<String>,
    on_schema_change: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIncremental {
    strategy: String,
    column: Option<String>,
    fallback_column: Option<String>,
    lag: Option<String>,
    upper_bound: Option<String>,
    key: Option<Vec<String>>,
    /// `"all"` or a list of column names.
    columns: Option<toml::Value>,
    deletes: Option<bool>,
}

impl Validator {
    pub(super) fn table(&mut self, key: &str, raw: RawTable) -> Option<TableSpec> {
        let table = TableName::parse(&raw.name);
        if table.is_none() {
            self.problem(
                format!("{key}.name"),
                format!("invalid table name {:?}", raw.name),
                "write table, schema.table or database.schema.table",
            );
        }
        if let Some(cols) = &raw.columns {
            if cols.is_empty() {
                self.problem(
                    format!("{key}.columns"),
                    "empty column list",
                    "list columns or remove the key to export all",
                );
            }
            let mut seen = BTreeSet::new();
            for c in cols {
                if c.is_empty() || !seen.insert(c) {
                    self.problem(
                        format!("{key}.columns"),
                        format!("column {c:?} is empty or listed twice"),
                        "list each column once",
                    );
                }
            }
        }
        let incremental = match raw.incremental {
            None => {
                self.problem(
                    format!("{key}.incremental"),
                    "missing",
                    "set incremental = { strategy = \"timestamp\", column = \"updated_at\" } or { strategy = \"full\" }",
                );
                None
            }
            Some(inc) => self.incremental(&format!("{key}.incremental"), inc),
        };
        let mode = match raw.mode.as_deref() {
            None | Some("stream") => TableMode::Stream,
            Some("unload") if matches!(incremental, Some(Incremental::Check(_))) => {
                self.problem(
                    format!("{key}.mode"),
                    "strategy \"check\" compares every row with the last run's state as it streams",
                    "remove mode = \"unload\" (check streams)",
                );
                TableMode::Stream
            }
            Some("unload") => TableMode::Unload,
            Some(other) => {
                self.problem(format!("{key}.mode"), format!("unknown mode {other:?}"), "use stream or unload");
                TableMode::Stream
            }
        };
        let on_schema_change = match raw.on_schema_change.as_deref() {
            None => OnSchemaChange::default(),
            Some(s) => OnSchemaChange::parse(s).unwrap_or_else(|| {
                self.problem(
                    format!("{key}.on_schema_change"),
                    format!("unknown value {s:?}"),
                    format!("use one of: {}", OnSchemaChange::NAMES.join(", ")),
                );
                OnSchemaChange::default()
            }),
        };
        Some(TableSpec {
            on_schema_change,
            path_segment: path_segment(&raw.name),
            name: raw.name,
            table: table?,
            columns: raw.columns,
            incremental: incremental?,
            mode,
        })
    }

    fn incremental(&mut self, key: &str, raw: RawIncremental) -> Option<Incremental> {
        if raw.strategy != "check" {
            for (k, set) in
                [("key", raw.key.is_some()), ("columns", raw.columns.is_some()), ("deletes", raw.deletes.is_some())]
            {
                if set {
                    self.problem(
                        format!("{key}.{k}"),
                        format!("not used by strategy {:?}", raw.strategy),
                        "remove it, or use strategy = \"check\"",
                    );
                }
            }
        }
        // The timestamp strategy's keys, named when another strategy is given them.
        let timestamp_keys = [
            ("column", raw.column.is_some()),
            ("fallback_column", raw.fallback_column.is_some()),
            ("lag", raw.lag.is_some()),
            ("upper_bound", raw.upper_bound.is_some()),
        ];
        match raw.strategy.as_str() {
            "full" => {
                for (k, _) in timestamp_keys.iter().filter(|(_, set)| *set) {
                    self.problem(
                        format!("{key}.{k}"),
                        "not used by strategy \"full\"",
                        "remove it, or use strategy = \"timestamp\"",
                    );
                }
                Some(Incremental::Full)
            }
            "timestamp" => {
                let column = match raw.column {
                    Some(c) if !c.is_empty() => Some(c),
                    _ => {
                        self.problem(
                            format!("{key}.column"),
                            "missing",
                            "name the column that records when a row changed, e.g. \"updated_at\"",
                        );
                        None
                    }
                };
                let lag = match raw.lag.as_deref() {
                    None => Some(DEFAULT_LAG),
                    Some(l) => {
                        let d = parse_duration(l);
                        if d.is_none() {
                            self.problem(
                                format!("{key}.lag"),
                                format!("invalid duration {l:?}"),
                                "write a number and a unit: 30s, 5m, 2h, 1d",
                            );
                        }
                        d
                    }
                };
                let upper_bound = match raw.upper_bound.as_deref() {
                    None | Some("now") => lag.map(|lag| UpperBound::Now { lag }),
                    Some("max") => {
                        if raw.lag.is_some() {
                            self.problem(
                                format!("{key}.lag"),
                                "lag applies to upper_bound = \"now\" only",
                                "remove lag, or use upper_bound = \"now\"",
                            );
                        }
                        Some(UpperBound::Max)
                    }
                    Some(other) => {
                        self.problem(
                            format!("{key}.upper_bound"),
                            format!("unknown upper bound {other:?}"),
                            "use \"now\" (clock minus lag, the default) or \"max\"",
                        );
                        None
                    }
                };
                Some(Incremental::Timestamp(TimestampIncremental {
                    column: column?,
                    fallback_column: raw.fallback_column.filter(|c| !c.is_empty()),
                    upper_bound: upper_bound?,
                }))
            }
            "check" => {
                for (k, _) in timestamp_keys.iter().filter(|(_, set)| *set) {
                    self.problem(
                        format!("{key}.{k}"),
                        "not used by strategy \"check\"",
                        "remove it: check compares the key and the chosen columns with the last run's state",
                    );
                }
                let names = |list: &[String]| {
                    let mut seen = BTreeSet::new();
                    list.iter().all(|c| !c.is_empty() && seen.insert(c.as_str()))
                };
                let key_columns = match raw.key {
                    Some(k) if !k.is_empty() && names(&k) => Some(k),
                    Some(_) => {
                        self.problem(
                            format!("{key}.key"),
                            "empty, or a column empty or listed twice",
                            "list the columns that identify a row, e.g. key = [\"ID\"]",
                        );
                        None
                    }
                    None => {
                        self.problem(
                            format!("{key}.key"),
                            "missing",
                            "name the columns that identify a row, e.g. key = [\"ID\"]",
                        );
                        None
                    }
                };
                let columns = match raw.columns {
                    None => Some(None),
                    Some(toml::Value::String(s)) if s == "all" => Some(None),
                    Some(toml::Value::Array(list)) => {
                        let list: Option<Vec<String>> = list.iter().map(|v| v.as_str().map(str::to_string)).collect();
                        match list {
                            Some(l) if !l.is_empty() && names(&l) => Some(Some(l)),
                            _ => {
                                self.problem(
                                    format!("{key}.columns"),
                                    "not a list of distinct column names",
                                    "list the columns whose change exports a row, or write columns = \"all\"",
                                );
                                None
                            }
                        }
                    }
                    Some(other) => {
                        self.problem(
                            format!("{key}.columns"),
                            format!("invalid value {other}"),
                            "list the columns whose change exports a row, or write columns = \"all\"",
                        );
                        None
                    }
                };
                Some(Incremental::Check(CheckIncremental {
                    key: key_columns?,
                    columns: columns?,
                    deletes: raw.deletes.unwrap_or(false),
                }))
            }
            other => {
                self.problem(
                    format!("{key}.strategy"),
                    format!("unknown strategy {other:?}"),
                    "use \"timestamp\", \"check\" or \"full\"",
                );
                None
            }
        }
    }
}
