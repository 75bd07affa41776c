//! The catalog of managed exports in the history file: the contract every store keeps
//! (versions, optimistic concurrency, audit), and an older history file gaining the tables.

use sluice_core::catalog::Catalog;
use sluice_core::ports::AlertStore;
use sluice_local::SqliteHistory;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_in_the_history_file_keeps_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
    sluice_testkit::catalog::check_contract(&history, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_in_the_history_file_keep_their_contract() {
    let dir = tempfile::tempdir().unwrap();
    let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
    sluice_testkit::alerts::check_contract(&history, dir.path()).await;
}

#[tokio::test]
async fn a_version_2_history_file_gains_the_catalog_and_keeps_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    {
        // A file as a version 2 Sluice left it: no catalog tables.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE export_history (export TEXT, table_name TEXT, last_export TEXT, watermark TEXT,
                                          run_id TEXT, committed_at TEXT, PRIMARY KEY (export, table_name));
             INSERT INTO export_history VALUES ('e', 't', '1', '{\"int\":1}', 'r1', '2026-01-01T00:00:00Z');
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let history = SqliteHistory::open(&path, "test-host").unwrap();
    assert!(history.entries().await.unwrap().is_empty());
    assert!(history.alerts("e").await.unwrap().is_empty(), "and the alerts table");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 5);
    let kept: String = conn.query_row("SELECT run_id FROM export_history", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, "r1");
}
