//! A validated export: its source and destination by name, its format, its tables and how each
//! table's rows are chosen.

use std::time::Duration;

pub use super::destination::Destination;
use crate::format::FileFormat;
use crate::value::{TableName, UpperBound};

/// How a table's rows reach the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableMode {
    /// Read through Sluice, encoded and uploaded part by part.
    Stream,
    /// The source writes the parts itself (Snowflake `COPY INTO @stage`); Sluice writes the
    /// manifest and commits the history.
    Unload,
}

/// What a run does when the table's columns differ from the last committed run's (its
/// manifest's): `on_schema_change` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnSchemaChange {
    /// Any added, dropped or retyped column stops the run, the difference named (the default:
    /// consumers never get a new shape unannounced).
    #[default]
    Fail,
    /// Added columns are exported from this run on, announced in the manifest and the run's
    /// event; a dropped or retyped column stops the run.
    AddColumns,
    /// Added columns are left out (the export keeps its shape); a dropped or retyped column
    /// stops the run.
    Ignore,
}

impl OnSchemaChange {
    pub const NAMES: [&'static str; 3] = ["fail", "add_columns", "ignore"];

    pub fn as_str(self) -> &'static str {
        match self {
            OnSchemaChange::Fail => "fail",
            OnSchemaChange::AddColumns => "add_columns",
            OnSchemaChange::Ignore => "ignore",
        }
    }

    pub fn parse(s: &str) -> Option<OnSchemaChange> {
        match s {
            "fail" => Some(OnSchemaChange::Fail),
            "add_columns" => Some(OnSchemaChange::AddColumns),
            "ignore" => Some(OnSchemaChange::Ignore),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportState {
    Draft,
    Active,
    Paused,
}

impl ExportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportState::Draft => "draft",
            ExportState::Active => "active",
            ExportState::Paused => "paused",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub name: String,
    pub source: String,
    pub destination: Destination,
    pub schedule: Option<String>,
    pub state: ExportState,
    pub format: FileFormat,
    pub tables: Vec<TableSpec>,
    /// What is alerted on (`[export.alerts]`; the defaults without it).
    pub alerts: super::alerts::AlertSpec,
}

#[derive(Debug, Clone)]
pub struct TableSpec {
    /// The name as written in the config; it keys the history.
    pub name: String,
    pub table: TableName,
    /// The folder name of this table's runs under the export: lower case, `[a-z0-9_.-]`.
    pub path_segment: String,
    /// Columns to export; `None` exports all, in the table's order.
    pub columns: Option<Vec<String>>,
    pub incremental: Incremental,
    pub mode: TableMode,
    pub on_schema_change: OnSchemaChange,
}

/// How a run chooses its rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Incremental {
    /// Every row, every run; no watermark.
    Full,
    /// Rows whose `column` (or `fallback_column` where it is NULL) is in `(watermark, high]`.
    Timestamp(TimestampIncremental),
    /// Rows whose chosen columns changed since the last committed run, by key, compared with
    /// the state (key → hash) that run left (the `check` strategy).
    Check(CheckIncremental),
}

impl Incremental {
    pub fn strategy(&self) -> crate::strategy::Strategy {
        use crate::strategy::Strategy;
        match self {
            Incremental::Full => Strategy::Full,
            Incremental::Timestamp(_) => Strategy::Timestamp,
            Incremental::Check(_) => Strategy::Check,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckIncremental {
    /// The columns that identify a row (unique, never NULL).
    pub key: Vec<String>,
    /// The columns whose change makes a row exported; `None` for all exported columns.
    pub columns: Option<Vec<String>>,
    /// Also export the keys that disappeared, as `_sluice_op = "delete"` rows.
    pub deletes: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimestampIncremental {
    pub column: String,
    pub fallback_column: Option<String>,
    pub upper_bound: UpperBound,
}

/// The lag when the config names none. A writer takes its stamp before its transaction
/// commits, and a run that reads in between would close the window above a row it cannot see
/// yet. Single-statement writes commit within milliseconds of their stamp; five seconds covers
/// them with a wide margin (a slow fsync, a lock wait, a replica catching up) and costs five
/// seconds of freshness on schedules measured in minutes. Writers that stamp at the start of a
/// long transaction need a lag longer than that transaction; `lag = "0s"` is for writers known
/// to stamp at commit.
pub const DEFAULT_LAG: Duration = Duration::from_secs(5);
