//! The promise at the default settings, for every stamp layout Sluice reads as time: writers
//! insert rows stamped "now" in the column's layout and commit a moment later, runs happen at
//! random moments, and the config names nothing but the column. Every row must be exported
//! exactly once.
//!
//! The clock is simulated (the source's and the writers' alike), so a layout whose unit is a
//! day is tested as well as one whose unit is a nanosecond, in a few seconds of real time.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sluice_core::run::{Ports, Quiet, Runner};
use sluice_core::spec::Config;
use sluice_local::{DirectoryStore, JsonlEventLog, SqliteHistory, SqliteSource};
use sluice_testkit::{committed_rows, stray_files};

/// Whole milliseconds since SQLite's Julian epoch at 1970-01-01.
const JULIAN_EPOCH_MS: i64 = 210_866_760_000_000;

/// A stamp layout as a writer produces it, with the unit it is written in.
struct Layout {
    name: &'static str,
    unit: Duration,
    stamp: fn(DateTime<Utc>) -> Value,
}

fn text_with(t: DateTime<Utc>, sep: char, digits: usize, suffix: &str) -> Value {
    let frac = format!("{:09}", t.timestamp_subsec_nanos());
    let frac = if digits == 0 { String::new() } else { format!(".{}", &frac[..digits]) };
    Value::Text(format!("{}{sep}{}{frac}{suffix}", t.format("%Y-%m-%d"), t.format("%H:%M:%S")))
}

fn layouts() -> Vec<Layout> {
    let ms = Duration::milliseconds;
    vec![
        Layout { name: "text, whole seconds", unit: ms(1000), stamp: |t| text_with(t, ' ', 0, "") },
        Layout {
            name: "text, whole minutes",
            unit: ms(60_000),
            stamp: |t| Value::Text(t.format("%Y-%m-%d %H:%M").to_string()),
        },
        Layout { name: "text, tenths", unit: ms(100), stamp: |t| text_with(t, ' ', 1, "") },
        Layout { name: "text, hundredths", unit: ms(10), stamp: |t| text_with(t, ' ', 2, "") },
        Layout { name: "text, milliseconds", unit: ms(1), stamp: |t| text_with(t, ' ', 3, "") },
        Layout { name: "text, microseconds", unit: Duration::microseconds(1), stamp: |t| text_with(t, ' ', 6, "") },
        Layout { name: "text, nanoseconds", unit: Duration::nanoseconds(1), stamp: |t| text_with(t, ' ', 9, "") },
        Layout { name: "ISO 8601 with T and Z, seconds", unit: ms(1000), stamp: |t| text_with(t, 'T', 0, "Z") },
        Layout { name: "ISO 8601 with T and Z, milliseconds", unit: ms(1), stamp: |t| text_with(t, 'T', 3, "Z") },
        Layout {
            name: "ISO 8601 with an offset, seconds",
            unit: ms(1000),
            stamp: |t| {
                let local = t.with_timezone(&FixedOffset::east_opt(2 * 3600).unwrap());
                Value::Text(local.format("%Y-%m-%dT%H:%M:%S+02:00").to_string())
            },
        },
        Layout {
            name: "text dates",
            unit: Duration::days(1),
            stamp: |t| Value::Text(t.format("%Y-%m-%d").to_string()),
        },
        Layout { name: "integer epoch seconds", unit: ms(1000), stamp: |t| Value::Integer(t.timestamp()) },
        Layout { name: "integer epoch milliseconds", unit: ms(1), stamp: |t| Value::Integer(t.timestamp_millis()) },
        Layout {
            name: "integer epoch microseconds",
            unit: Duration::microseconds(1),
            stamp: |t| Value::Integer(t.timestamp_micros()),
        },
        Layout { name: "text epoch seconds", unit: ms(1000), stamp: |t| Value::Text(t.timestamp().to_string()) },
        Layout {
            name: "text epoch milliseconds",
            unit: ms(1),
            stamp: |t| Value::Text(t.timestamp_millis().to_string()),
        },
        Layout {
            name: "text epoch seconds with milliseconds",
            unit: ms(1),
            stamp: |t| Value::Text(format!("{}.{:03}", t.timestamp(), t.timestamp_subsec_millis())),
        },
        // As unixepoch('subsec') and julianday() write them: SQLite's clock ticks in milliseconds.
        Layout {
            name: "real epoch seconds",
            unit: ms(1),
            stamp: |t| Value::Real(t.timestamp_millis() as f64 / 1000.0),
        },
        Layout {
            name: "real Julian days",
            unit: ms(1),
            stamp: |t| Value::Real((t.timestamp_millis() + JULIAN_EPOCH_MS) as f64 / 86_400_000.0),
        },
    ]
}

/// A tiny seeded generator, so a failing sequence can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// The simplest config the docs show: the column, and nothing else (or with `extra`, such as a
/// lag, after it).
fn config(dir: &Path, extra: &str) -> Config {
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        "version = 1\nhistory = \"history.db\"\n\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n\n\
         [[export]]\nname = \"events\"\nsource = \"db\"\ndestination = \"out\"\n\n\
         [[export.table]]\nname = \"events\"\nincremental = { strategy = \"timestamp\", column = \"updated_at\"EXTRA }\n"
            .replace("EXTRA", extra),
    )
    .unwrap();
    Config::load(&path, sluice_local::KINDS).unwrap()
}

/// How the writers commit: a moment after their stamp (the default lag's case), or at once
/// (writers known to stamp at commit, who may set `lag = "0s"`).
#[derive(Clone, Copy, PartialEq)]
enum Writers {
    CommitLate,
    StampAtCommit,
}

/// One random sequence of writes and runs; the ids exported, with how often each was.
async fn sequence(layout: &Layout, seed: u64, writers: Writers) -> (Vec<i64>, BTreeMap<i64, usize>) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), if writers == Writers::StampAtCommit { ", lag = \"0s\"" } else { "" });
    let db = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    // No declared type: SQLite keeps each stamp in the storage class the writer gave it.
    db.execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY, v TEXT, updated_at)").unwrap();
    let mut rng = Rng(seed);
    let start =
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::milliseconds(rng.below(86_400_000) as i64);
    let clock = Arc::new(Mutex::new(start));
    let now = || *clock.lock().unwrap();
    let source = {
        let clock = clock.clone();
        SqliteSource::with_clock(dir.path().join("source.db"), Arc::new(move || *clock.lock().unwrap()))
    };
    let store = DirectoryStore::new(dir.path().join("out"));
    let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
    let events = JsonlEventLog::new(dir.path().join("events.jsonl"));
    let ports = Ports { source: &source, store: &store, history: &history, events: &events };
    let runner = Runner::new(ports, &Quiet);
    let run = || async {
        let s = runner.run(&config.exports[0], &sluice_testkit::run_options()).await.unwrap();
        assert!(s.succeeded, "{}, seed {seed}: {:?}", layout.name, s.error);
    };

    let insert = |id: i64, stamp: &Value| {
        db.execute("INSERT INTO events VALUES (?1, 'x', ?2)", rusqlite::params![id, stamp]).unwrap();
    };
    // A row from before, so the table has a stamp to learn its layout from.
    let unit_ns = layout.unit.num_nanoseconds().unwrap_or(i64::MAX);
    insert(1, &(layout.stamp)(start - layout.unit * 2 - Duration::minutes(1)));
    let mut ids = vec![1i64];
    let mut next = 2i64;
    // Writes stamped but not committed yet: (id, stamp, commit time).
    let mut pending: Vec<(i64, Value, DateTime<Utc>)> = Vec::new();
    for _ in 0..40 {
        let step_ns = match rng.below(6) {
            0 => 0,
            1 => unit_ns / 4,
            2 => unit_ns / 2,
            3 => unit_ns,
            4 => unit_ns + unit_ns / 2,
            _ => rng.below(1_500) as i64 * 1_000_000,
        };
        *clock.lock().unwrap() += Duration::nanoseconds(step_ns.min(3 * 86_400_000_000_000));
        let t = now();
        pending.retain(|(id, stamp, at)| {
            if *at <= t {
                insert(*id, stamp);
                ids.push(*id);
                false
            } else {
                true
            }
        });
        for _ in 0..rng.below(3) {
            // Stamped now; committed at once or up to 3 s later, within the default lag.
            let delay =
                if rng.below(2) == 0 || writers == Writers::StampAtCommit { 0 } else { rng.below(3_000) as i64 };
            let commit = t + Duration::milliseconds(delay);
            if delay == 0 {
                insert(next, &(layout.stamp)(t));
                ids.push(next);
            } else {
                pending.push((next, (layout.stamp)(t), commit));
            }
            next += 1;
        }
        if rng.below(3) == 0 {
            run().await;
        }
    }
    // Every writer commits; once the lag and the unit in progress are over, runs catch up.
    for (id, stamp, _) in pending.drain(..) {
        insert(id, &stamp);
        ids.push(id);
    }
    *clock.lock().unwrap() += Duration::seconds(10) + layout.unit * 2;
    run().await;
    run().await;

    let mut seen = BTreeMap::new();
    for row in committed_rows(&dir.path().join("out")) {
        *seen.entry(row[0].as_deref().unwrap().parse::<i64>().unwrap()).or_insert(0) += 1;
    }
    assert!(stray_files(&dir.path().join("out")).is_empty(), "{}, seed {seed}", layout.name);
    (ids, seen)
}

async fn every_row_exactly_once(writers: Writers) {
    let mut failures = Vec::new();
    for layout in layouts() {
        for seed in 1..=4u64 {
            let (ids, seen) = sequence(&layout, seed, writers).await;
            let lost: Vec<i64> = ids.iter().copied().filter(|id| !seen.contains_key(id)).collect();
            let doubled: Vec<i64> = seen.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
            if !lost.is_empty() || !doubled.is_empty() {
                failures.push(format!(
                    "{} (seed {seed}): {} of {} rows lost {lost:?}, doubled {doubled:?}",
                    layout.name,
                    lost.len(),
                    ids.len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "rows lost or doubled:\n{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_stamped_now_is_exported_exactly_once_at_the_defaults() {
    every_row_exactly_once(Writers::CommitLate).await;
}

/// Without a lag the bound alone must hold: a row stamped in the unit still in progress (the
/// second a whole-second column is in) waits for the next run instead of falling below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_lag_writers_that_stamp_at_commit_lose_nothing() {
    every_row_exactly_once(Writers::StampAtCommit).await;
}

/// A table of `events` holding the stamps `rows` (ids from 1), the simplest config over it, and
/// the embedded parts a run needs; the source reads the machine's clock.
struct Table {
    _dir: tempfile::TempDir,
    config: Config,
    db: rusqlite::Connection,
    source: SqliteSource,
    store: DirectoryStore,
    history: SqliteHistory,
    events: JsonlEventLog,
}

impl Table {
    fn new(rows: &[Value]) -> Table {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "");
        let db = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
        db.execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY, v TEXT, updated_at)").unwrap();
        for (i, stamp) in rows.iter().enumerate() {
            db.execute("INSERT INTO events VALUES (?1, 'x', ?2)", rusqlite::params![i as i64 + 1, stamp]).unwrap();
        }
        Table {
            config,
            db,
            source: SqliteSource::new(dir.path().join("source.db")),
            store: DirectoryStore::new(dir.path().join("out")),
            history: SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap(),
            events: JsonlEventLog::new(dir.path().join("events.jsonl")),
            _dir: dir,
        }
    }

    async fn run(&self) -> sluice_core::run::ExportRunSummary {
        let ports = Ports { source: &self.source, store: &self.store, history: &self.history, events: &self.events };
        Runner::new(ports, &Quiet).run(&self.config.exports[0], &sluice_testkit::run_options()).await.unwrap()
    }

    /// The committed watermark.
    async fn cursor(&self) -> Option<sluice_core::value::Watermark> {
        use sluice_core::ports::HistoryStore;
        self.history.watermark("events", "events").await.unwrap().map(|w| w.watermark)
    }
}

/// A table whose stamps are `rows`, run once at the defaults: the run's error, if it failed,
/// and whether the watermark moved.
async fn run_over(rows: &[Value]) -> (Option<String>, bool) {
    let table = Table::new(rows);
    let s = table.run().await;
    (s.tables[0].error.clone(), table.cursor().await.is_some())
}

#[tokio::test]
async fn a_column_with_two_layouts_is_refused_naming_both() {
    let text = |s: &str| Value::Text(s.into());
    let cases: Vec<(Vec<Value>, &str, &str)> = vec![
        // Integers sort below every text: these rows would never be in a window.
        (vec![text("2026-01-01 10:00:00"), Value::Integer(1_767_261_600)], "1767261600", "integer seconds"),
        // T sorts above the space: a row would wait for the next day.
        (vec![text("2026-01-01 10:00:00"), text("2026-01-02T09:00:00")], "2026-01-02T09:00:00", "YYYY-MM-DDTHH:MM:SS"),
        // Milliseconds among seconds: far above every bound in seconds.
        (vec![Value::Integer(1_767_261_600), Value::Integer(1_767_261_600_000)], "1767261600000", "milliseconds"),
    ];
    for (rows, value, layout) in cases {
        let (error, moved) = run_over(&rows).await;
        let error = error.unwrap_or_else(|| panic!("a column holding {rows:?} was exported"));
        assert!(error.contains("more than one layout") && error.contains(value) && error.contains(layout), "{error}");
        assert!(error.contains("rewrite the column in one layout"), "{error}");
        assert!(!moved, "the watermark moved");
    }
    // Fraction digits may differ: text order still agrees with time.
    let (error, moved) = run_over(&[text("2026-01-01 10:00:00"), text("2026-01-01 10:00:00.5")]).await;
    assert_eq!(error, None);
    assert!(moved);
}

/// The unit of epoch stamps is guessed from their size; a guess the newest stamp makes
/// implausible (a date far off) is refused instead of windows that never reach the rows.
#[tokio::test]
async fn epoch_stamps_of_an_implausible_unit_are_refused() {
    let now_ms = chrono::Utc::now().timestamp_millis() - 60_000;
    // Milliseconds in a REAL column would read as seconds, thousands of years ahead.
    let (error, moved) = run_over(&[Value::Real(now_ms as f64), Value::Real(now_ms as f64 + 0.5)]).await;
    let error = error.unwrap();
    assert!(error.contains("milliseconds in a REAL") && error.contains("upper_bound = \"max\""), "{error}");
    assert!(!moved);
    // Dates as YYYYMMDD numbers would read as seconds in 1970.
    let (error, _) = run_over(&[Value::Integer(20_260_101), Value::Integer(20_260_102)]).await;
    assert!(error.unwrap().contains("YYYYMMDD"));
    // Epoch seconds stored both as reals and (when whole) as integers are one layout.
    let secs = (now_ms / 1000) as f64;
    let (error, moved) = run_over(&[Value::Real(secs + 0.25), Value::Integer(secs as i64 - 5)]).await;
    assert_eq!(error, None);
    assert!(moved);
}

#[tokio::test]
async fn a_stamp_sluice_cannot_read_as_time_is_refused() {
    let (error, moved) = run_over(&[Value::Text("01/02/2026 10:00".into())]).await;
    let error = error.unwrap();
    assert!(error.contains("\"01/02/2026 10:00\"") && error.contains("upper_bound = \"max\""), "{error}");
    assert!(!moved);
}

/// A stamp of another layout written after a run, below its cursor and between the table's
/// ends, is in no window the next runs read. Without an index on the stamp the ends would be a
/// pass of their own; the stamp written last is looked at instead (a seek by rowid), and it
/// shows this one: the next run refuses, naming both layouts, where the ends would not.
#[tokio::test]
async fn a_stamp_of_another_layout_between_the_ends_is_refused_by_the_next_run() {
    let text = |s: &str| Value::Text(s.into());
    let table = Table::new(&[text("2026-01-01 10:00:00"), text("2026-01-02 10:00:00"), text("2026-01-03 10:00:00")]);
    let first = table.run().await;
    assert!(first.succeeded, "{:?}", first.error);
    let cursor = table.cursor().await;

    table.db.execute("INSERT INTO events VALUES (4, 'x', '2026-01-02T12:00:00')", []).unwrap();
    let second = table.run().await;
    let error = second.tables[0].error.clone().expect("the second layout was not refused");
    assert!(error.contains("more than one layout") && error.contains("2026-01-02T12:00:00"), "{error}");
    assert_eq!(table.cursor().await, cursor);
}

/// Numbers sort below every text stamp, seconds below every millisecond: such a stamp written
/// below the cursor, by an insert or an update, and not by the last row written, is in no
/// window. Every run's pass compares each older stamp with the family's floor as it skips it
/// (one comparison), and the next run refuses, naming it.
#[tokio::test]
async fn a_stamp_below_the_family_is_refused_wherever_it_was_written() {
    let text = |s: &str| Value::Text(s.into());
    let cases: Vec<(Vec<Value>, bool, Value)> = vec![
        (vec![text("2026-01-01 10:00:00"), text("2026-01-02 10:00:00")], false, Value::Integer(1_767_261_600)),
        (vec![text("2026-01-01 10:00:00"), text("2026-01-02 10:00:00")], true, Value::Integer(1_767_261_600)),
        (
            vec![Value::Integer(1_767_261_600_000), Value::Integer(1_767_348_000_000)],
            false,
            Value::Integer(1_767_261_600),
        ),
    ];
    for (rows, by_update, foreign) in cases {
        let table = Table::new(&rows);
        let first = table.run().await;
        assert!(first.succeeded, "{:?}", first.error);
        let cursor = table.cursor().await;
        // The foreign stamp, then a row of the family after it (the row written last).
        match by_update {
            true => table.db.execute("UPDATE events SET updated_at = ?1 WHERE id = 1", [&foreign]).unwrap(),
            false => table.db.execute("INSERT INTO events VALUES (10, 'x', ?1)", [&foreign]).unwrap(),
        };
        table.db.execute("INSERT INTO events VALUES (11, 'x', ?1)", [&rows[1]]).unwrap();
        let second = table.run().await;
        let error =
            second.tables[0].error.clone().unwrap_or_else(|| panic!("{foreign:?} among {rows:?} was not refused"));
        assert!(error.contains("more than one layout"), "{error}");
        assert_eq!(table.cursor().await, cursor);
    }
}

/// `upper_bound = "max"` without an index finds the bound in one pass of its own; it must be
/// the value SQL's `MAX(e) … WHERE e < (SELECT MAX(e) …)` gives, whatever the stamps hold:
/// ties, numbers of both kinds, text that is not UTF-8, a collation other than the bytes'.
#[tokio::test]
async fn the_max_bound_is_the_one_sql_gives() {
    use sluice_core::ports::{Source, WatermarkExpr};
    use sluice_core::spec::{TableName, UpperBound};
    let blob_text = "CAST(x'62e9' AS TEXT)";
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("", vec!["'a'", "'c1'", "'c2'", "'c2'", "'b'"]),
        ("", vec!["3", "1.5", "2", "3.0", "2.5"]),
        ("", vec![blob_text, "'a'", "'c1'", "'c2'"]),
        ("COLLATE NOCASE", vec!["'a'", "'B'", "'b'"]),
        ("", vec!["7"]),
        ("", vec!["NULL", "5", "NULL", "9", "9"]),
    ];
    for (collation, values) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source.db");
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(&format!("CREATE TABLE events (id INTEGER PRIMARY KEY, updated_at {collation})")).unwrap();
        for v in &values {
            db.execute_batch(&format!("INSERT INTO events (updated_at) VALUES ({v})")).unwrap();
        }
        let sql: Option<rusqlite::types::Value> = db
            .query_row(
                "SELECT MAX(updated_at) FROM events WHERE updated_at < (SELECT MAX(updated_at) FROM events)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let source = SqliteSource::new(&path);
        let expr = WatermarkExpr { column: "updated_at".into(), fallback: None };
        let bound = source.upper_bound(&TableName::parse("events").unwrap(), &expr, UpperBound::Max).await.unwrap();
        let expected = sql.map(|v| match v {
            rusqlite::types::Value::Integer(i) => sluice_core::value::Watermark::Int(i),
            rusqlite::types::Value::Real(f) => sluice_core::value::Watermark::Float(f),
            rusqlite::types::Value::Text(t) => sluice_core::value::Watermark::Text(t),
            other => panic!("{other:?}"),
        });
        assert_eq!(bound, expected, "{collation} {values:?}");
    }
}
