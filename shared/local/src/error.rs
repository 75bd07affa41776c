//! Errors of the embedded adapters; each says what to check.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot open SQLite database {path}; check the source's path and that the file is a readable SQLite database"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("table {table} not found in {path}; tables there: {available}")]
    MissingTable { table: String, path: PathBuf, available: String },
    #[error("table name {table} has {parts} parts; SQLite takes table or schema.table")]
    TableName { table: String, parts: usize },
    #[error("SQLite query failed: {sql}")]
    Query {
        sql: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "upper_bound = \"now\" cannot bound {column} of {table}: its first stamp is {seen}, and Sluice reads these \
         as time: {recognised}; store the stamps in one of them, or set incremental.upper_bound = \"max\""
    )]
    StampLayout { table: String, column: String, seen: String, recognised: &'static str },
    #[error(
        "{column} of {table} holds stamps of more than one layout, {first} and {other}: SQLite compares them by \
         storage class and character, not by time, so windows would skip or repeat rows; rewrite the column in one \
         layout (for example UPDATE ... SET {column} = strftime('%Y-%m-%d %H:%M:%f', {column}) for text stamps), \
         or export the table with strategy = \"check\""
    )]
    MixedStamps { table: String, column: String, first: String, other: String },
    #[error(
        "{column} of {table}: its newest stamp {newest}, read as {layout}, would be {at}, which is no time its \
         rows were written at: the stamps' unit is not the one their size suggests (milliseconds in a REAL \
         column, dates written as YYYYMMDD numbers); store them as text YYYY-MM-DD[ HH:MM:SS] or as epoch \
         seconds, or set incremental.upper_bound = \"max\""
    )]
    ImplausibleStamps { table: String, column: String, newest: String, layout: String, at: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid object key {key:?}: keys are relative paths without empty, '.' or '..' parts")]
    InvalidKey { key: String },
    #[error("history file {path}")]
    History {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("history file {path} has schema version {found}; this sluice reads up to {supported}: upgrade sluice")]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },
    #[error(
        "history file {path} holds a record that cannot be read; it was written by a newer sluice or edited by hand"
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}
