//! The manifest: written last under a run's folder, it lists every part with its rows, bytes
//! and checksum. Consumers act on manifests only, never on parts, and its existence is the
//! commit point of a run (see docs/history.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::format::description::FormatDescription;
use crate::value::{Column, Window};

/// The manifest schema version; bumped on any change a consumer could notice. Version 2 added
/// `previous` and `schema` (a reader of version 1 finds neither); version 3 `added_columns`
/// and `late_rows` (both absent when empty), `moved` and `backfill`.
pub const MANIFEST_VERSION: u32 = 3;
pub use crate::layout::MANIFEST_FILE;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    /// The key relative to the store's root.
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
    /// Hex SHA-256 of the part as stored (after compression). Absent for parts a source
    /// unloaded itself (Snowflake reports no checksum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub rows: u64,
    pub bytes: u64,
    pub parts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub export: String,
    pub table: String,
    pub run_id: String,
    pub strategy: crate::strategy::Strategy,
    pub full_refresh: bool,
    pub window: Window,
    pub format: FormatDescription,
    pub columns: Vec<Column>,
    pub parts: Vec<PartInfo>,
    pub totals: Totals,
    /// Rows left out because their incremental column is NULL (see the table's fallback_column).
    pub null_rows: u64,
    /// For the `check` strategy: the inserts, updates and deletes the parts hold (each row's
    /// `_sluice_op` says which), and the rows found unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    pub started_at: DateTime<Utc>,
    pub written_at: DateTime<Utc>,
    /// The table's previous committed manifest: each manifest links to the one before, so the
    /// runs of a table form a chain a consumer can walk back and check. Absent on the table's
    /// first run, when the history could not name the previous run (logged), and in manifests
    /// written before version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ManifestLink>,
    /// The fingerprint of the columns exported (see [`schema_fingerprint`]), so a change of the
    /// table's shape (in the columns exported) shows between two manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Columns the source added since the previous run, exported from this run on (the table's
    /// `on_schema_change = "add_columns"`): consumers see the new shape announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_columns: Vec<Column>,
    /// Rows that arrived in the previous run's window after it was exported (timestamp
    /// tables): they are in no run. `sluice backfill` of that window exports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_rows: Option<LateRows>,
    /// Set on the manifest of a cursor moved by hand (`sluice state set|rewind`): it has no
    /// parts, and the next run starts from `to`. Rows after `to` that consumers already have
    /// are sent again after a move back; rows up to `to` are skipped after a move forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved: Option<CursorMove>,
    /// Set on a backfill's manifest (`sluice backfill`): its window was exported again on
    /// request, into the table's `backfills/` folder, outside the chain (no `previous`; the
    /// table's cursor did not move). Consumers tell it from the incremental runs by this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Requested>,
}

/// Who asked for a run outside the chain, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requested {
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Who moved a table's cursor, from where to where, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorMove {
    pub from: crate::value::Watermark,
    pub to: crate::value::Watermark,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Rows found in a committed window after it closed: counted again by the next run, less the
/// rows the run exported. A lower bound: a row updated out of the window, or deleted, since
/// hides one that arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateRows {
    /// The run whose window they are in.
    pub run_id: String,
    pub window: crate::value::Window,
    pub rows: u64,
}

impl LateRows {
    /// The command that exports the window again (a backfill: only its rows are sent again).
    pub fn backfill_command(&self, export: &str, table: &str) -> String {
        let from = self.window.low.as_ref().map(|l| format!(" --from '{l}'")).unwrap_or_default();
        let to = self.window.high.as_ref().map(|h| format!(" --to '{h}'")).unwrap_or_default();
        format!("sluice backfill {export} --table {table}{from}{to}")
    }
}

/// A link to a committed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestLink {
    /// Its key, relative to the destination.
    pub key: String,
    /// Hex SHA-256 of its bytes as stored; absent when it could not be read when this run
    /// wrote its own (it was gone, or the store failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Hex SHA-256 over each column's name and declared type, in order (`name`, a 0x1F, `type`, a
/// 0x1E): the same columns give the same fingerprint, whatever the run.
pub fn schema_fingerprint(columns: &[Column]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for c in columns {
        hash.update(c.name.as_bytes());
        hash.update([0x1f]);
        hash.update(c.source_type.as_bytes());
        hash.update([0x1e]);
    }
    hex::encode(hash.finalize())
}

impl Manifest {
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut out = serde_json::to_vec_pretty(self)?;
        out.push(b'\n');
        Ok(out)
    }
}

/// The column each exported row of a check table carries: `insert`, `update` or `delete`.
pub const OP_COLUMN: &str = "_sluice_op";

/// Counts of a check run's changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Changes {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    /// Rows read and found unchanged (not exported).
    pub unchanged: u64,
}

impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "+{} ~{} -{}", self.inserts, self.updates, self.deletes)
    }
}
