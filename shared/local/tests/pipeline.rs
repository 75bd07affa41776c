//! The whole export pipeline on the embedded adapters: incremental runs over a changing SQLite
//! database, the lease, the conditional commit, and runs that die part way.

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sluice_core::ports::{HistoryStore, LeaseOwner, ObjectStore, RunState};
use sluice_core::run::{Ports, Quiet, RunOptions, Runner};
use sluice_core::spec::{Config, OnSchemaChange};
use sluice_core::value::Watermark;
use sluice_core::Error;
use sluice_local::{DirectoryStore, JsonlEventLog, SqliteHistory, SqliteSource};
use sluice_testkit::history::{BeforeCommit, Lost, LostCommit};
use sluice_testkit::store::{Hang, Intercepted};
use sluice_testkit::{committed_rows, contacts_config, create_contacts, insert_contacts, stray_files};

const CSV: &str = "{ compression = \"none\", max_file_size = 400 }";

struct Env {
    dir: tempfile::TempDir,
    config: Config,
    clock: Arc<Mutex<DateTime<Utc>>>,
    history: SqliteHistory,
    events: JsonlEventLog,
}

impl Env {
    fn new(incremental: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        create_contacts(&dir.path().join("source.db"));
        let config = Config::load(&contacts_config(dir.path(), incremental, CSV), sluice_local::KINDS).unwrap();
        let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
        let events = JsonlEventLog::new(dir.path().join("events.jsonl"));
        let clock = Arc::new(Mutex::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()));
        Env { dir, config, clock, history, events }
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("source.db")).unwrap()
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    fn advance(&self, ms: i64) {
        *self.clock.lock().unwrap() += Duration::milliseconds(ms);
    }

    fn source(&self) -> SqliteSource {
        let clock = self.clock.clone();
        SqliteSource::with_clock(self.dir.path().join("source.db"), Arc::new(move || *clock.lock().unwrap()))
    }

    fn opts(&self) -> RunOptions {
        sluice_testkit::run_options()
    }

    async fn run_with(
        &self,
        store: &dyn ObjectStore,
        history: &dyn HistoryStore,
        opts: &RunOptions,
    ) -> Result<sluice_core::run::ExportRunSummary, Error> {
        let source = self.source();
        let ports = Ports { source: &source, store, history, events: &self.events };
        Runner::new(ports, &Quiet).run(&self.config.exports[0], opts).await
    }

    async fn run(&self) -> sluice_core::run::ExportRunSummary {
        let store = DirectoryStore::new(self.out());
        let s = self.run_with(&store, &self.history, &self.opts()).await.unwrap();
        assert!(s.succeeded, "{:?}", s.error);
        s
    }

    async fn watermark(&self) -> Option<Watermark> {
        self.history.watermark("contacts", "contacts").await.unwrap().map(|w| w.watermark)
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// (id, version) of every committed row, with how often each was exported.
fn exported(out: &Path) -> BTreeMap<(i64, i64), usize> {
    let mut seen = BTreeMap::new();
    for row in committed_rows(out) {
        let id: i64 = row[0].as_deref().unwrap().parse().unwrap();
        let version: i64 = row[3].as_deref().unwrap().parse().unwrap();
        *seen.entry((id, version)).or_insert(0) += 1;
    }
    seen
}

/// A tiny seeded generator, so a failing sequence can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_of_every_row_is_in_exactly_one_committed_run() {
    for seed in 1..=12u64 {
        let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\", lag = \"5s\" }");
        let db = env.db();
        let mut rng = Rng(seed);
        let mut next_id = 1i64;
        let mut versions: BTreeMap<i64, i64> = BTreeMap::new();
        for _ in 0..60 {
            env.advance(1 + rng.below(3000) as i64);
            match rng.below(10) {
                0..=3 => {
                    // Insert, stamped now or (committed late) up to 4.9 s in the past: inside the lag.
                    let late = if rng.below(3) == 0 { rng.below(4900) as i64 } else { 0 };
                    let n = 1 + rng.below(4) as i64;
                    insert_contacts(&db, next_id, n, &stamp(env.now() - Duration::milliseconds(late)));
                    for id in next_id..next_id + n {
                        versions.insert(id, 1);
                    }
                    next_id += n;
                }
                4..=6 if next_id > 1 => {
                    // Update, possibly several rows tied on the same stamp.
                    let ts = stamp(env.now() - Duration::milliseconds(rng.below(2) as i64 * rng.below(4900) as i64));
                    for _ in 0..1 + rng.below(3) {
                        let id = 1 + rng.below((next_id - 1) as u64) as i64;
                        db.execute(
                            "UPDATE contacts SET version = version + 1, updated_at = ?1 WHERE id = ?2",
                            rusqlite::params![ts, id],
                        )
                        .unwrap();
                        *versions.get_mut(&id).unwrap() += 1;
                    }
                }
                _ => {
                    if rng.below(2) == 0 {
                        // Rows stamped exactly on the bound this run is about to capture.
                        insert_contacts(&db, next_id, 2, &stamp(env.now() - Duration::seconds(5)));
                        versions.insert(next_id, 1);
                        versions.insert(next_id + 1, 1);
                        next_id += 2;
                    }
                    env.run().await;
                }
            }
        }
        // Past the lag, one more run picks up everything still waiting.
        env.advance(6000);
        env.run().await;

        let seen = exported(&env.out());
        for ((id, v), n) in &seen {
            assert_eq!(*n, 1, "seed {seed}: row {id} version {v} exported {n} times");
            assert!(versions.get(id).is_some_and(|last| v <= last), "seed {seed}: unknown version {id}/{v}");
        }
        for (id, last) in &versions {
            assert!(seen.contains_key(&(*id, *last)), "seed {seed}: row {id} version {last} never exported");
        }
        assert!(stray_files(&env.out()).is_empty());
    }
}

#[tokio::test]
async fn late_row_inside_lag_is_exported_next_run() {
    // GIVEN a 10 s lag and a first run at t0
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\", lag = \"10s\" }");
    let db = env.db();
    insert_contacts(&db, 1, 3, &stamp(env.now() - Duration::seconds(60)));
    env.run().await;
    // WHEN a transaction stamped 5 s before that run commits after it
    insert_contacts(&db, 100, 1, &stamp(env.now() - Duration::seconds(5)));
    env.advance(1000);
    let second = env.run().await;
    assert_eq!(second.rows, 0, "still inside the lag");
    env.advance(10_000);
    let third = env.run().await;
    // THEN the next run past the lag exports it, once
    assert_eq!(third.rows, 1);
    assert_eq!(exported(&env.out()).get(&(100, 1)), Some(&1));
}

#[tokio::test]
async fn rows_tied_on_the_boundary_are_exported_once_with_the_max_bound() {
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\", upper_bound = \"max\" }");
    let db = env.db();
    insert_contacts(&db, 1, 2, "2026-01-01 00:00:01");
    insert_contacts(&db, 3, 2, "2026-01-01 00:00:02");
    // The newest stamp waits: a late row tied with it must not be skipped.
    assert_eq!(env.run().await.rows, 2);
    insert_contacts(&db, 5, 1, "2026-01-01 00:00:02");
    assert_eq!(env.run().await.rows, 0);
    insert_contacts(&db, 6, 1, "2026-01-01 00:00:03");
    assert_eq!(env.run().await.rows, 3);
    assert_eq!(env.watermark().await, Some(Watermark::Text("2026-01-01 00:00:02".into())));
    let seen = exported(&env.out());
    assert_eq!(seen.keys().map(|k| k.0).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert!(seen.values().all(|n| *n == 1));
}

#[tokio::test]
async fn null_stamps_are_reported_and_exported_through_a_fallback() {
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\" }");
    let db = env.db();
    insert_contacts(&db, 1, 3, "2025-12-31 00:00:00");
    db.execute("UPDATE contacts SET updated_at = NULL WHERE id = 2", []).unwrap();
    let s = env.run().await;
    assert_eq!((s.rows, s.tables[0].null_rows), (2, 1));

    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\", fallback_column = \"email\" }");
    let db = env.db();
    insert_contacts(&db, 1, 3, "2025-12-31 00:00:00");
    db.execute("UPDATE contacts SET updated_at = NULL, email = '2025-12-30 00:00:00' WHERE id = 2", []).unwrap();
    let s = env.run().await;
    assert_eq!((s.rows, s.tables[0].null_rows), (3, 0));
}

#[tokio::test]
async fn a_held_lease_refuses_the_run_and_names_the_holder() {
    let env = Env::new("{ strategy = \"full\" }");
    insert_contacts(&env.db(), 1, 1, "2025-12-31 00:00:00");
    let other = LeaseOwner { run_id: "other-run".into(), host: "other-host".into(), pid: 1 };
    env.history.acquire_lease("contacts", &other, std::time::Duration::from_secs(60)).await.unwrap();
    let store = DirectoryStore::new(env.out());
    let err = env.run_with(&store, &env.history, &env.opts()).await.unwrap_err();
    assert!(matches!(err, Error::LeaseHeld { .. }));
    assert!(err.to_string().contains("other-run") && err.to_string().contains("other-host"), "{err}");
    assert!(!env.out().exists());
}

#[tokio::test]
async fn a_refused_commit_leaves_no_manifest_and_the_watermark_it_found() {
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\" }");
    insert_contacts(&env.db(), 1, 50, "2025-12-31 00:00:00");
    // Another writer moves the watermark just before the run commits.
    let path = env.dir.path().join("history.db");
    let history = BeforeCommit::new(&env.history, move || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "INSERT OR REPLACE INTO export_history VALUES ('contacts', 'contacts', 'x', '{\"type\":\"text\",\"value\":\"9999\"}', 'intruder', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
        Box::pin(async {})
    });
    let store = DirectoryStore::new(env.out());
    let s = env.run_with(&store, &history, &env.opts()).await.unwrap();
    assert!(!s.succeeded);
    assert!(s.tables[0].error.as_deref().unwrap().contains("watermark moved"), "{:?}", s.tables[0].error);
    assert!(store.list("").await.unwrap().is_empty(), "nothing may stay behind");
    assert_eq!(env.watermark().await, Some(Watermark::Text("9999".into())));
    let runs = env.history.runs("contacts", 10).await.unwrap();
    assert_eq!(runs[0].state, RunState::Failed);
    let events = std::fs::read_to_string(env.dir.path().join("events.jsonl")).unwrap();
    assert!(events.contains("\"detail-type\":\"ExportFailed\""), "{events}");
}

/// A commit whose answer is lost: if the history shows it landed, the run stands; if it shows
/// it did not, the output goes; if the history cannot say, the manifest stays and the next run
/// settles it. In every case each row is exported once and none is lost.
#[tokio::test]
async fn a_commit_whose_answer_is_lost_neither_loses_nor_doubles_rows() {
    for (lost, blind) in [(Lost::AfterApplying, false), (Lost::BeforeApplying, false), (Lost::BeforeApplying, true)] {
        let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\" }");
        insert_contacts(&env.db(), 1, 30, "2025-12-31 00:00:00");
        let store = DirectoryStore::new(env.out());
        let history = LostCommit::losing(&env.history, lost, blind);
        let s = env.run_with(&store, &history, &env.opts()).await.unwrap();
        match (lost, blind) {
            (Lost::AfterApplying, _) => {
                assert!(s.succeeded, "it landed: {:?}", s.error);
                assert!(env.watermark().await.is_some());
            }
            (_, false) => {
                assert!(!s.succeeded);
                assert_eq!(env.watermark().await, None);
                assert!(store.list("").await.unwrap().is_empty(), "it did not land: nothing stays");
            }
            (_, true) => {
                assert!(
                    s.tables[0].error.as_deref().unwrap().contains("the next run settles it"),
                    "{:?}",
                    s.tables[0].error
                );
                assert_eq!(env.history.open_runs("contacts").await.unwrap().len(), 1, "left running, manifest kept");
            }
        }
        // The next run (on the plain history) settles whatever is left, and adds nothing twice.
        env.run().await;
        assert_eq!(env.history.open_runs("contacts").await.unwrap().len(), 0);
        let seen = exported(&env.out());
        assert_eq!(seen.len(), 30, "{lost:?} blind={blind}");
        assert!(seen.values().all(|n| *n == 1), "{lost:?} blind={blind}: {seen:?}");
        assert!(stray_files(&env.out()).is_empty());
    }
}

/// The real directory store, where the process "dies" (the run's future is dropped) right
/// after the manifest is written, or while a part is being written.
fn dies_at(out: PathBuf, after_manifest: bool) -> Intercepted<DirectoryStore> {
    let store = Intercepted::new(DirectoryStore::new(out));
    if after_manifest {
        store.after_put(|_| Box::pin(std::future::pending()))
    } else {
        store.writers(|key, w| if key.contains("part-00002") { Box::new(Hang) } else { w })
    }
}

async fn die_then_rerun(after_manifest: bool) {
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\" }");
    insert_contacts(&env.db(), 1, 40, "2025-12-31 00:00:00");
    let dying = dies_at(env.out(), after_manifest);
    let mut opts = env.opts();
    // As if its process had died: its lease on this machine is taken over at once.
    opts.pid = sluice_testkit::dead_pid();
    let died =
        tokio::time::timeout(std::time::Duration::from_millis(300), env.run_with(&dying, &env.history, &opts)).await;
    assert!(died.is_err(), "the run should have hung");
    assert_eq!(env.history.open_runs("contacts").await.unwrap().len(), 1);
    // Before anything reconciles, the watermark is untouched.
    assert_eq!(env.watermark().await, None);

    let second = env.run().await;
    assert_eq!(env.history.open_runs("contacts").await.unwrap().len(), 0);
    let runs = env.history.runs("contacts", 10).await.unwrap();
    let dead = runs.iter().find(|r| r.run_id != second.run_id).unwrap();
    if after_manifest {
        // The manifest is the commit point: the dead run is committed, the next run adds nothing.
        assert_eq!(dead.state, RunState::Succeeded);
        assert_eq!(second.rows, 0);
    } else {
        assert_eq!(dead.state, RunState::Failed);
        assert!(dead.error.as_deref().unwrap().contains("abandoned"));
        assert_eq!(second.rows, 40);
    }
    let seen = exported(&env.out());
    assert_eq!(seen.len(), 40);
    assert!(seen.values().all(|n| *n == 1));
    assert!(stray_files(&env.out()).is_empty(), "{:?}", stray_files(&env.out()));
}

#[tokio::test]
async fn a_run_that_dies_mid_part_is_abandoned_and_its_window_exported_again() {
    die_then_rerun(false).await;
}

#[tokio::test]
async fn a_run_that_dies_after_its_manifest_is_committed_by_the_next_run() {
    die_then_rerun(true).await;
}

#[tokio::test]
async fn a_run_past_its_deadline_stops_cleanly_and_commits_nothing() {
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\" }");
    insert_contacts(&env.db(), 1, 30_000, "2025-12-31 00:00:00");
    let mut opts = env.opts();
    opts.stop_by = Some(std::time::Instant::now());
    let store = DirectoryStore::new(env.out());
    let s = env.run_with(&store, &env.history, &opts).await.unwrap();
    assert!(!s.succeeded);
    let err = s.tables[0].error.as_deref().unwrap();
    assert!(err.contains("deadline") && err.contains("timeout") && err.contains("unload"), "{err}");
    assert!(store.list("").await.unwrap().is_empty());
    assert_eq!(env.watermark().await, None);
    assert!(env.history.lease("contacts").await.unwrap().is_none(), "lease released");
    let events = std::fs::read_to_string(env.dir.path().join("events.jsonl")).unwrap();
    assert!(events.contains("ExportFailed"));
}

#[tokio::test]
async fn a_full_refresh_reexports_everything_and_moves_the_watermark() {
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\" }");
    insert_contacts(&env.db(), 1, 5, "2025-12-31 00:00:00");
    env.run().await;
    let mut opts = env.opts();
    opts.full_refresh = true;
    env.advance(1000);
    let store = DirectoryStore::new(env.out());
    let s = env.run_with(&store, &env.history, &opts).await.unwrap();
    assert_eq!(s.rows, 5);
    // The last whole second (the stamps' unit) over by now less the default 5 s lag.
    assert_eq!(env.watermark().await, Some(Watermark::Text("2025-12-31 23:59:55".into())));
}

/// Run A stalls after writing its manifest (its process looks dead to the history); run B takes
/// the lease over and, reconciling, commits A's run from its manifest; then A's own commit is
/// refused. A must not remove the output the history now references: every row stays exported
/// exactly once. (Removing it lost all ten rows: the watermark had moved past them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_was_taken_over_keeps_the_output_the_new_holder_committed() {
    for b_commits_first in [true, false] {
        let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\" }");
        insert_contacts(&env.db(), 1, 10, "2025-12-31 00:00:00");
        let (dir, clock, config) = (env.dir.path().to_path_buf(), env.clock.clone(), env.config.clone());
        let history = BeforeCommit::new(&env.history, move || {
            let (dir, clock, config) = (dir.clone(), clock.clone(), config.clone());
            Box::pin(async move {
                let history = SqliteHistory::open(&dir.join("history.db"), "test-host").unwrap();
                if b_commits_first {
                    // B: a whole run, whose reconciliation commits A's run from its manifest.
                    let source =
                        SqliteSource::with_clock(dir.join("source.db"), Arc::new(move || *clock.lock().unwrap()));
                    let store = DirectoryStore::new(dir.join("out"));
                    let events = JsonlEventLog::new(dir.join("events.jsonl"));
                    let ports = Ports { source: &source, store: &store, history: &history, events: &events };
                    let s = Runner::new(ports, &Quiet).run(&config.exports[0], &sluice_testkit::run_options()).await;
                    assert!(s.unwrap().succeeded);
                } else {
                    // B has just taken the lease, and has not settled A's run yet.
                    let owner = LeaseOwner { run_id: "b".into(), host: "test-host".into(), pid: std::process::id() };
                    history.acquire_lease("contacts", &owner, std::time::Duration::from_secs(60)).await.unwrap();
                    let lease = history.lease("contacts").await.unwrap().unwrap();
                    history.release_lease(&lease).await.unwrap();
                }
            })
        });
        let mut opts = env.opts();
        opts.pid = sluice_testkit::dead_pid();
        let store = DirectoryStore::new(env.out());
        let a = env.run_with(&store, &history, &opts).await.unwrap();
        if b_commits_first {
            assert!(a.succeeded, "committed by B: {:?}", a.error);
        } else {
            let error = a.tables[0].error.as_deref().unwrap();
            assert!(error.contains("the run now holding the lease commits this run"), "{error}");
            let runs = env.history.runs("contacts", 10).await.unwrap();
            assert_eq!(runs[0].state, RunState::Running, "left for the lease's holder to settle");
            // The next run settles it: committed from its manifest.
            env.run().await;
        }
        let seen = exported(&env.out());
        assert_eq!(seen.len(), 10, "b_commits_first = {b_commits_first}: {seen:?}");
        assert!(seen.values().all(|n| *n == 1));
        assert!(env.watermark().await.is_some());
        assert!(stray_files(&env.out()).is_empty());
        // A late failure report of the committed run (its first process, say) leaves it committed.
        let runs = env.history.runs("contacts", 10).await.unwrap();
        let committed = runs.iter().find(|r| r.run_id == a.run_id).unwrap().clone();
        assert_eq!(committed.state, RunState::Succeeded);
        env.history.fail_run(&committed).await.unwrap();
        let runs = env.history.runs("contacts", 10).await.unwrap();
        assert_eq!(runs.iter().find(|r| r.run_id == a.run_id).unwrap().state, RunState::Succeeded);
    }
}

/// Clocks differ between machines: a lease that has just expired by another machine's clock is
/// not taken over until the takeover margin has passed too.
#[tokio::test]
async fn an_expired_lease_is_taken_over_only_after_the_margin() {
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\" }");
    let a = LeaseOwner { run_id: "a".into(), host: "machine-a".into(), pid: 1 };
    env.history.acquire_lease("contacts", &a, std::time::Duration::ZERO).await.unwrap();
    let b_history = SqliteHistory::open(&env.dir.path().join("history.db"), "machine-b").unwrap();
    let b = LeaseOwner { run_id: "b".into(), host: "machine-b".into(), pid: 2 };
    let refused = b_history.acquire_lease("contacts", &b, std::time::Duration::from_secs(60)).await;
    assert!(matches!(refused, Err(sluice_core::HistoryError::LeaseHeld { .. })), "{refused:?}");
    // Expired longer ago than the margin: taken over.
    let conn = rusqlite::Connection::open(env.dir.path().join("history.db")).unwrap();
    conn.execute("UPDATE leases SET expires_at = '2000-01-01T00:00:00Z'", []).unwrap();
    b_history.acquire_lease("contacts", &b, std::time::Duration::from_secs(60)).await.unwrap();
}

/// Whoever can write the history (not only a run) could leave an open run record behind. The
/// next run's reconciliation deletes an abandoned run's folder, or commits its manifest: a
/// record whose folder or manifest is not the one its run id implies is refused instead.
#[tokio::test]
async fn a_forged_open_run_record_is_refused_without_removing_or_committing_anything() {
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\" }");
    insert_contacts(&env.db(), 1, 10, "2025-12-31 00:00:00");
    env.run().await;
    let real = env.history.runs("contacts", 1).await.unwrap().remove(0);
    let watermark = env.watermark().await;
    let forger = LeaseOwner { run_id: "forger".into(), host: "elsewhere".into(), pid: 1 };
    let lease = env.history.acquire_lease("contacts", &forger, std::time::Duration::from_secs(60)).await.unwrap();
    let forged = |run_id: &str, prefix: &str, manifest: &str, watermark: &str| sluice_core::ports::RunRecord {
        run_id: run_id.into(),
        state: RunState::Running,
        prefix: prefix.into(),
        manifest_key: manifest.into(),
        window: sluice_core::value::Window { low: None, high: Some(Watermark::Text(watermark.into())) },
        started_at: Utc::now(),
        ..real.clone()
    };
    let records = [
        // The whole destination root, deleted as "abandoned parts".
        forged("20261130T000000Z-0000aaaa", "", "20261130T000000Z-0000aaaa/manifest.json", "2030-01-01"),
        // A real manifest, to commit a watermark far ahead (every row until then skipped).
        forged("20261130T000001Z-0000bbbb", &real.prefix, &real.manifest_key, "2099-01-01"),
        // A run id that is a path.
        forged("../..", "contacts/contacts/../..", "contacts/contacts/../../manifest.json", "2099-01-01"),
    ];
    for r in &records {
        env.history.begin_run(&lease, r).await.unwrap();
    }
    env.history.release_lease(&lease).await.unwrap();

    env.run().await;
    assert_eq!(exported(&env.out()).len(), 10, "nothing removed");
    assert_eq!(env.watermark().await, watermark, "nothing committed");
    let runs = env.history.runs("contacts", 20).await.unwrap();
    for r in &records {
        let found = runs.iter().find(|x| x.run_id == r.run_id).unwrap();
        assert_eq!(found.state, RunState::Failed, "{found:?}");
        let error = found.error.as_deref().unwrap();
        assert!(error.contains("refused by reconciliation") && error.contains("nothing was removed"), "{error}");
    }
    assert!(env.history.open_runs("contacts").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_history_file_keeps_the_history_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
    sluice_testkit::history::check_contract(&history).await;
}

#[tokio::test]
async fn the_sqlite_source_keeps_the_source_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("contract.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    for statement in sluice_testkit::source::FIXTURE {
        conn.execute(statement, []).unwrap();
    }
    drop(conn);
    let table = sluice_core::value::TableName::parse("contract_items").unwrap();
    sluice_testkit::source::check_contract(&SqliteSource::new(db), &table).await;
}

#[tokio::test]
async fn the_event_log_keeps_the_event_sink_contract() {
    use futures::FutureExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let log = JsonlEventLog::new(path.clone());
    let received = || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        async move { text.lines().map(|l| serde_json::from_str(l).unwrap()).collect() }.boxed()
    };
    sluice_testkit::events::check_contract(&log, &received).await;
}

/// The runner on in-memory adapters (store, history, events) and an SQLite table: a unit test
/// of the protocol that needs no folder, file or service.
#[tokio::test]
async fn a_run_on_in_memory_adapters_commits_its_window_once() {
    use sluice_testkit::memory::{MemoryEvents, MemoryHistory, MemoryStore};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("source.db");
    let conn = create_contacts(&db);
    insert_contacts(&conn, 1, 50, "2020-01-01 00:00:00");
    drop(conn);
    let incremental = "{ strategy = \"timestamp\", column = \"updated_at\" }";
    let config = Config::load(&contacts_config(dir.path(), incremental, CSV), sluice_local::KINDS).unwrap();
    let (store, history, events) = (MemoryStore::new(), MemoryHistory::new(), MemoryEvents::new());
    let source = SqliteSource::new(db.clone());
    let ports = Ports { source: &source, store: &store, history: &history, events: &events };
    let opts = sluice_testkit::run_options();

    let first = Runner::new(ports, &Quiet).run(&config.exports[0], &opts).await.unwrap();
    assert!(first.succeeded, "{:?}", first.error);
    assert_eq!(first.rows, 50);
    let manifest = first.tables[0].manifest_key.clone().unwrap();
    assert!(store.get(&manifest).await.unwrap().is_some(), "the manifest is in the store");
    let committed = history.watermark("contacts", "contacts").await.unwrap().unwrap();
    assert_eq!(Some(committed.watermark), first.tables[0].window.high);

    let second = Runner::new(ports, &Quiet).run(&config.exports[0], &opts).await.unwrap();
    assert!(second.succeeded, "{:?}", second.error);
    assert_eq!(second.rows, 0, "nothing new: nothing exported twice");
    let kinds: Vec<String> = events.entries().iter().map(|e| e["detail-type"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["ExportSucceeded", "ExportSucceeded"]);
}

/// Each committed manifest links to the table's committed manifest before it, by key and by the
/// hash of its bytes, and carries the fingerprint of the columns it was read with: the runs of a
/// table form a chain that can be walked back and checked from the files alone.
#[tokio::test]
async fn each_manifest_links_to_the_tables_previous_one_by_key_and_hash() {
    use sha2::{Digest, Sha256};
    let mut env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\", lag = \"0s\" }");
    // The last run adds a column, exported as announced.
    env.config.exports[0].tables[0].on_schema_change = OnSchemaChange::AddColumns;
    let db = env.db();
    let manifest = |s: &sluice_core::run::ExportRunSummary| -> (String, Vec<u8>, serde_json::Value) {
        let key = s.tables[0].manifest_key.clone().unwrap();
        let bytes = std::fs::read(env.out().join(&key)).unwrap();
        let json = serde_json::from_slice(&bytes).unwrap();
        (key, bytes, json)
    };
    insert_contacts(&db, 1, 3, &stamp(env.now() - Duration::seconds(60)));
    let (k1, b1, m1) = manifest(&env.run().await);
    assert_eq!(m1["version"], sluice_core::manifest::MANIFEST_VERSION);
    assert!(m1.get("previous").is_none(), "the table's first run starts the chain: {m1}");
    // An empty window still commits a run, and links.
    env.advance(1000);
    let (k2, b2, m2) = manifest(&env.run().await);
    assert_eq!(m2["previous"]["key"], k1.as_str());
    assert_eq!(m2["previous"]["sha256"], hex::encode(Sha256::digest(&b1)));
    env.advance(1000);
    insert_contacts(&db, 10, 2, &stamp(env.now() - Duration::milliseconds(500)));
    env.advance(1000);
    let (_, _, m3) = manifest(&env.run().await);
    assert_eq!(m3["previous"]["key"], k2.as_str());
    assert_eq!(m3["previous"]["sha256"], hex::encode(Sha256::digest(&b2)));
    // The same columns, the same fingerprint; another column, another.
    assert_eq!(m1["schema"], m3["schema"]);
    assert_eq!(m1["schema"].as_str().map(str::len), Some(64));
    db.execute("ALTER TABLE contacts ADD COLUMN region TEXT", []).unwrap();
    env.advance(1000);
    let (_, _, m4) = manifest(&env.run().await);
    assert_ne!(m4["schema"], m3["schema"], "a column added changes the fingerprint");
}

/// Schema drift in each `on_schema_change` mode, on SQLite: an added column stops the run by
/// default (the difference named, nothing written, the watermark kept), is exported and
/// announced with `add_columns`, and left out with `ignore`; a dropped column stops every mode
/// and a full refresh accepts it.
#[tokio::test]
async fn schema_drift_fails_by_default_and_each_mode_does_what_it_says() {
    let mut env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\", lag = \"0s\" }");
    let db = env.db();
    insert_contacts(&db, 1, 3, &stamp(env.now() - Duration::seconds(60)));
    env.run().await;
    let before = env.watermark().await;
    let manifests = |env: &Env| committed_rows(&env.out()).len();
    db.execute("ALTER TABLE contacts ADD COLUMN region TEXT", []).unwrap();
    // By name: the table has a column more than `insert_contacts` fills.
    let add = |id: i64, at: &str| {
        db.execute(
            "INSERT INTO contacts(id, email, version, updated_at) VALUES (?1, 'x@example.com', 1, ?2)",
            rusqlite::params![id, at],
        )
        .unwrap();
    };
    add(10, &stamp(env.now()));
    add(11, &stamp(env.now()));
    env.advance(1000);

    // The default: fail, naming the column, writing nothing, keeping the watermark.
    let store = DirectoryStore::new(env.out());
    let s = env.run_with(&store, &env.history, &env.opts()).await.unwrap();
    let error = s.tables[0].error.clone().unwrap_or_default();
    assert!(!s.succeeded && error.contains("column \"region\" added (TEXT)"), "{error}");
    assert!(error.contains("on_schema_change = \"add_columns\""), "{error}");
    assert_eq!(env.watermark().await, before);
    assert_eq!(manifests(&env), 3, "nothing new committed");
    // A backfill takes the chain's shape too: refused alike.
    let mut backfill = env.opts();
    backfill.backfill = Some(sluice_core::run::Backfill {
        table: "contacts".into(),
        from: None,
        to: before.as_ref().unwrap().to_string(),
        by: "test".into(),
        reason: None,
    });
    let s = env.run_with(&store, &env.history, &backfill).await.unwrap();
    let error = s.tables[0].error.clone().unwrap_or_default();
    assert!(!s.succeeded && error.contains("column \"region\" added"), "{error}");

    // ignore: the export keeps its shape.
    env.config.exports[0].tables[0].on_schema_change = OnSchemaChange::Ignore;
    let s = env.run().await;
    let key = s.tables[0].manifest_key.clone().unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(env.out().join(&key)).unwrap()).unwrap();
    let names: Vec<&str> = m["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"region") && m.get("added_columns").is_none(), "{m}");
    assert_eq!(s.tables[0].rows, 2);

    // add_columns: exported from now on, announced in the manifest and the event.
    env.config.exports[0].tables[0].on_schema_change = OnSchemaChange::AddColumns;
    add(20, &stamp(env.now()));
    env.advance(1000);
    let s = env.run().await;
    assert_eq!(s.tables[0].added_columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["region"]);
    let key = s.tables[0].manifest_key.clone().unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(env.out().join(&key)).unwrap()).unwrap();
    assert_eq!(m["added_columns"][0]["name"], "region", "{m}");
    assert_eq!(m["columns"].as_array().unwrap().last().unwrap()["name"], "region");
    let events = std::fs::read_to_string(env.dir.path().join("events.jsonl")).unwrap();
    assert!(events.lines().last().unwrap().contains("\"added_columns\""), "{events}");
    // The next run has nothing new to announce.
    env.advance(1000);
    assert!(env.run().await.tables[0].added_columns.is_empty());

    // A dropped column stops the run in every mode; a full refresh sends the new shape whole.
    db.execute("ALTER TABLE contacts DROP COLUMN name", []).unwrap();
    env.advance(1000);
    let s = env.run_with(&store, &env.history, &env.opts()).await.unwrap();
    let error = s.tables[0].error.clone().unwrap_or_default();
    assert!(error.contains("column \"name\" dropped") && error.contains("--full-refresh"), "{error}");
    let mut opts = env.opts();
    opts.full_refresh = true;
    let s = env.run_with(&store, &env.history, &opts).await.unwrap();
    assert!(s.succeeded, "{:?}", s.error);
}

/// A `full` table has no watermark to name its last run: its link is found in the history.
#[tokio::test]
async fn a_full_tables_manifests_chain_too() {
    let env = Env::new("{ strategy = \"full\" }");
    insert_contacts(&env.db(), 1, 3, &stamp(env.now()));
    let first = env.run().await.tables[0].manifest_key.clone().unwrap();
    env.advance(1000);
    let second = env.run().await.tables[0].manifest_key.clone().unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(env.out().join(&second)).unwrap()).unwrap();
    assert_eq!(m["previous"]["key"], first.as_str());
    assert!(m["previous"]["sha256"].is_string(), "{m}");
}

/// A full run leaves the watermark alone, so after a switch from `timestamp` to `full` the
/// watermark still names the last timestamp run: the chain must follow the runs, not it.
#[tokio::test]
async fn a_table_switched_to_full_links_to_its_last_run_not_the_stale_watermark() {
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\", lag = \"0s\" }");
    insert_contacts(&env.db(), 1, 3, &stamp(env.now() - Duration::seconds(60)));
    env.run().await;
    let full = contacts_config(env.dir.path(), "{ strategy = \"full\" }", CSV);
    let env = Env { config: Config::load(&full, sluice_local::KINDS).unwrap(), ..env };
    env.advance(1000);
    let first_full = env.run().await.tables[0].manifest_key.clone().unwrap();
    env.advance(1000);
    let second_full = env.run().await.tables[0].manifest_key.clone().unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(env.out().join(&second_full)).unwrap()).unwrap();
    assert_eq!(m["previous"]["key"], first_full.as_str());
}

/// `verify` on a folder with the history file: a clean chain passes, and each tampering is named.
#[tokio::test]
async fn verify_proves_a_chain_in_a_folder_and_names_each_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirectoryStore::new(dir.path().join("out"));
    let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
    let empty = SqliteHistory::open(&dir.path().join("empty.db"), "test-host").unwrap();
    let events = JsonlEventLog::new(dir.path().join("events.jsonl"));
    let chain = sluice_testkit::verify::make_chain(dir.path(), &store, &history, &events).await;
    sluice_testkit::verify::check_verify(&store, &history, &empty, &chain).await;
}

/// A row stamped inside a committed window after that run exported it is in no run: the next
/// run counts the window again and reports it (event, manifest, run record, status).
#[tokio::test]
async fn a_late_row_in_a_committed_window_is_counted_and_reported_by_the_next_run() {
    let env = Env::new("{ strategy = \"timestamp\", column = \"updated_at\", lag = \"0s\" }");
    let db = env.db();
    insert_contacts(&db, 1, 3, &stamp(env.now() - Duration::seconds(60)));
    let first = env.run().await;
    assert!(first.tables[0].late_rows.is_none());
    // A writer whose stamp lagged its commit: inside the window the first run exported.
    insert_contacts(&db, 50, 2, &stamp(env.now() - Duration::seconds(30)));
    insert_contacts(&db, 60, 1, &stamp(env.now()));
    env.advance(1000);
    let second = env.run().await;
    let late = second.tables[0].late_rows.clone().expect("late rows reported");
    assert_eq!((late.rows, late.run_id.as_str()), (2, first.run_id.as_str()));
    assert_eq!(second.tables[0].rows, 1, "the late rows are not in this run's window");
    let key = second.tables[0].manifest_key.clone().unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(env.out().join(&key)).unwrap()).unwrap();
    assert_eq!(m["late_rows"]["rows"], 2, "{m}");
    let runs = env.history.runs("contacts", 1).await.unwrap();
    assert_eq!(runs[0].late_rows, 2);
    let events = std::fs::read_to_string(env.dir.path().join("events.jsonl")).unwrap();
    assert!(events.lines().last().unwrap().contains("\"late_rows\""), "{events}");
    // Counted once: the next run compares with the second run's window, which has none.
    env.advance(1000);
    insert_contacts(&db, 70, 1, &stamp(env.now()));
    env.advance(1000);
    assert!(env.run().await.tables[0].late_rows.is_none());
}
