//! The Snowflake source against fakesnow (through the project's adapter): the real connector
//! logs in and runs real SQL; runs go through the real runner into a local folder and history.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sluice_core::ports::{HistoryStore, Secrets};
use sluice_core::run::{Ports, Quiet, Runner};
use sluice_core::spec::{Config, Kinds};
use sluice_core::value::Watermark;
use sluice_core::BoxError;
use sluice_local::{DirectoryStore, JsonlEventLog, SqliteHistory};
use sluice_snowflake::SnowflakeSource;
use sluice_testkit::fakesnow::{FakeSnow, CHUNK_ROWS, OAUTH_TOKEN, PASSPHRASE, PASSWORD};
use sluice_testkit::{committed_parts, committed_rows, stray_files};

/// Snowflake sources and folder destinations: what these tests' configs hold.
const KINDS: Kinds = Kinds { sources: &[&sluice_snowflake::SNOWFLAKE], destinations: &[&sluice_local::FOLDER] };

/// A secret store in memory: what Secrets Manager holds, without AWS.
struct MemorySecrets(HashMap<String, String>);

#[async_trait]
impl Secrets for MemorySecrets {
    async fn secret_string(&self, id: &str) -> Result<String, BoxError> {
        self.0.get(id).cloned().ok_or_else(|| format!("secret {id:?} not found").into())
    }
}

fn secrets(fs: &FakeSnow) -> MemorySecrets {
    let pem = |name: &str| std::fs::read_to_string(fs.key(name)).unwrap();
    MemorySecrets(HashMap::from([
        ("password".to_string(), serde_json::json!({ "password": PASSWORD }).to_string()),
        ("wrong-password".to_string(), serde_json::json!({ "password": "not-the-password" }).to_string()),
        ("key".to_string(), serde_json::json!({ "private_key": pem("key.p8") }).to_string()),
        (
            "encrypted-key".to_string(),
            serde_json::json!({ "private_key": pem("key_encrypted.p8"), "private_key_passphrase": PASSPHRASE })
                .to_string(),
        ),
        ("other-key".to_string(), serde_json::json!({ "private_key": pem("other.p8") }).to_string()),
        ("oauth".to_string(), serde_json::json!({ "token": OAUTH_TOKEN }).to_string()),
        ("wrong-oauth".to_string(), serde_json::json!({ "token": "expired-token" }).to_string()),
    ]))
}

struct Env {
    dir: tempfile::TempDir,
    config: Config,
    history: SqliteHistory,
    events: JsonlEventLog,
}

impl Env {
    /// A config with one Snowflake source (`auth`, `credentials`) and one export of `tables`.
    fn new(fs: &FakeSnow, db: &str, auth: &str, secret: &str, format: &str, tables: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"version = 1

[sources.wh]
kind = "snowflake"
account = "test"
user = "SLUICE"
database = "{db}"
schema = "PUBLIC"
auth = "{auth}"
credentials = "secretsmanager:{secret}"
endpoint = "{endpoint}"
stage = "@{db}.PUBLIC.EXPORTS"

[[export]]
name = "contacts"
source = "wh"
destination = "out"
format = {format}
{tables}
"#,
            endpoint = fs.endpoint
        );
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path, KINDS).unwrap();
        let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
        let events = JsonlEventLog::new(dir.path().join("events.jsonl"));
        Env { dir, config, history, events }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    async fn source(&self, fs: &FakeSnow) -> Result<SnowflakeSource, sluice_snowflake::SnowflakeError> {
        let spec =
            self.config.sources["wh"].settings_as::<sluice_snowflake::SnowflakeSpec>().expect("a snowflake source");
        SnowflakeSource::connect(spec, &secrets(fs)).await
    }

    async fn run(&self, fs: &FakeSnow) -> sluice_core::run::ExportRunSummary {
        self.run_until(fs, None).await
    }

    async fn run_until(
        &self,
        fs: &FakeSnow,
        stop_by: Option<std::time::Instant>,
    ) -> sluice_core::run::ExportRunSummary {
        let source = self.source(fs).await.unwrap();
        let store = DirectoryStore::new(self.out());
        let ports = Ports { source: &source, store: &store, history: &self.history, events: &self.events };
        let opts = sluice_core::run::RunOptions { stop_by, ..sluice_testkit::run_options() };
        Runner::new(ports, &Quiet).run(&self.config.exports[0], &opts).await.unwrap()
    }

    async fn watermark(&self, table: &str) -> Option<Watermark> {
        self.history.watermark("contacts", table).await.unwrap().map(|w| w.watermark)
    }
}

const CSV: &str = r#"{ compression = "none" }"#;

fn ids(out: &Path) -> Vec<i64> {
    committed_rows(out).iter().map(|r| r[0].as_deref().unwrap().parse().unwrap()).collect()
}

#[tokio::test]
async fn incremental_runs_over_a_changing_table_export_each_row_once() {
    let fs = FakeSnow::shared();
    let db = fs.database(
        "DB",
        &[
            "CREATE TABLE CONTACTS (ID NUMBER(38,0), NAME VARCHAR, UPDATED_AT TIMESTAMP_NTZ(9))",
            "INSERT INTO CONTACTS VALUES (1, 'a', '2024-01-01 00:00:01'), (2, 'b', '2024-01-01 00:00:02'), \
             (3, 'c', '2024-01-01 00:00:03')",
        ],
    );
    let tables = r#"
[[export.table]]
name = "CONTACTS"
incremental = { strategy = "timestamp", column = "UPDATED_AT", upper_bound = "max" }
"#;
    let env = Env::new(fs, &db, "password", "password", CSV, tables);

    // Tie-safe max: the newest stamp (row 3) waits for a later run.
    let first = env.run(fs).await;
    assert!(first.succeeded, "{:?}", first.error);
    assert_eq!(ids(&env.out()), [1, 2]);
    assert_eq!(env.watermark("CONTACTS").await, Some(Watermark::Text("2024-01-01T00:00:02.000000000".into())));

    fs.sql_in(
        &db,
        &[
            "INSERT INTO CONTACTS VALUES (4, 'd', '2024-01-01 00:00:04.5'), (5, 'e', '2024-01-01 00:00:06')",
            "UPDATE CONTACTS SET NAME = 'a2', UPDATED_AT = '2024-01-01 00:00:05' WHERE ID = 1",
        ],
    );
    let second = env.run(fs).await;
    assert!(second.succeeded, "{:?}", second.error);
    let mut all = ids(&env.out());
    all.sort();
    assert_eq!(all, [1, 1, 2, 3, 4], "row 1 again (changed), 3 and 4 once; 5 waits");

    // Nothing new: an empty window, a manifest with no parts, the watermark unchanged.
    let third = env.run(fs).await;
    assert!(third.succeeded);
    assert_eq!(third.rows, 0);
    assert_eq!(env.watermark("CONTACTS").await, Some(Watermark::Text("2024-01-01T00:00:05.000000000".into())));
    assert!(stray_files(&env.out()).is_empty());
}

#[tokio::test]
async fn every_type_renders_as_snowflake_unloads_it() {
    let fs = FakeSnow::shared();
    let db = fs.database(
        "DB",
        &[
            "CREATE TABLE T (ID NUMBER(38,0), AMOUNT NUMBER(10,2), RATIO FLOAT, ACTIVE BOOLEAN, DAY DATE, \
             AT_TIME TIME, NTZ TIMESTAMP_NTZ(9), LTZ TIMESTAMP_LTZ(9), TZ TIMESTAMP_TZ(9), DOC VARIANT, \
             BIN BINARY, NOTE VARCHAR)",
            "INSERT INTO T SELECT 1, 12.5, 1.25, TRUE, '2024-02-29', '13:14:15.5', '2024-02-29 13:14:15.123456', \
             '2024-02-29 13:14:15+00:00', '2024-02-29 13:14:15+00:00', PARSE_JSON('{\"a\": [1, \"x y\"]}'), \
             TO_BINARY('CAFE', 'HEX'), 'pipe|quote\"newline\nend'",
            "INSERT INTO T (ID, NOTE) VALUES (2, '')",
        ],
    );
    let tables = "[[export.table]]\nname = \"T\"\nincremental = { strategy = \"full\" }\n";
    let env = Env::new(fs, &db, "password", "password", CSV, tables);
    let s = env.run(fs).await;
    assert!(s.succeeded, "{:?}", s.error);

    let mut rows = committed_rows(&env.out());
    rows.sort();
    let some = |v: &str| Some(v.to_string());
    assert_eq!(
        rows[0],
        vec![
            some("1"),
            some("12.50"),
            some("1.25"),
            some("true"),
            some("2024-02-29"),
            some("13:14:15.500000000"),
            some("2024-02-29T13:14:15.123456000"),
            // fakesnow (DuckDB) keeps TIMESTAMP_LTZ as TIMESTAMP_TZ; the `Z` rendering of a real
            // LTZ column is covered by the render unit tests.
            some("2024-02-29T13:14:15.000000000+00:00"),
            some("2024-02-29T13:14:15.000000000+00:00"),
            some(r#"{"a":[1,"x y"]}"#),
            some("CAFE"),
            some("pipe|quote\"newline\nend"),
        ]
    );
    // NULLs stay NULL; the empty string stays an empty string (quoted in the file).
    assert_eq!(rows[1][0], some("2"));
    assert!(rows[1][1..11].iter().all(Option::is_none), "{:?}", rows[1]);
    assert_eq!(rows[1][11], some(""));

    let manifest = &committed_parts(&env.out())[0].manifest;
    let types: Vec<&str> =
        manifest["columns"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "NUMBER(38,0)",
            "NUMBER(10,2)",
            "FLOAT",
            "BOOLEAN",
            "DATE",
            "TIME(9)",
            "TIMESTAMP_NTZ(9)",
            "TIMESTAMP_TZ(9)", // LTZ, as fakesnow reports it
            "TIMESTAMP_TZ(9)",
            "VARIANT",
            "BINARY",
            "VARCHAR(16777216)"
        ]
    );
}

#[tokio::test]
async fn a_result_larger_than_a_chunk_streams_in_order_through_every_chunk() {
    let fs = FakeSnow::shared();
    let n = CHUNK_ROWS * 3 + 17;
    let insert = format!("INSERT INTO BIG SELECT range, 'row ' || range, '2024-01-01'::TIMESTAMP FROM range(0, {n})");
    let db = fs.database("DB", &["CREATE TABLE BIG (ID NUMBER(38,0), NAME VARCHAR, TS TIMESTAMP_NTZ)", &insert]);
    let tables =
        "[[export.table]]\nname = \"BIG\"\ncolumns = [\"ID\", \"NAME\"]\nincremental = { strategy = \"full\" }\n";
    let env = Env::new(fs, &db, "password", "password", r#"{ compression = "gzip", max_file_size = 20000 }"#, tables);
    let s = env.run(fs).await;
    assert!(s.succeeded, "{:?}", s.error);
    assert_eq!(s.rows, n as u64);
    assert!(s.parts > 1, "max_file_size splits the output");
    let mut got = ids(&env.out());
    got.sort();
    assert_eq!(got, (0..n as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_missing_table_or_column_is_a_clear_error_and_commits_nothing() {
    let fs = FakeSnow::shared();
    let db = fs.database("DB", &["CREATE TABLE THERE (ID NUMBER(38,0), UPDATED_AT TIMESTAMP_NTZ)"]);
    let missing_table = "[[export.table]]\nname = \"NOT_THERE\"\nincremental = { strategy = \"full\" }\n";
    let env = Env::new(fs, &db, "password", "password", CSV, missing_table);
    let s = env.run(fs).await;
    assert!(!s.succeeded);
    let err = s.tables[0].error.clone().unwrap();
    assert!(err.contains("NOT_THERE") && err.contains("does not exist"), "{err}");
    assert!(err.contains("grants"), "says what to check: {err}");

    let missing_column =
        "[[export.table]]\nname = \"THERE\"\nincremental = { strategy = \"timestamp\", column = \"CHANGED_AT\" }\n";
    let env = Env::new(fs, &db, "password", "password", CSV, missing_column);
    let s = env.run(fs).await;
    let err = s.tables[0].error.clone().unwrap();
    assert!(err.contains("CHANGED_AT") && err.contains("UPDATED_AT"), "names the column and the ones there: {err}");
    assert!(env.watermark("THERE").await.is_none());
    assert!(committed_parts(&env.out()).is_empty());
}

#[tokio::test]
async fn key_pair_and_oauth_logins_work() {
    let fs = FakeSnow::shared();
    let db = fs.database("DB", &["CREATE TABLE K (ID NUMBER(38,0))", "INSERT INTO K VALUES (7)"]);
    let tables = "[[export.table]]\nname = \"K\"\nincremental = { strategy = \"full\" }\n";
    for (auth, secret) in [("key_pair", "key"), ("key_pair", "encrypted-key"), ("oauth", "oauth")] {
        let env = Env::new(fs, &db, auth, secret, CSV, tables);
        let s = env.run(fs).await;
        assert!(s.succeeded, "{secret}: {:?}", s.error);
        assert_eq!(ids(&env.out()), [7]);
    }
}

#[tokio::test]
async fn wrong_credentials_are_refused_clearly_and_never_echoed() {
    let fs = FakeSnow::shared();
    let tables = "[[export.table]]\nname = \"K\"\nincremental = { strategy = \"full\" }\n";
    for (auth, secret) in [("password", "wrong-password"), ("key_pair", "other-key"), ("oauth", "wrong-oauth")] {
        let env = Env::new(fs, "ANY", auth, secret, CSV, tables);
        let err = env.source(fs).await.err().unwrap_or_else(|| panic!("{secret} logs in")).to_string();
        assert!(err.contains("refused the login of user \"SLUICE\""), "{err}");
        assert!(err.contains("secretsmanager:"), "says where the credentials came from: {err}");
        assert!(
            !err.contains("not-the-password") && !err.contains("PRIVATE KEY") && !err.contains("expired-token"),
            "no secret in: {err}"
        );
    }
    let env = Env::new(fs, "ANY", "password", "absent", CSV, tables);
    let err = env.source(fs).await.err().unwrap().to_string();
    assert!(err.contains("\"absent\"") && err.contains("not found"), "{err}");
}

#[tokio::test]
async fn unload_builds_the_manifest_and_history_from_detailed_output() {
    let fs = FakeSnow::shared();
    let db = fs.database(
        "DB",
        &[
            "CREATE TABLE U (ID NUMBER(38,0), UPDATED_AT TIMESTAMP_NTZ(9))",
            "INSERT INTO U VALUES (1, '2024-01-01 00:00:01'), (2, '2024-01-01 00:00:02'), (3, '2024-01-01 00:00:03')",
        ],
    );
    let tables = r#"
[[export.table]]
name = "U"
mode = "unload"
incremental = { strategy = "timestamp", column = "UPDATED_AT", upper_bound = "max" }
"#;
    let env = Env::new(fs, &db, "password", "password", r#"{ compression = "gzip", max_file_size = "16MiB" }"#, tables);
    // fakesnow cannot unload: the adapter answers the COPY with these files.
    fs.set_unload_result(&[("part_0_1_0.csv.gz", 120, 1), ("part_0_0_0.csv.gz", 250, 1)]);
    let s = env.run(fs).await;
    assert!(s.succeeded, "{:?}", s.error);
    assert_eq!((s.rows, s.bytes, s.parts), (2, 370, 2));

    let copy = fs.statements().into_iter().rev().find(|s| s.starts_with("COPY INTO")).unwrap();
    let prefix = s.tables[0].manifest_key.as_deref().unwrap().trim_end_matches("/manifest.json").to_string();
    assert!(
        copy.starts_with(&format!("COPY INTO @\"{db}\".\"PUBLIC\".\"EXPORTS\"/{prefix}/part FROM (SELECT")),
        "{copy}"
    );
    assert!(copy.contains("WHERE \"UPDATED_AT\" <= ?") && copy.contains("MAX_FILE_SIZE = 16777216"), "{copy}");
    assert!(copy.contains("HEADER = TRUE OVERWRITE = TRUE DETAILED_OUTPUT = TRUE"), "{copy}");

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.out().join(s.tables[0].manifest_key.as_deref().unwrap())).unwrap())
            .unwrap();
    let parts = manifest["parts"].as_array().unwrap();
    assert_eq!(parts[0]["key"], format!("{prefix}/part_0_0_0.csv.gz"));
    assert_eq!(parts[0]["rows"], 1);
    assert!(parts[0].get("sha256").is_none(), "Snowflake reports no checksum");
    assert_eq!(env.watermark("U").await, Some(Watermark::Text("2024-01-01T00:00:02.000000000".into())));

    // A COPY that fails (here: Snowflake cannot write the stage) commits nothing.
    fs.sql_in(&db, &["INSERT INTO U VALUES (4, '2024-01-01 00:00:04')"]);
    fs.fail_unload("003001", "SQL access control error: Insufficient privileges to operate on stage 'EXPORTS'");
    let failed = env.run(fs).await;
    assert!(!failed.succeeded);
    let err = failed.tables[0].error.clone().unwrap();
    assert!(err.contains("003001") && err.contains("Insufficient privileges"), "{err}");
    assert_eq!(env.watermark("U").await, Some(Watermark::Text("2024-01-01T00:00:02.000000000".into())));
    let manifests = std::fs::read_dir(env.out().join("contacts/u")).unwrap().count();
    assert_eq!(manifests, 1, "the failed run left no folder with a manifest");
}

#[tokio::test]
async fn a_read_past_the_deadline_is_cancelled_and_commits_nothing() {
    let fs = FakeSnow::shared();
    let db = fs.database("DB", &[
            "CREATE TABLE SLOW (ID NUMBER(38,0), UPDATED_AT TIMESTAMP_NTZ(9))",
            "INSERT INTO SLOW VALUES (1, '2024-01-01 00:00:01'), (2, '2024-01-01 00:00:02'), (3, '2024-01-01 00:00:03')",
        ],
    );
    let tables = r#"
[[export.table]]
name = "SLOW"
incremental = { strategy = "timestamp", column = "UPDATED_AT", upper_bound = "max" }
"#;
    let env = Env::new(fs, &db, "password", "password", CSV, tables);
    let aborts = fs.aborts();
    // The read (not the planning queries) hangs as on a resuming warehouse.
    fs.delay("SELECT \"ID\", \"UPDATED_AT\" FROM \"SLOW\"", 60.0);
    let started = std::time::Instant::now();
    let s = env.run_until(fs, Some(started + std::time::Duration::from_secs(3))).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "the run waited for the query");
    assert!(!s.succeeded);
    let err = s.tables[0].error.clone().unwrap();
    assert!(err.contains("deadline"), "{err}");
    assert!(env.watermark("SLOW").await.is_none());
    assert!(committed_parts(&env.out()).is_empty() && stray_files(&env.out()).is_empty());
    // The statement was cancelled, not left running in the warehouse.
    let waited = std::time::Instant::now();
    while fs.aborts() <= aborts {
        assert!(waited.elapsed() < std::time::Duration::from_secs(10), "no abort request reached Snowflake");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The `check` strategy over Snowflake: NUMBER keys sort as the warehouse orders them, and over
/// a seeded random sequence of inserts, updates of checked and unchecked columns, deletes and
/// re-inserts, the changes each run exports rebuild the table projected on key and checked
/// columns.
#[tokio::test]
async fn the_check_strategy_exports_what_changed_in_the_checked_columns() {
    let fs = FakeSnow::shared();
    let db = fs.database(
        "CHK",
        &["CREATE TABLE CONTACTS (ID NUMBER(38,0), EMAIL VARCHAR, STAGE VARCHAR, VISITS NUMBER(38,0))"],
    );
    let tables = r#"
[[export.table]]
name = "CONTACTS"
incremental = { strategy = "check", key = ["ID"], columns = ["EMAIL", "STAGE"], deletes = true }
"#;
    let env = Env::new(fs, &db, "password", "password", r#"{ compression = "gzip", max_file_size = 500 }"#, tables);
    type Rows = std::collections::BTreeMap<i64, (Option<String>, Option<String>)>;
    let (mut source, mut dest) = (Rows::new(), Rows::new());
    let mut applied = std::collections::BTreeMap::<String, usize>::new();
    let mut seed = 7u64;
    let mut below = |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let lit = |v: &Option<String>| v.as_ref().map_or("NULL".to_string(), |s| format!("'{s}'"));
    for step in 0..10 {
        let mut statements = Vec::new();
        for _ in 0..4 + below(12) {
            // Inserts take a free id (one deleted before included); changes take a present one.
            let op = below(5);
            let present: Vec<i64> = source.keys().copied().collect();
            let id = if op < 2 || present.is_empty() {
                1 + below(40) as i64
            } else {
                present[below(present.len() as u64) as usize]
            };
            let value = |b: u64, what: &str| match b {
                0 => None,
                1 => Some(String::new()),
                n => Some(format!("{what}{n}")),
            };
            match (op, source.contains_key(&id)) {
                (0 | 1, false) => {
                    let row = (value(below(4), "m"), value(below(4), "s"));
                    statements.push(format!("INSERT INTO CONTACTS VALUES ({id}, {}, {}, 0)", lit(&row.0), lit(&row.1)));
                    source.insert(id, row);
                }
                (2, true) => {
                    let stage = value(below(4), "s");
                    statements.push(format!("UPDATE CONTACTS SET STAGE = {} WHERE ID = {id}", lit(&stage)));
                    source.get_mut(&id).unwrap().1 = stage;
                }
                (3, true) if below(2) == 0 => {
                    let email = value(below(4), "m");
                    statements.push(format!("UPDATE CONTACTS SET EMAIL = {} WHERE ID = {id}", lit(&email)));
                    source.get_mut(&id).unwrap().0 = email;
                }
                (3, true) => statements.push(format!("UPDATE CONTACTS SET VISITS = VISITS + 1 WHERE ID = {id}")),
                (4, true) => {
                    statements.push(format!("DELETE FROM CONTACTS WHERE ID = {id}"));
                    source.remove(&id);
                }
                _ => {}
            }
        }
        let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
        if !refs.is_empty() {
            fs.sql_in(&db, &refs);
        }
        let s = env.run(fs).await;
        assert!(s.succeeded, "step {step}: {:?}", s.error);
        for part in committed_parts(&env.out()).into_iter().filter(|p| p.manifest["run_id"] == s.run_id) {
            let d = sluice_testkit::Dialect::reference();
            for r in sluice_testkit::read_csv(&part.bytes, &d).into_iter().skip(1) {
                let text = |i: usize| r[i].clone().map(|b| String::from_utf8(b).unwrap());
                let id: i64 = text(0).unwrap().parse().unwrap();
                *applied.entry(text(4).unwrap()).or_default() += 1;
                match text(4).unwrap().as_str() {
                    "insert" => assert!(dest.insert(id, (text(1), text(2))).is_none(), "step {step}: insert of {id}"),
                    "update" => assert!(dest.insert(id, (text(1), text(2))).is_some(), "step {step}: update of {id}"),
                    "delete" => assert!(dest.remove(&id).is_some(), "step {step}: delete of {id}"),
                    op => panic!("op {op}"),
                }
            }
        }
        assert_eq!(dest, source, "step {step}");
    }
    // The sequence exercised every kind of change.
    assert!(["insert", "update", "delete"].iter().all(|op| applied.get(*op).is_some_and(|n| *n >= 2)), "{applied:?}");
    assert!(stray_files(&env.out()).is_empty());
}

/// fakesnow (DuckDB) keeps every timestamp at scale 9, so a whole-second column's bound is
/// checked by `close_unit`'s unit test; here the real statement and the millisecond cut.
#[tokio::test]
async fn now_closes_at_the_last_millisecond_that_is_over() {
    use sluice_core::ports::Source as _;
    let fs = FakeSnow::shared();
    let db = fs.database(
        "DB",
        &[
            "CREATE TABLE NANOS (ID NUMBER(38,0), UPDATED_AT TIMESTAMP_NTZ(9))",
            "INSERT INTO NANOS VALUES (1, '2024-01-01 00:00:01')",
        ],
    );
    let tables = "[[export.table]]\nname = \"NANOS\"\nincremental = { strategy = \"full\" }\n";
    let env = Env::new(fs, &db, "password", "password", CSV, tables);
    let source = env.source(fs).await.unwrap();
    let expr = sluice_core::ports::WatermarkExpr { column: "UPDATED_AT".into(), fallback: None };
    let table = sluice_core::spec::TableName::parse("NANOS").unwrap();
    let before = chrono::Utc::now();
    let now = sluice_core::spec::UpperBound::Now { lag: std::time::Duration::ZERO };
    let w = source.upper_bound(&table, &expr, now).await.unwrap();
    let Some(Watermark::Text(bound)) = w else { panic!("a text bound, not {w:?}") };
    assert!(bound.ends_with("999999"), "{bound}");
    let at = chrono::NaiveDateTime::parse_from_str(&bound, "%Y-%m-%dT%H:%M:%S%.f").unwrap().and_utc();
    assert!((at - before).abs() < chrono::Duration::seconds(30), "{bound} against {before}");
}

#[tokio::test]
async fn the_snowflake_source_keeps_the_source_contract() {
    let fs = FakeSnow::shared();
    let db = fs.database("CONTRACT", sluice_testkit::source::FIXTURE);
    let tables = "[[export.table]]\nname = \"CONTRACT_ITEMS\"\nincremental = { strategy = \"full\" }\n";
    let env = Env::new(fs, &db, "password", "password", CSV, tables);
    let source = env.source(fs).await.unwrap();
    // Snowflake folds unquoted names to upper case: the table is named as it spells it.
    let table = sluice_core::value::TableName::parse("CONTRACT_ITEMS").unwrap();
    sluice_testkit::source::check_contract(&source, &table).await;
}
