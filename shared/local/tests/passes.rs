//! How often an incremental run reads the table. Without an index on the stamp every statement
//! that looks at all rows is a pass over the whole file, so the run must count its NULL stamps
//! and its late rows, and check its stamps' layout, in the one pass that reads its window
//! (with `upper_bound = "max"`, one more to find the bound first). With an index they cost
//! next to nothing. Measured as the bytes this process read (`rchar` of `/proc/self/io`: SQLite
//! reads its pages with `pread`, and each run opens its own connections, with a cold cache).
//! The counts the checks report must be the same either way.

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sluice_core::run::{Ports, Quiet, Runner};
use sluice_core::spec::Config;
use sluice_local::{DirectoryStore, JsonlEventLog, SqliteHistory, SqliteSource};

const ROWS: i64 = 60_000;
/// 0.1% of the rows change between runs.
const CHANGED: i64 = ROWS / 1000;

fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io (Linux)");
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|n| n.trim().parse().ok()).expect("rchar")
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// What one run read and reported.
#[derive(Debug)]
struct Seen {
    passes: f64,
    rows: u64,
    null_rows: u64,
    late_rows: u64,
}

/// Three runs of the simplest config (with `extra` keys, such as a bound) over a table of
/// `ROWS` rows of 200 bytes; before the second and third, 0.1% of the rows change, one row is
/// written late into the window the run before exported, and a row without a stamp is added.
async fn three_runs(extra: &str, index: bool) -> Vec<Seen> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(
        &path,
        format!(
            "version = 1\nhistory = \"history.db\"\n\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n\n\
             [[export]]\nname = \"events\"\nsource = \"db\"\ndestination = \"out\"\n\n\
             [[export.table]]\nname = \"events\"\n\
             incremental = {{ strategy = \"timestamp\", column = \"updated_at\"{extra} }}\n"
        ),
    )
    .unwrap();
    let config = Config::load(&path, sluice_local::KINDS).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    db.execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT, updated_at TEXT)").unwrap();
    if index {
        db.execute_batch("CREATE INDEX events_updated_at ON events (updated_at)").unwrap();
    }
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    {
        let tx = db.unchecked_transaction().unwrap();
        let mut insert = tx.prepare("INSERT INTO events VALUES (?1, ?2, ?3)").unwrap();
        for id in 1..=ROWS {
            let at = t0 - Duration::hours(2) + Duration::milliseconds(id * 100);
            insert.execute(rusqlite::params![id, format!("{id:0>200}"), stamp(at)]).unwrap();
        }
        drop(insert);
        tx.commit().unwrap();
    }
    let clock = Arc::new(Mutex::new(t0));
    let source = {
        let clock = clock.clone();
        SqliteSource::with_clock(dir.path().join("source.db"), Arc::new(move || *clock.lock().unwrap()))
    };
    let store = DirectoryStore::new(dir.path().join("out"));
    let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
    let events = JsonlEventLog::new(dir.path().join("events.jsonl"));
    let ports = Ports { source: &source, store: &store, history: &history, events: &events };
    let runner = Runner::new(ports, &Quiet);
    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64;
    let table_bytes = size(&dir.path().join("source.db"));
    let mut seen = Vec::new();
    let mut next_id = ROWS + 1;
    let mut last_base = t0 - Duration::hours(2);
    for run in 0..3i64 {
        if run > 0 {
            // Changes stamped after the last run's bound, in distinct milliseconds: new rows
            // before the second run, updates of rows the first run exported before the third
            // (an update takes a row out of its old window, so not out of the one counted).
            let base = *clock.lock().unwrap() - Duration::seconds(4);
            for k in 0..CHANGED {
                let at = stamp(base + Duration::milliseconds(k));
                match run {
                    1 => {
                        db.execute("INSERT INTO events VALUES (?1, 'new', ?2)", rusqlite::params![next_id, at])
                            .unwrap();
                        next_id += 1;
                    }
                    _ => {
                        let id = 1 + k * 997 % ROWS;
                        db.execute("UPDATE events SET updated_at = ?1 WHERE id = ?2", rusqlite::params![at, id])
                            .unwrap();
                    }
                };
            }
            // Late: stamped inside the window the last run exported, written after it ran.
            let late = stamp(last_base + Duration::milliseconds(1));
            db.execute("INSERT INTO events VALUES (?1, 'late', ?2)", rusqlite::params![next_id, late]).unwrap();
            db.execute("INSERT INTO events VALUES (?1, 'no stamp', NULL)", rusqlite::params![next_id + 1]).unwrap();
            next_id += 2;
            last_base = base;
        }
        *clock.lock().unwrap() += Duration::seconds(30);
        let before = bytes_read();
        let summary = runner.run(&config.exports[0], &sluice_testkit::run_options()).await.unwrap();
        let read = bytes_read() - before;
        assert!(summary.succeeded, "{:?}", summary.error);
        let t = &summary.tables[0];
        seen.push(Seen {
            passes: read as f64 / table_bytes,
            rows: t.rows,
            null_rows: t.null_rows,
            late_rows: t.late_rows.as_ref().map_or(0, |l| l.rows),
        });
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_run_reads_a_table_without_an_index_once() {
    let seen = three_runs("", false).await;
    for (run, s) in seen.iter().enumerate() {
        assert!(s.passes > 0.8 && s.passes < 1.3, "run {}: {:.2} passes over the table: {seen:?}", run + 1, s.passes);
    }
    // The second run counts late rows into the first window, which has no lower end.
    assert_eq!((seen[1].rows, seen[1].null_rows, seen[1].late_rows), (CHANGED as u64, 1, 1), "{seen:?}");
    assert_eq!((seen[2].rows, seen[2].null_rows, seen[2].late_rows), (CHANGED as u64, 2, 1), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_max_bound_it_reads_it_twice_at_most() {
    let seen = three_runs(", upper_bound = \"max\"", false).await;
    for (run, s) in seen.iter().enumerate() {
        assert!(s.passes > 1.6 && s.passes < 2.3, "run {}: {:.2} passes over the table: {seen:?}", run + 1, s.passes);
    }
    assert_eq!((seen[1].null_rows, seen[1].late_rows), (1, 1), "{seen:?}");
    assert_eq!((seen[2].null_rows, seen[2].late_rows), (2, 1), "{seen:?}");
    // The newest change waits for the next run (tie-safe): each run exports the rest.
    assert!(seen[1].rows >= CHANGED as u64 - 1 && seen[2].rows >= CHANGED as u64, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_index_on_the_stamp_it_reads_a_fraction_of_it_and_counts_the_same() {
    let seen = three_runs("", true).await;
    for (run, s) in seen.iter().enumerate().skip(1) {
        assert!(s.passes < 0.3, "run {}: {:.2} passes over the table: {seen:?}", run + 1, s.passes);
    }
    assert_eq!((seen[1].rows, seen[1].null_rows, seen[1].late_rows), (CHANGED as u64, 1, 1), "{seen:?}");
    assert_eq!((seen[2].rows, seen[2].null_rows, seen[2].late_rows), (CHANGED as u64, 2, 1), "{seen:?}");
}
