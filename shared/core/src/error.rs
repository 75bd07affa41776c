//! The domain's errors. Variants carry the export, table or key they concern and keep their cause
//! as a `source`, so the CLI and the Lambda edge can print the whole chain and pick an exit code or
//! an `error_type` from the variant, never from a message.

use crate::spec::validate::ConfigError;
use crate::value::Watermark;

/// A cause from an adapter (SQLite, a folder, S3, DynamoDB, Snowflake, an HTTP client), kept whole.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("export {export:?} is already running: its lease is held by {owner} until {expires_at}; wait for that run to finish (or for the lease to expire) and try again")]
    LeaseHeld { export: String, owner: String, expires_at: String },

    #[error("export {export:?} lost its lease while running (another run took it over after it expired); nothing was committed, the next run exports this window again")]
    LeaseLost { export: String },

    #[error("export {export:?}, table {table:?}: the watermark moved underneath this run (expected {expected}, found {found}); nothing was committed, the next run starts from the new watermark")]
    WatermarkMoved { export: String, table: String, expected: String, found: String },

    #[error("export {export:?}, table {table:?}: reading the source failed")]
    Source {
        export: String,
        table: String,
        #[source]
        source: BoxError,
    },

    #[error("export {export:?}, table {table:?}: column {column:?} not found; the table has: {available}")]
    MissingColumn { export: String, table: String, column: String, available: String },

    #[error("export {export:?}, table {table:?}: the incremental column's values changed type (watermark {committed}, now {now}); run once with --full-refresh to start from the new type")]
    WatermarkType { export: String, table: String, committed: String, now: String },

    #[error("export {export:?}, table {table:?}: column {column:?} is in incremental.{role} but not exported; add it to the table's columns (or remove columns to export all)")]
    CheckColumn { export: String, table: String, column: String, role: String },

    #[error("export {export:?}, table {table:?}: the committed watermark ({committed}) was left by another strategy; run once with --full-refresh to start strategy \"{strategy}\" afresh")]
    StrategyChanged { export: String, table: String, committed: String, strategy: crate::strategy::Strategy },

    #[error("export {export:?}, table {table:?}: {problem}")]
    Check { export: String, table: String, problem: String },

    #[error("export {export:?}, table {table:?}: backfill refused: {problem}")]
    Backfill { export: String, table: String, problem: String },

    /// The message says what changed since which run, and what to do (see `strategy::drift`).
    #[error("export {export:?}, table {table:?}: {message}")]
    SchemaChanged { export: String, table: String, message: String },

    #[error("export {export:?}, table {table:?}: the history has no record of this table, but {location} holds its committed runs (the newest is {newest}); exporting now would send every row again into the same destination, where consumers could not tell the copies apart. Rebuild the history from those runs with `sluice history rebuild {export}` (it verifies them first), or export a full copy on purpose with `sluice run --export {export} --full-refresh` (its manifests say so)")]
    HistoryLost { export: String, table: String, location: String, newest: String },

    #[error("export {export:?}, table {table:?}: writing {key} failed")]
    Store {
        export: String,
        table: String,
        key: String,
        #[source]
        source: BoxError,
    },

    #[error("export {export:?}: the history store failed")]
    History {
        export: String,
        #[source]
        source: BoxError,
    },

    #[error("export {export:?}, table {table:?}, row {row}, column {column:?}: {problem}")]
    Encode { export: String, table: String, column: String, row: u64, problem: String },

    #[error("export {export:?}, table {table:?}: the lease was taken over after this run wrote its manifest; the run now holding the lease commits this run from its manifest or removes it (sluice status and history show which), so nothing is lost or exported twice")]
    LeaseLostAfterManifest { export: String, table: String },

    #[error("export {export:?}, table {table:?}: the history did not answer the commit, nor could it say whether it landed; the run's manifest is kept and the next run settles it (commits it if it did not land)")]
    CommitUncertain {
        export: String,
        table: String,
        #[source]
        source: BoxError,
    },

    #[error("export {export:?}, table {table:?}: stopped before the function's deadline after {rows} rows; nothing was committed. Raise the function's timeout, narrow the window (run more often), or export this table with the warehouse's unload mode")]
    Deadline { export: String, table: String, rows: u64 },

    #[error("export {export:?}, table {table:?}: interrupted ({signal}) after {rows} rows; nothing was committed, and the next run exports this window again")]
    Interrupted { export: String, table: String, rows: u64, signal: &'static str },

    #[error("export {export:?}: {count} of its tables failed: {tables}")]
    TablesFailed { export: String, count: usize, tables: String },
}

impl Error {
    /// The lease being held is the one failure a scheduler should treat as "busy, not broken".
    pub fn is_lease_held(&self) -> bool {
        matches!(self, Error::LeaseHeld { .. })
    }
}

/// What the history store (the port) can refuse for domain reasons; anything else is `Other`.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("lease held by {owner} until {expires_at}")]
    LeaseHeld { owner: String, expires_at: String },
    #[error("the lease is no longer held by this run")]
    LeaseLost,
    #[error("watermark is {found:?}, expected {expected:?}")]
    WatermarkMoved { expected: Option<Watermark>, found: Option<Watermark> },
    /// A catalog change made from an old revision (someone else changed the export first).
    #[error("changed meanwhile: now at revision {found}, by {by}")]
    Stale { found: u64, by: String },
    #[error(transparent)]
    Other(BoxError),
}

/// The full chain of an error, one cause after the other, for records and events.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// What is wrong with a value given to Sluice (a schedule, an event, a mapping, a record), in
/// words that name it and say what to do. It is the whole error: nothing below it failed, so
/// there is no cause to keep. Typed, so a caller tells it apart from an adapter's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(problem: String) -> Self {
        Invalid(problem)
    }
}

impl From<&str> for Invalid {
    fn from(problem: &str) -> Self {
        Invalid(problem.to_string())
    }
}

/// The problem's words, for callers that show or search them.
impl std::ops::Deref for Invalid {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Invalid {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}
