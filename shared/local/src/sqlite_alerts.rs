//! Alert records in the history file: one row per export and alert, each save one
//! `BEGIN IMMEDIATE` transaction that checks the stored revision first, so of two processes
//! seeing the same change exactly one saves (and announces) it.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use sluice_core::ports::{AlertRecord, AlertStore};
use sluice_core::HistoryError;

use crate::sqlite_history::SqliteHistory;

#[async_trait]
impl AlertStore for SqliteHistory {
    async fn alerts(&self, export: &str) -> Result<Vec<AlertRecord>, HistoryError> {
        let rows: Vec<String> = self.with_conn(|conn| {
            let mut st =
                conn.prepare("SELECT record FROM alerts WHERE export = ?1 ORDER BY key").map_err(|e| self.err(e))?;
            let rows = st.query_map([export], |r| r.get(0)).map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
        })?;
        rows.iter().map(|j| serde_json::from_str(j).map_err(|e| self.corrupt(e))).collect()
    }

    async fn save_alert(&self, record: &AlertRecord, expected: u64) -> Result<(), HistoryError> {
        let json = serde_json::to_string(record).map_err(|e| self.corrupt(e))?;
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
            let found: Option<i64> = tx
                .query_row(
                    "SELECT revision FROM alerts WHERE export = ?1 AND key = ?2",
                    params![record.export, record.key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            let current = found.map_or(0, |r| r as u64);
            if current != expected {
                return Err(HistoryError::Stale { found: current, by: "another process".into() });
            }
            tx.execute(
                "INSERT INTO alerts (export, key, revision, record) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (export, key) DO UPDATE SET revision = excluded.revision, record = excluded.record",
                params![record.export, record.key, record.revision as i64, json],
            )
            .map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))
        })
    }
}
