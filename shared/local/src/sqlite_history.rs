//! The history store on one machine: an SQLite file holding, per export, the lease, per export
//! and table the last exported watermark (`export_history`), and one record per run. Every
//! conditional step is one `BEGIN IMMEDIATE` transaction, so two processes serialise on it.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use sluice_core::ports::{
    HistoryStore, Lease, LeaseOwner, RunRecord, RunState, WatermarkRecord, LEASE_TAKEOVER_MARGIN,
};
use sluice_core::value::Watermark;
use sluice_core::HistoryError;

use crate::error::Error;

/// 2 added `deliveries`, 3 the catalog (`catalog`, `definitions`, `audit`), 4 `send_slots`, 5 `alerts`; an older file gains
/// the tables when first opened.
pub(crate) const SCHEMA_VERSION: i64 = 5;
/// How long a call waits for another process's transaction on the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    export     TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS export_history (
    export       TEXT NOT NULL,
    table_name   TEXT NOT NULL,
    last_export  TEXT NOT NULL,   -- the watermark as text, for people and dbt-style queries
    watermark    TEXT NOT NULL,   -- the watermark as typed JSON, for sluice
    run_id       TEXT NOT NULL,
    committed_at TEXT NOT NULL,
    PRIMARY KEY (export, table_name)
);
CREATE TABLE IF NOT EXISTS runs (
    export     TEXT NOT NULL,
    table_name TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    state      TEXT NOT NULL,
    started_at TEXT NOT NULL,
    record     TEXT NOT NULL,     -- the whole RunRecord as JSON
    PRIMARY KEY (export, table_name, run_id)
);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (export, state);
CREATE TABLE IF NOT EXISTS deliveries (
    integration  TEXT NOT NULL,
    manifest_key TEXT NOT NULL,
    etag         TEXT NOT NULL,
    state        TEXT NOT NULL,   -- in_progress | done
    owner        TEXT,            -- host:pid:id of the process holding the claim
    expires_at   TEXT,
    updated_at   TEXT NOT NULL,
    record       TEXT NOT NULL,   -- the whole DeliveryRecord as JSON
    PRIMARY KEY (integration, manifest_key, etag)
);
CREATE TABLE IF NOT EXISTS catalog (
    name     TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    record   TEXT NOT NULL        -- the whole CatalogEntry as JSON
);
CREATE TABLE IF NOT EXISTS definitions (
    export  TEXT NOT NULL,
    version INTEGER NOT NULL,
    record  TEXT NOT NULL,        -- the whole Definition as JSON
    PRIMARY KEY (export, version)
);
CREATE TABLE IF NOT EXISTS audit (
    export   TEXT NOT NULL,
    revision INTEGER NOT NULL,
    record   TEXT NOT NULL,       -- the whole AuditRecord as JSON
    PRIMARY KEY (export, revision)
);
CREATE TABLE IF NOT EXISTS alerts (
    export   TEXT NOT NULL,
    key      TEXT NOT NULL,
    revision INTEGER NOT NULL,
    record   TEXT NOT NULL,       -- the whole AlertRecord as JSON
    PRIMARY KEY (export, key)
);
CREATE TABLE IF NOT EXISTS send_slots (
    integration TEXT PRIMARY KEY,
    last_us     INTEGER NOT NULL, -- the last slot taken, epoch microseconds
    day         TEXT NOT NULL,    -- its UTC day, YYYY-MM-DD
    day_count   INTEGER NOT NULL  -- requests counted on that day
);
";

pub struct SqliteHistory {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// This machine's name: a lease held by a process of this host that no longer exists is
    /// taken over at once instead of waiting for it to expire.
    host: String,
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // Signal 0 checks existence only; EPERM means it exists under another user.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl SqliteHistory {
    /// Opens (creating if needed) the history file.
    pub fn open(path: &Path, host: &str) -> Result<Self, Error> {
        let err = |source| Error::History { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                op: "creating folder",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // Two processes opening a new file at once (a run and a `status`) can find it mid-switch
        // to WAL, which SQLite reports as busy at once instead of waiting: retry the set-up for
        // as long as a busy statement would wait.
        let started = std::time::Instant::now();
        loop {
            match Self::init(&conn) {
                Ok(version) if version > SCHEMA_VERSION => {
                    return Err(Error::SchemaTooNew {
                        path: path.to_path_buf(),
                        found: version,
                        supported: SCHEMA_VERSION,
                    })
                }
                Ok(_) => break,
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                        && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(err(e)),
            }
        }
        Ok(SqliteHistory { path: path.to_path_buf(), conn: Mutex::new(conn), host: host.to_string() })
    }

    /// WAL mode and the schema, writing only what is missing (a `status` opening the file while
    /// a run commits needs no write lock). Returns the file's schema version.
    fn init(conn: &Connection) -> rusqlite::Result<i64> {
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            conn.execute_batch(SCHEMA)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(version)
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Other(Box::new(Error::History { path: self.path.clone(), source }))
    }

    pub(crate) fn corrupt(&self, source: serde_json::Error) -> HistoryError {
        HistoryError::Other(Box::new(Error::Corrupt { path: self.path.clone(), source }))
    }

    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, HistoryError>,
    ) -> Result<T, HistoryError> {
        // A poisoned lock only means another call panicked mid-way; SQLite's own transaction
        // rolled back, so the connection is still sound.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    fn record(&self, json: String) -> Result<RunRecord, HistoryError> {
        serde_json::from_str(&json).map_err(|e| self.corrupt(e))
    }

    fn upsert_run(&self, conn: &Connection, run: &RunRecord) -> Result<(), HistoryError> {
        self.write_run(conn, run, "")
    }

    /// Inserts or replaces a run record; `condition` (a `WHERE` on the existing row) may keep
    /// the existing one.
    fn write_run(&self, conn: &Connection, run: &RunRecord, condition: &str) -> Result<(), HistoryError> {
        let json = serde_json::to_string(run).map_err(|e| self.corrupt(e))?;
        conn.execute(
            &format!(
                "INSERT INTO runs (export, table_name, run_id, state, started_at, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (export, table_name, run_id) DO UPDATE SET state = excluded.state, record = excluded.record{condition}"
            ),
            params![run.export, run.table, run.run_id, run.state.as_str(), ts(run.started_at), json],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The run id holding the export's lease, read inside a transaction.
    fn lease_holder(
        &self,
        conn: &Connection,
        export: &str,
    ) -> Result<Option<(String, String, u32, String)>, HistoryError> {
        conn.query_row("SELECT run_id, host, pid, expires_at FROM leases WHERE export = ?1", [export], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()
        .map_err(|e| self.err(e))
    }
}

#[async_trait]
impl HistoryStore for SqliteHistory {
    async fn acquire_lease(&self, export: &str, owner: &LeaseOwner, ttl: Duration) -> Result<Lease, HistoryError> {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
            // Held by this very run (a retried acquire): it is ours, as on every store.
            let holder = self.lease_holder(&tx, export)?.filter(|(run_id, ..)| *run_id != owner.run_id);
            if let Some((run_id, host, pid, until)) = holder {
                let dead_here = host == self.host && !process_alive(pid);
                let margin = chrono::Duration::from_std(LEASE_TAKEOVER_MARGIN).unwrap_or_default();
                if until > ts(now - margin) && !dead_here {
                    return Err(HistoryError::LeaseHeld {
                        owner: LeaseOwner { run_id, host, pid }.to_string(),
                        expires_at: until,
                    });
                }
                tracing::warn!(export, holder = %run_id, "taking over a lease whose holder is gone or expired");
            }
            tx.execute(
                "INSERT OR REPLACE INTO leases (export, run_id, host, pid, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![export, owner.run_id, owner.host, owner.pid, ts(expires_at)],
            )
            .map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok(Lease { export: export.to_string(), owner: owner.clone(), expires_at })
        })
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease, HistoryError> {
        let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
        self.with_conn(|conn| {
            let n = conn
                .execute(
                    "UPDATE leases SET expires_at = ?1 WHERE export = ?2 AND run_id = ?3",
                    params![ts(expires_at), lease.export, lease.owner.run_id],
                )
                .map_err(|e| self.err(e))?;
            if n == 0 {
                return Err(HistoryError::LeaseLost);
            }
            Ok(Lease { expires_at, ..lease.clone() })
        })
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), HistoryError> {
        self.with_conn(|conn| {
            conn.execute(
                "DELETE FROM leases WHERE export = ?1 AND run_id = ?2",
                params![lease.export, lease.owner.run_id],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    async fn lease(&self, export: &str) -> Result<Option<Lease>, HistoryError> {
        self.with_conn(|conn| {
            let Some((run_id, host, pid, until)) = self.lease_holder(conn, export)? else { return Ok(None) };
            let expires_at = DateTime::parse_from_rfc3339(&until).map(|t| t.with_timezone(&Utc)).unwrap_or_default();
            if expires_at <= Utc::now() || (host == self.host && !process_alive(pid)) {
                return Ok(None);
            }
            Ok(Some(Lease { export: export.to_string(), owner: LeaseOwner { run_id, host, pid }, expires_at }))
        })
    }

    async fn watermark(&self, export: &str, table: &str) -> Result<Option<WatermarkRecord>, HistoryError> {
        Ok(self.watermarks(export).await?.into_iter().find(|w| w.table == table))
    }

    async fn watermarks(&self, export: &str) -> Result<Vec<WatermarkRecord>, HistoryError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT table_name, watermark, run_id, committed_at FROM export_history WHERE export = ?1 ORDER BY table_name")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([export], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.err(e))?;
            rows.into_iter()
                .map(|(table, wm, run_id, at)| {
                    Ok(WatermarkRecord {
                        export: export.to_string(),
                        table,
                        watermark: serde_json::from_str(&wm).map_err(|e| self.corrupt(e))?,
                        run_id,
                        committed_at: DateTime::parse_from_rfc3339(&at).map(|t| t.with_timezone(&Utc)).unwrap_or_default(),
                    })
                })
                .collect()
        })
    }

    async fn begin_run(&self, lease: &Lease, run: &RunRecord) -> Result<(), HistoryError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
            match self.lease_holder(&tx, &lease.export)? {
                Some((run_id, ..)) if run_id == lease.owner.run_id => {}
                _ => return Err(HistoryError::LeaseLost),
            }
            self.upsert_run(&tx, run)?;
            tx.commit().map_err(|e| self.err(e))
        })
    }

    async fn commit_run(
        &self,
        lease: &Lease,
        run: &RunRecord,
        expected: Option<&Watermark>,
        new: Option<&Watermark>,
    ) -> Result<(), HistoryError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
            // Held means the lease row still names this run: expiry only lets another run take
            // it over, and a takeover replaces the row.
            match self.lease_holder(&tx, &lease.export)? {
                Some((run_id, ..)) if run_id == lease.owner.run_id => {}
                _ => return Err(HistoryError::LeaseLost),
            }
            let current: Option<String> = tx
                .query_row("SELECT watermark FROM export_history WHERE export = ?1 AND table_name = ?2", params![run.export, run.table], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))?;
            let current: Option<Watermark> = current.map(|c| serde_json::from_str(&c)).transpose().map_err(|e| self.corrupt(e))?;
            if current.as_ref() != expected {
                return Err(HistoryError::WatermarkMoved { expected: expected.cloned(), found: current });
            }
            if let Some(new) = new {
                let json = serde_json::to_string(new).map_err(|e| self.corrupt(e))?;
                tx.execute(
                    "INSERT OR REPLACE INTO export_history (export, table_name, last_export, watermark, run_id, committed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![run.export, run.table, new.to_string(), json, run.run_id, ts(Utc::now())],
                )
                .map_err(|e| self.err(e))?;
            }
            let mut done = run.clone();
            done.state = RunState::Succeeded;
            self.upsert_run(&tx, &done)?;
            tx.commit().map_err(|e| self.err(e))
        })
    }

    async fn fail_run(&self, run: &RunRecord) -> Result<(), HistoryError> {
        let mut failed = run.clone();
        failed.state = RunState::Failed;
        // One statement: a run another process committed (from its manifest) stays committed.
        self.with_conn(|conn| self.write_run(conn, &failed, " WHERE runs.state <> 'succeeded'"))
    }

    async fn runs(&self, export: &str, limit: usize) -> Result<Vec<RunRecord>, HistoryError> {
        let json: Vec<String> = self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT record FROM runs WHERE export = ?1 ORDER BY started_at DESC, run_id DESC, table_name LIMIT ?2")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map(params![export, limit as i64], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.err(e));
            rows
        })?;
        json.into_iter().map(|j| self.record(j)).collect()
    }

    async fn run(
        &self,
        export: &str,
        table: &str,
        run_id: &str,
        _started_at: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, HistoryError> {
        let json: Option<String> = self.with_conn(|conn| {
            conn.query_row(
                "SELECT record FROM runs WHERE export = ?1 AND table_name = ?2 AND run_id = ?3",
                [export, table, run_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
        })?;
        json.map(|j| self.record(j)).transpose()
    }

    async fn open_runs(&self, export: &str) -> Result<Vec<RunRecord>, HistoryError> {
        let json: Vec<String> = self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT record FROM runs WHERE export = ?1 AND state = 'running' ORDER BY started_at")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([export], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.err(e));
            rows
        })?;
        json.into_iter().map(|j| self.record(j)).collect()
    }
}
