//! The `check` strategy on the embedded adapters: over seeded random sequences of inserts,
//! updates of checked and unchecked columns, deletes and re-inserts, the changes each run
//! exports, applied to the destination's copy, give exactly the source projected on the key and
//! the checked columns; a run that fails or dies part way changes nothing.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use sluice_core::layout::{RunFolder, STATE_FILE};
use sluice_core::ports::{HistoryStore, ObjectStore, ObjectWriter, RunState};
use sluice_core::run::{ExportRunSummary, Ports, Quiet, RunOptions, Runner};
use sluice_core::spec::Config;
use sluice_core::value::Watermark;
use sluice_core::BoxError;
use sluice_local::{DirectoryStore, JsonlEventLog, SqliteHistory, SqliteSource};
use sluice_testkit::store::Intercepted;
use sluice_testkit::{committed_parts, read_csv, stray_files, Dialect};

/// (email, stage) by id: the checked columns as the destination holds them.
type Rows = BTreeMap<i64, (Option<String>, Option<String>)>;

struct Env {
    dir: tempfile::TempDir,
    config: Config,
    history: SqliteHistory,
    events: JsonlEventLog,
}

impl Env {
    fn new(deletes: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let db = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
        db.execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, email TEXT, stage TEXT, counter INTEGER NOT NULL DEFAULT 0)",
        )
        .unwrap();
        let config = dir.path().join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "version = 1\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n\n[[export]]\nname = \"items\"\n\
                 source = \"db\"\ndestination = \"out\"\nformat = {{ compression = \"zstd\", max_file_size = 300 }}\n\n\
                 [[export.table]]\nname = \"items\"\nincremental = {{ strategy = \"check\", key = [\"id\"], \
                 columns = [\"email\", \"stage\"], deletes = {deletes} }}\n"
            ),
        )
        .unwrap();
        let config = Config::load(&config, sluice_local::KINDS).unwrap();
        let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
        let events = JsonlEventLog::new(dir.path().join("events.jsonl"));
        Env { dir, config, history, events }
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("source.db")).unwrap()
    }

    fn out(&self) -> std::path::PathBuf {
        self.dir.path().join("out")
    }

    async fn run_with(
        &self,
        store: &dyn ObjectStore,
        opts: &RunOptions,
    ) -> Result<ExportRunSummary, sluice_core::Error> {
        let source = SqliteSource::new(self.dir.path().join("source.db"));
        let ports = Ports { source: &source, store, history: &self.history, events: &self.events };
        Runner::new(ports, &Quiet).run(&self.config.exports[0], opts).await
    }

    async fn run(&self) -> ExportRunSummary {
        let s = self.run_with(&DirectoryStore::new(self.out()), &sluice_testkit::run_options()).await.unwrap();
        assert!(s.succeeded, "{:?}", s.error);
        s
    }

    async fn watermark(&self) -> Option<Watermark> {
        self.history.watermark("items", "items").await.unwrap().map(|w| w.watermark)
    }

    /// The source now: the key and the checked columns.
    fn source_rows(&self) -> Rows {
        let db = self.db();
        let mut st = db.prepare("SELECT id, email, stage FROM items").unwrap();
        let rows = st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))).unwrap();
        rows.map(Result::unwrap).collect()
    }
}

/// The rows one run exported: (id, email, stage, op), in the order of its parts.
fn exported(out: &Path, run_id: &str) -> Vec<(i64, Option<String>, Option<String>, String)> {
    let d = Dialect::reference();
    let mut rows = Vec::new();
    for part in committed_parts(out).into_iter().filter(|p| p.manifest["run_id"] == run_id) {
        let columns: Vec<&str> =
            part.manifest["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(columns, ["id", "email", "stage", "counter", "_sluice_op"]);
        for r in read_csv(&part.bytes, &d).into_iter().skip(1) {
            let text = |i: usize| r[i].clone().map(|b| String::from_utf8(b).unwrap());
            rows.push((text(0).unwrap().parse().unwrap(), text(1), text(2), text(4).unwrap()));
        }
    }
    rows
}

/// Applies a run's changes to the destination's copy, checking each makes sense there.
fn apply(dest: &mut Rows, changes: &[(i64, Option<String>, Option<String>, String)]) {
    let mut last = None;
    for (id, email, stage, op) in changes {
        assert!(last < Some(*id), "changes come sorted by key, each key once: {id} after {last:?}");
        last = Some(*id);
        match op.as_str() {
            "insert" => {
                assert!(dest.insert(*id, (email.clone(), stage.clone())).is_none(), "insert of a present key {id}")
            }
            "update" => {
                let old = dest.insert(*id, (email.clone(), stage.clone()));
                assert!(
                    old.is_some_and(|o| o != (email.clone(), stage.clone())),
                    "update of {id} that changed nothing"
                );
            }
            "delete" => {
                assert!(dest.remove(id).is_some(), "delete of an absent key {id}");
                assert!(email.is_none() && stage.is_none(), "a delete carries the key only");
            }
            other => panic!("unknown op {other}"),
        }
    }
}

/// A tiny seeded generator, so a failing sequence can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
    fn value(&mut self, what: &str) -> Option<String> {
        match self.below(6) {
            0 => None,
            1 => Some(String::new()),
            2 => Some(format!("{what}|{}", self.below(3))),
            _ => Some(format!("{what}-{}", self.below(4))),
        }
    }
}

/// A store whose writes fail once `budget` of them have gone through.
fn fails_after(out: PathBuf, budget: i64) -> Intercepted<DirectoryStore> {
    let budget = std::sync::Arc::new(AtomicI64::new(budget));
    let spent = budget.clone();
    Intercepted::new(DirectoryStore::new(out))
        .writers(move |_, inner| Box::new(FailingWriter { inner, budget: budget.clone() }))
        .before_put(move |_| spend(&spent))
}

fn spend(budget: &AtomicI64) -> Result<(), BoxError> {
    if budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
        return Err("the disk is full (injected)".into());
    }
    Ok(())
}

struct FailingWriter {
    inner: Box<dyn ObjectWriter>,
    budget: std::sync::Arc<AtomicI64>,
}

#[async_trait]
impl ObjectWriter for FailingWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError> {
        spend(&self.budget)?;
        self.inner.write(chunk).await
    }
    async fn finish(self: Box<Self>) -> Result<u64, BoxError> {
        self.inner.finish().await
    }
    async fn abort(self: Box<Self>) -> Result<(), BoxError> {
        self.inner.abort().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_in_order_the_exported_changes_rebuild_the_source_and_failed_runs_change_nothing() {
    let mut seen = BTreeMap::<String, usize>::new();
    let mut failed_runs = 0;
    for seed in 1..=10u64 {
        let env = Env::new(true);
        let db = env.db();
        let mut rng = Rng(seed);
        let mut dest = Rows::new();
        let mut next_id = 1i64;
        for step in 0..14 {
            for _ in 0..rng.below(25) {
                let ids: Vec<i64> = env.source_rows().keys().copied().collect();
                let any = |rng: &mut Rng| ids.get(rng.below(ids.len().max(1) as u64) as usize).copied();
                match rng.below(6) {
                    // New rows, and rows whose key was deleted before coming back.
                    0 | 1 => {
                        let id = if rng.below(4) == 0 && next_id > 1 {
                            1 + rng.below(next_id as u64) as i64
                        } else {
                            next_id
                        };
                        next_id = next_id.max(id + 1);
                        let (e, s) = (rng.value("mail"), rng.value("stage"));
                        db.execute(
                            "INSERT OR IGNORE INTO items (id, email, stage) VALUES (?1, ?2, ?3)",
                            rusqlite::params![id, e, s],
                        )
                        .unwrap();
                    }
                    2 => {
                        if let Some(id) = any(&mut rng) {
                            let e = rng.value("mail");
                            db.execute("UPDATE items SET email = ?2 WHERE id = ?1", rusqlite::params![id, e]).unwrap();
                        }
                    }
                    3 => {
                        if let Some(id) = any(&mut rng) {
                            let s = rng.value("stage");
                            db.execute("UPDATE items SET stage = ?2 WHERE id = ?1", rusqlite::params![id, s]).unwrap();
                        }
                    }
                    // An unchecked column: never exported.
                    4 => {
                        if let Some(id) = any(&mut rng) {
                            db.execute("UPDATE items SET counter = counter + 1 WHERE id = ?1", [id]).unwrap();
                        }
                    }
                    _ => {
                        if let Some(id) = any(&mut rng) {
                            db.execute("DELETE FROM items WHERE id = ?1", [id]).unwrap();
                        }
                    }
                }
            }

            // Now and then a run fails part way (a write refused): nothing of it stays, and the
            // state it started from is still the one in force.
            if rng.below(3) == 0 {
                let before = env.watermark().await;
                let store = fails_after(env.out(), rng.below(6) as i64);
                let failed = env.run_with(&store, &sluice_testkit::run_options()).await.unwrap();
                if !failed.succeeded {
                    failed_runs += 1;
                    assert_eq!(env.watermark().await, before, "seed {seed} step {step}");
                    assert!(
                        stray_files(&env.out()).is_empty(),
                        "seed {seed} step {step}: {:?}",
                        stray_files(&env.out())
                    );
                } else {
                    // The budget sufficed: its changes count like any run's.
                    apply(&mut dest, &exported(&env.out(), &failed.run_id));
                }
            }

            let s = env.run().await;
            let changes = exported(&env.out(), &s.run_id);
            for c in &changes {
                *seen.entry(c.3.clone()).or_default() += 1;
            }
            apply(&mut dest, &changes);
            assert_eq!(dest, env.source_rows(), "seed {seed} step {step}");
            let counts = s.tables[0].changes.expect("a check run reports its changes");
            assert_eq!(counts.inserts + counts.updates + counts.deletes, changes.len() as u64);
            assert_eq!(counts.inserts + counts.updates + counts.unchanged, dest.len() as u64);
            assert!(matches!(env.watermark().await, Some(Watermark::Text(k)) if RunFolder::is_state(&k)));
        }
        assert!(stray_files(&env.out()).is_empty(), "{:?}", stray_files(&env.out()));
    }
    // The sequences exercised every kind of change, and failures.
    assert!(["insert", "update", "delete"].iter().all(|op| seen.get(*op).is_some_and(|n| *n >= 20)), "{seen:?}");
    assert!(failed_runs >= 10, "{failed_runs} failed runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_part_way_changes_nothing_and_the_next_run_exports_its_changes() {
    let env = Env::new(true);
    let db = env.db();
    for id in 1..=50 {
        db.execute(
            "INSERT INTO items (id, email, stage) VALUES (?1, ?2, 'lead')",
            rusqlite::params![id, format!("u{id}@x")],
        )
        .unwrap();
    }
    env.run().await;
    let before = env.watermark().await;
    db.execute("UPDATE items SET stage = 'customer' WHERE id % 10 = 0", []).unwrap();
    db.execute("DELETE FROM items WHERE id = 7", []).unwrap();

    // Killed late in the merge (its future dropped while the new state's first block is being
    // written, its parts already out): the record stays open, the watermark does not move.
    /// Passes the state's header through, then hangs on its first block.
    struct HangAfter(Box<dyn ObjectWriter>, usize);
    #[async_trait]
    impl ObjectWriter for HangAfter {
        async fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError> {
            self.1 += 1;
            if self.1 > 3 {
                std::future::pending::<()>().await;
            }
            self.0.write(chunk).await
        }
        async fn finish(self: Box<Self>) -> Result<u64, BoxError> {
            std::future::pending().await
        }
        async fn abort(self: Box<Self>) -> Result<(), BoxError> {
            self.0.abort().await
        }
    }
    let hangs = Intercepted::new(DirectoryStore::new(env.out())).writers(|key, w| {
        if key.ends_with(STATE_FILE) {
            Box::new(HangAfter(w, 0))
        } else {
            w
        }
    });
    let mut opts = sluice_testkit::run_options();
    // As if its process had died: its lease on this machine is taken over at once.
    opts.pid = sluice_testkit::dead_pid();
    let killed = tokio::time::timeout(std::time::Duration::from_millis(300), env.run_with(&hangs, &opts)).await;
    assert!(killed.is_err(), "the run should have hung");
    assert_eq!(env.watermark().await, before);

    let s = env.run().await;
    let runs = env.history.runs("items", 10).await.unwrap();
    assert!(runs
        .iter()
        .any(|r| r.state == RunState::Failed && r.error.as_deref().is_some_and(|e| e.contains("abandoned"))));
    let changes = exported(&env.out(), &s.run_id);
    let ops: Vec<(i64, &str)> = changes.iter().map(|(id, _, _, op)| (*id, op.as_str())).collect();
    assert_eq!(ops, [(7, "delete"), (10, "update"), (20, "update"), (30, "update"), (40, "update"), (50, "update")]);
    assert!(stray_files(&env.out()).is_empty(), "{:?}", stray_files(&env.out()));

    // A full refresh sends every row again as an insert and starts a new state.
    let mut opts = sluice_testkit::run_options();
    opts.full_refresh = true;
    let full = env.run_with(&DirectoryStore::new(env.out()), &opts).await.unwrap();
    let c = full.tables[0].changes.unwrap();
    assert_eq!((c.inserts, c.updates, c.deletes), (49, 0, 0));
    assert_eq!(env.run().await.tables[0].changes.unwrap().unchanged, 49);
    // Only the newest state is kept: each run removes the one it compared with.
    let states = std::fs::read_dir(env.out().join("items/items"))
        .unwrap()
        .filter(|run| run.as_ref().unwrap().path().join(STATE_FILE).exists())
        .count();
    assert_eq!(states, 1);

    // Other checked columns make the state incomparable: said, and a full refresh starts anew.
    let path = env.dir.path().join("sluice.toml");
    let text =
        std::fs::read_to_string(&path).unwrap().replace("columns = [\"email\", \"stage\"]", "columns = [\"stage\"]");
    std::fs::write(&path, text).unwrap();
    let env = Env { config: Config::load(&path, sluice_local::KINDS).unwrap(), ..env };
    let s = env.run_with(&DirectoryStore::new(env.out()), &sluice_testkit::run_options()).await.unwrap();
    let err = s.tables[0].error.clone().unwrap();
    assert!(err.contains("checked columns changed") && err.contains("--full-refresh"), "{err}");
    let full = env.run_with(&DirectoryStore::new(env.out()), &opts).await.unwrap();
    assert!(full.succeeded, "{:?}", full.error);
    assert_eq!(env.run().await.tables[0].changes.unwrap().unchanged, 49);
}

#[tokio::test]
async fn a_key_that_is_not_unique_or_null_fails_the_run_with_what_to_fix() {
    let env = Env::new(false);
    let db = env.db();
    // A table without a primary key, so the key column can repeat.
    db.execute_batch(
        "DROP TABLE items; CREATE TABLE items (id INTEGER, email TEXT, stage TEXT, counter INTEGER);
         INSERT INTO items VALUES (1, 'a', 'x', 0), (1, 'b', 'y', 0);",
    )
    .unwrap();
    let s = env.run_with(&DirectoryStore::new(env.out()), &sluice_testkit::run_options()).await.unwrap();
    let err = s.tables[0].error.clone().unwrap();
    assert!(err.contains("not unique") && err.contains("id"), "{err}");
    assert_eq!(env.watermark().await, None);
    assert!(stray_files(&env.out()).is_empty());

    db.execute_batch("DELETE FROM items; INSERT INTO items VALUES (NULL, 'a', 'x', 0);").unwrap();
    let s = env.run_with(&DirectoryStore::new(env.out()), &sluice_testkit::run_options()).await.unwrap();
    assert!(s.tables[0].error.as_deref().unwrap().contains("NULL"), "{:?}", s.tables[0].error);

    // The state a committed run left is gone: a clear way out.
    db.execute_batch("DELETE FROM items; INSERT INTO items VALUES (1, 'a', 'x', 0);").unwrap();
    let ok = env.run().await;
    let state = env.out().join(format!("items/items/{}/{STATE_FILE}", ok.run_id));
    std::fs::remove_file(&state).unwrap();
    let s = env.run_with(&DirectoryStore::new(env.out()), &sluice_testkit::run_options()).await.unwrap();
    assert!(s.tables[0].error.as_deref().unwrap().contains("--full-refresh"), "{:?}", s.tables[0].error);
}

#[tokio::test]
async fn a_state_file_of_many_blocks_reads_back_whole_and_a_damaged_one_is_named() {
    use sluice_core::strategy::check::state::{StateMeta, StateReader, StateWriter};
    let dir = tempfile::tempdir().unwrap();
    let store = DirectoryStore::new(dir.path().to_path_buf());
    let key = |i: u64| format!("customer-{i:08}@example.com").into_bytes();
    let meta = StateMeta::new(&["email".into()], &["name".into()]);
    let mut w = StateWriter::create(&store, "s/state", &meta).await.unwrap();
    let n = 60_000u64;
    for i in 0..n {
        w.push(&key(i), i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).await.unwrap();
    }
    let (entries, bytes) = w.finish().await.unwrap();
    assert_eq!(entries, n);
    // Several blocks, and the shared prefixes and compression keep it small.
    assert!(bytes < n * 14, "{bytes} bytes for {n} keys");
    let mut r = StateReader::open(&store, "s/state").await.unwrap();
    assert_eq!(r.meta(), &meta);
    let mut i = 0;
    while let Some((k, h)) = r.current() {
        assert_eq!((k, h), (key(i).as_slice(), i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), "entry {i}");
        r.advance().await.unwrap();
        i += 1;
    }
    assert_eq!(i, n);

    // Damaged, cut short, or not a state at all: the error says which file and what to do.
    let path = dir.path().join("s/state");
    let full = std::fs::read(&path).unwrap();
    let mut flipped = full.clone();
    let at = flipped.len() / 3;
    flipped[at] ^= 0x10;
    std::fs::write(&path, &flipped).unwrap();
    let err = async {
        let mut r = StateReader::open(&store, "s/state").await?;
        while r.current().is_some() {
            r.advance().await?;
        }
        Ok::<(), BoxError>(())
    }
    .await
    .expect_err("a flipped bit is caught (the blocks carry checksums)")
    .to_string();
    assert!(err.contains("damaged"), "{err}");
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let mut r = StateReader::open(&store, "s/state").await.unwrap();
    let err = loop {
        match r.advance().await {
            Err(e) => break e.to_string(),
            Ok(()) if r.current().is_none() => panic!("a cut file read to its end"),
            Ok(()) => {}
        }
    };
    assert!(err.contains("s/state") && err.contains("damaged") && err.contains("--full-refresh"), "{err}");
    std::fs::write(&path, b"id|email\n1|a\n").unwrap();
    let err = StateReader::open(&store, "s/state").await.err().unwrap().to_string();
    assert!(err.contains("not a Sluice state file"), "{err}");
}

/// The key encoding against SQLite's own `ORDER BY`: values of every storage class (integers
/// and reals mixed in one column, text with NUL bytes and multi-byte characters, blobs), alone
/// and as the second column of a composite key, come back in strictly ascending encoded order.
#[tokio::test]
async fn encoded_keys_ascend_in_the_order_sqlite_sorts_them() {
    use sluice_core::ports::{Filter, Query, Source};
    use sluice_core::spec::TableName;
    use sluice_core::strategy::check::key::encode_key;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch("CREATE TABLE k (a, b, PRIMARY KEY (a, b)); CREATE TABLE n (x NUMERIC PRIMARY KEY);").unwrap();
    let mut rng = Rng(42);
    let texts = ["", "a", "a\0", "a\0b", "ab", "b", "é", "日本", "Z", "\u{10FFFF}"];
    let value = |rng: &mut Rng| -> rusqlite::types::Value {
        use rusqlite::types::Value::*;
        match rng.below(5) {
            0 => Integer(rng.below(2000) as i64 - 1000),
            1 => Integer([i64::MIN, i64::MAX, 1 << 53, (1 << 60) + 1][rng.below(4) as usize]),
            2 => Real((rng.below(4000) as f64 - 2000.0) / 7.0),
            3 => Text(format!("{}{}", texts[rng.below(texts.len() as u64) as usize], rng.below(3))),
            _ => Blob(vec![rng.below(3) as u8, 0, rng.below(256) as u8]),
        }
    };
    for _ in 0..3000 {
        let a = rng.below(4) as i64;
        db.execute("INSERT OR IGNORE INTO k VALUES (?1, ?2)", rusqlite::params![a, value(&mut rng)]).unwrap();
        let x = match rng.below(3) {
            0 => rusqlite::types::Value::Integer(rng.below(100) as i64 - 50),
            1 => rusqlite::types::Value::Real((rng.below(1000) as f64 - 500.0) / 8.0),
            _ => rusqlite::types::Value::Real(2f64.powi(60)),
        };
        db.execute("INSERT OR IGNORE INTO n VALUES (?1)", [x]).unwrap();
    }
    // A whole float above 2^53 beside integers within its rounding: ordered exactly.
    db.execute_batch("INSERT OR IGNORE INTO n VALUES (1152921504606846977), (1152921504606846975)").unwrap();

    let source = SqliteSource::new(path);
    for (table, cols) in [("k", vec!["a", "b"]), ("n", vec!["x"])] {
        let query = Query {
            table: TableName::parse(table).unwrap(),
            columns: cols.iter().map(|c| c.to_string()).collect(),
            filter: Filter::All,
            order_by: cols.iter().map(|c| c.to_string()).collect(),
        };
        use futures::StreamExt;
        let mut rows = source.read(&query).await.unwrap();
        let (mut prev, mut n) = (Vec::new(), 0);
        let key: Vec<usize> = (0..cols.len()).collect();
        while let Some(batch) = rows.next().await {
            let batch = batch.unwrap();
            for r in 0..batch.rows() {
                let mut k = Vec::new();
                encode_key(&batch, batch.row(r), &key, &mut k).unwrap();
                assert!(
                    n == 0 || k > prev,
                    "table {table}, row {n}: {:?} does not sort after the row before",
                    batch.row(r)
                );
                prev = k;
                n += 1;
            }
        }
        assert!(n > 300, "{table}: {n} rows");
    }
}

/// The number of committed or leftover `check` states under the table's folder.
fn states(out: &Path) -> usize {
    std::fs::read_dir(out.join("items/items"))
        .map(|dir| dir.filter(|run| run.as_ref().unwrap().path().join(STATE_FILE).exists()).count())
        .unwrap_or(0)
}

/// A consumer must know the first run is a complete copy (every row an insert, no deletes), to
/// replace its copy with rather than apply: its manifest says `full_refresh: true`; later runs'
/// say `false`.
#[tokio::test]
async fn the_first_run_of_a_check_table_says_it_is_a_complete_copy() {
    let env = Env::new(true);
    env.db().execute_batch("INSERT INTO items (id, email, stage) VALUES (1, 'a', 'x'), (2, 'b', 'y')").unwrap();
    let first = env.run().await;
    env.db().execute("UPDATE items SET stage = 'z' WHERE id = 1", []).unwrap();
    let second = env.run().await;
    let flag = |run_id: &str| {
        let parts = committed_parts(&env.out());
        parts.iter().find(|p| p.manifest["run_id"] == run_id).unwrap().manifest["full_refresh"].clone()
    };
    assert_eq!(flag(&first.run_id), true);
    assert_eq!(flag(&second.run_id), false);
    let runs = env.history.runs("items", 10).await.unwrap();
    let record = |id: &str| runs.iter().find(|r| r.run_id == id).unwrap().full_refresh;
    assert!(record(&first.run_id) && !record(&second.run_id));
}

/// A run that dies after its manifest is committed by the next run's reconciliation; the state
/// that committed run superseded is removed all the same, so states do not pile up.
#[tokio::test]
async fn a_state_superseded_by_a_run_committed_on_reconciliation_is_removed() {
    let env = Env::new(false);
    env.db().execute_batch("INSERT INTO items (id, email, stage) VALUES (1, 'a', 'x'), (2, 'b', 'y')").unwrap();
    env.run().await;
    for round in 0..3 {
        env.db().execute("UPDATE items SET stage = ?1 WHERE id = 1", [format!("s{round}")]).unwrap();
        let dies = Intercepted::new(DirectoryStore::new(env.out())).after_put(|_| Box::pin(std::future::pending()));
        let mut opts = sluice_testkit::run_options();
        opts.pid = sluice_testkit::dead_pid();
        let killed = tokio::time::timeout(std::time::Duration::from_millis(300), env.run_with(&dies, &opts)).await;
        assert!(killed.is_err(), "the run should have hung after its manifest");
    }
    env.run().await;
    assert_eq!(states(&env.out()), 1, "only the committed state is kept");
    assert!(stray_files(&env.out()).is_empty(), "{:?}", stray_files(&env.out()));
}
