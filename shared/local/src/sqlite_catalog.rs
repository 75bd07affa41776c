//! The catalog of managed exports in the history file: entries, immutable definition versions
//! and audit records, each change one `BEGIN IMMEDIATE` transaction that checks the entry's
//! revision first, so of two concurrent edits exactly one lands.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use sluice_core::catalog::{AuditRecord, Catalog, CatalogChange, CatalogEntry, Definition};
use sluice_core::HistoryError;

use crate::sqlite_history::SqliteHistory;

impl SqliteHistory {
    fn json<T: serde::Serialize>(&self, v: &T) -> Result<String, HistoryError> {
        serde_json::to_string(v).map_err(|e| self.corrupt(e))
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, json: &str) -> Result<T, HistoryError> {
        serde_json::from_str(json).map_err(|e| self.corrupt(e))
    }
}

#[async_trait]
impl Catalog for SqliteHistory {
    async fn entry(&self, name: &str) -> Result<Option<CatalogEntry>, HistoryError> {
        let json: Option<String> = self.with_conn(|conn| {
            conn.query_row("SELECT record FROM catalog WHERE name = ?1", [name], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))
        })?;
        json.map(|j| self.parse(&j)).transpose()
    }

    async fn entries(&self) -> Result<Vec<CatalogEntry>, HistoryError> {
        let rows: Vec<String> = self.with_conn(|conn| {
            let mut st = conn.prepare("SELECT record FROM catalog ORDER BY name").map_err(|e| self.err(e))?;
            let rows = st.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
        })?;
        rows.iter().map(|j| self.parse(j)).collect()
    }

    async fn definition(&self, name: &str, version: u64) -> Result<Option<Definition>, HistoryError> {
        let json: Option<String> = self.with_conn(|conn| {
            conn.query_row(
                "SELECT record FROM definitions WHERE export = ?1 AND version = ?2",
                params![name, version as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
        })?;
        json.map(|j| self.parse(&j)).transpose()
    }

    async fn apply(&self, change: &CatalogChange) -> Result<(), HistoryError> {
        let entry = self.json(&change.entry)?;
        let audit = self.json(&change.audit)?;
        let definition = change.definition.as_ref().map(|d| self.json(d)).transpose()?;
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
            let found: Option<(i64, String)> = tx
                .query_row("SELECT revision, record FROM catalog WHERE name = ?1", [&change.entry.name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(|e| self.err(e))?;
            let current = found.as_ref().map_or(0, |(r, _)| *r as u64);
            if current != change.expected_revision {
                let by = match &found {
                    Some((_, json)) => self.parse::<CatalogEntry>(json)?.updated_by,
                    None => "nobody (it does not exist)".into(),
                };
                return Err(HistoryError::Stale { found: current, by });
            }
            tx.execute(
                "INSERT INTO catalog (name, revision, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, record = excluded.record",
                params![change.entry.name, change.entry.revision as i64, entry],
            )
            .map_err(|e| self.err(e))?;
            if let (Some(d), Some(json)) = (&change.definition, &definition) {
                tx.execute(
                    "INSERT INTO definitions (export, version, record) VALUES (?1, ?2, ?3)",
                    params![d.export, d.version as i64, json],
                )
                .map_err(|e| self.err(e))?;
            }
            tx.execute(
                "INSERT INTO audit (export, revision, record) VALUES (?1, ?2, ?3)",
                params![change.audit.export, change.audit.revision as i64, audit],
            )
            .map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))
        })
    }

    async fn audit(&self, name: &str, limit: usize) -> Result<Vec<AuditRecord>, HistoryError> {
        let rows: Vec<String> = self.with_conn(|conn| {
            let mut st = conn
                .prepare("SELECT record FROM audit WHERE export = ?1 ORDER BY revision DESC LIMIT ?2")
                .map_err(|e| self.err(e))?;
            let rows = st.query_map(params![name, limit as i64], |r| r.get(0)).map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
        })?;
        rows.iter().map(|j| self.parse(j)).collect()
    }
}
