//! The delivery ledger in the history file: one row per integration and manifest version. A
//! claim is a lease like an export's: one process at a time, taken over when it expires or when
//! its process (on this machine) is gone.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use std::time::Duration;

use sluice_core::ports::{expires_in, Claim, DeliveryId, DeliveryLedger, DeliveryRecord, DeliveryState, SendSlot};
use sluice_core::HistoryError;

use crate::sqlite_history::{process_alive, ts, SqliteHistory};

/// Whether a claim's owner (`host:pid:id`) is a process of this host that no longer runs.
fn dead_here(owner: &str, host: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (_, pid, owner_host) = (parts.next(), parts.next(), parts.next());
    owner_host == Some(host) && pid.and_then(|p| p.parse().ok()).is_some_and(|p| !process_alive(p))
}

#[async_trait]
impl DeliveryLedger for SqliteHistory {
    async fn claim(&self, id: &DeliveryId, owner: &str, ttl: Duration, rows: u64) -> Result<Claim, HistoryError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
            let found: Option<(String, Option<String>, Option<String>, String)> = tx
                .query_row(
                    "SELECT state, owner, expires_at, record FROM deliveries
                     WHERE integration = ?1 AND manifest_key = ?2 AND etag = ?3",
                    params![id.integration, id.manifest_key, id.etag],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            let now = Utc::now();
            let mut record = match found {
                Some((state, holder, expires, json)) => {
                    let record: DeliveryRecord = serde_json::from_str(&json).map_err(|e| self.corrupt(e))?;
                    if state == DeliveryState::Done.as_str() {
                        return Ok(Claim::Done(record));
                    }
                    if let (Some(holder), Some(expires)) = (holder, expires) {
                        let live = expires > ts(now) && !dead_here(&holder, self.host());
                        if live && holder != owner {
                            let expires_at =
                                DateTime::parse_from_rfc3339(&expires).map(|t| t.with_timezone(&Utc)).unwrap_or(now);
                            return Ok(Claim::Held { owner: holder, expires_at });
                        }
                    }
                    record
                }
                None => DeliveryRecord::new(id, rows, now),
            };
            record.attempts += 1;
            record.updated_at = now;
            let json = serde_json::to_string(&record).map_err(|e| self.corrupt(e))?;
            tx.execute(
                "INSERT INTO deliveries (integration, manifest_key, etag, state, owner, expires_at, updated_at, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (integration, manifest_key, etag) DO UPDATE SET
                   owner = excluded.owner, expires_at = excluded.expires_at,
                   updated_at = excluded.updated_at, record = excluded.record",
                params![
                    id.integration,
                    id.manifest_key,
                    id.etag,
                    record.state.as_str(),
                    owner,
                    ts(expires_in(ttl)),
                    ts(now),
                    json
                ],
            )
            .map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok(Claim::Mine(record))
        })
    }

    async fn save(&self, record: &DeliveryRecord, owner: &str, hold: Option<Duration>) -> Result<(), HistoryError> {
        let json = serde_json::to_string(record).map_err(|e| self.corrupt(e))?;
        let (new_owner, expires) = match hold {
            Some(ttl) => (Some(owner), Some(ts(expires_in(ttl)))),
            None => (None, None),
        };
        self.with_conn(|conn| {
            let n = conn
                .execute(
                    "UPDATE deliveries SET state = ?1, owner = ?2, expires_at = ?3, updated_at = ?4, record = ?5
                     WHERE integration = ?6 AND manifest_key = ?7 AND etag = ?8 AND owner = ?9",
                    params![
                        record.state.as_str(),
                        new_owner,
                        expires,
                        ts(record.updated_at),
                        json,
                        record.id.integration,
                        record.id.manifest_key,
                        record.id.etag,
                        owner
                    ],
                )
                .map_err(|e| self.err(e))?;
            if n == 0 {
                return Err(HistoryError::LeaseLost);
            }
            Ok(())
        })
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, HistoryError> {
        self.with_conn(|conn| {
            let json: Option<String> = conn
                .query_row(
                    "SELECT record FROM deliveries WHERE integration = ?1 AND manifest_key = ?2 AND etag = ?3",
                    params![id.integration, id.manifest_key, id.etag],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            json.map(|j| serde_json::from_str(&j).map_err(|e| self.corrupt(e))).transpose()
        })
    }

    async fn take_send_slot(
        &self,
        integration: &str,
        spacing: Duration,
        not_before: DateTime<Utc>,
    ) -> Result<SendSlot, HistoryError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
            let last: Option<(i64, String, i64)> = tx
                .query_row(
                    "SELECT last_us, day, day_count FROM send_slots WHERE integration = ?1",
                    params![integration],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            let floor = not_before.timestamp_micros();
            let at_us = last.as_ref().map_or(floor, |(l, _, _)| (l + spacing.as_micros() as i64).max(floor));
            let at = DateTime::from_timestamp_micros(at_us).unwrap_or(not_before);
            let day = not_before.format("%Y-%m-%d").to_string();
            let day_count = match &last {
                Some((_, d, n)) if *d == day => *n as u64 + 1,
                _ => 1,
            };
            tx.execute(
                "INSERT INTO send_slots (integration, last_us, day, day_count) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (integration) DO UPDATE SET last_us = ?2, day = ?3, day_count = ?4",
                params![integration, at_us, day, day_count as i64],
            )
            .map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok(SendSlot { at, day_count })
        })
    }

    async fn last_delivery(&self, integration: &str) -> Result<Option<DeliveryRecord>, HistoryError> {
        self.with_conn(|conn| {
            let json: Option<String> = conn
                .query_row(
                    "SELECT record FROM deliveries WHERE integration = ?1 ORDER BY updated_at DESC LIMIT 1",
                    params![integration],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            json.map(|j| serde_json::from_str(&j).map_err(|e| self.corrupt(e))).transpose()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_of_dead_processes_on_this_host_are_recognised() {
        assert!(dead_here("h:999999999:ab", "h"));
        assert!(!dead_here(&format!("h:{}:ab", std::process::id()), "h"));
        assert!(!dead_here("other:999999999:ab", "h"));
        assert!(!dead_here("lambda-abc", "h"));
    }
}
