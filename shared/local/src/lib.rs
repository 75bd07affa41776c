//! Sluice's embedded adapters, for running the whole pipeline on one machine: an SQLite source,
//! a directory object store, an SQLite-file history store (with the integrations' delivery ledger
//! and the catalog of managed exports) and a JSON-lines event log.

mod dir_store;
mod error;
mod event_log;
mod folder_kind;
mod sqlite_alerts;
mod sqlite_catalog;
mod sqlite_history;
mod sqlite_kind;
mod sqlite_ledger;
mod sqlite_source;
mod stamp;

pub use dir_store::DirectoryStore;
pub use error::Error;
pub use event_log::JsonlEventLog;
pub use folder_kind::{Folder, FolderKind, FOLDER};
pub use sqlite_history::SqliteHistory;
pub use sqlite_kind::{SqliteKind, SqliteSettings, SQLITE};

/// The kinds of this crate: an SQLite source and a folder destination (for tests and tools
/// that read configs of embedded parts only).
pub const KINDS: sluice_core::spec::Kinds = sluice_core::spec::Kinds { sources: &[&SQLITE], destinations: &[&FOLDER] };
pub use sqlite_source::{Clock, SqliteSource};
