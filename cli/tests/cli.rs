//! The `sluice` binary as users and schedulers run it: exit codes, messages, and what is left
//! on disk and in the history after runs that are killed, collide, or meet bad input.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_testkit::{committed_rows, contacts_config, create_contacts, insert_contacts, stray_files};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const FULL_CSV: &str = "{ compression = \"none\", max_file_size = \"256KiB\" }";
const INCREMENTAL: &str = "{ strategy = \"timestamp\", column = \"updated_at\" }";

fn sluice(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config").arg(config).args(args).env_remove("SLUICE_CONFIG").env_remove("SLUICE_HISTORY");
    c
}

fn run_ok(config: &Path, args: &[&str]) -> Output {
    let out = sluice(config, args).output().unwrap();
    assert!(out.status.success(), "sluice {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn status_json(config: &Path) -> serde_json::Value {
    serde_json::from_slice(&run_ok(config, &["status", "--json"]).stdout).unwrap()
}

fn watermark(config: &Path) -> serde_json::Value {
    status_json(config)[0]["tables"][0]["watermark"].clone()
}

/// A workspace with a contacts table of `rows` rows stamped in the past.
fn workspace(rows: i64, incremental: &str, format: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let conn = create_contacts(&dir.path().join("source.db"));
    insert_contacts(&conn, 1, rows, "2025-06-01 00:00:00");
    let config = contacts_config(dir.path(), incremental, format);
    (dir, config)
}

fn ids(out: &Path) -> Vec<i64> {
    let mut ids: Vec<i64> = committed_rows(out).iter().map(|r| r[0].as_deref().unwrap().parse().unwrap()).collect();
    ids.sort();
    ids
}

fn manifests(out: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.file_name() == "manifest.json" {
                found.push(e.path());
            }
        }
    }
    found
}

fn kill(child: &mut Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
}

#[test]
fn demo_exports_then_exports_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("d");
    let out = Command::new(BIN).args(["demo", "--dir"]).arg(&demo).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4,000 rows") && text.contains("(5 rows"), "{text}");
    // Running it again replaces the earlier demo and gives the same result.
    let again = Command::new(BIN).args(["demo", "--dir"]).arg(&demo).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    let rows = committed_rows(&demo.join("exports"));
    assert_eq!(rows.len(), 4005);
}

/// The simplest config the docs show, over a table whose stamps SQLite writes itself in whole
/// seconds, with runs between the inserts: once the lag has passed, every row is exported once.
/// (With the bound in milliseconds and no lag, none of the five inserted rows ever was.)
#[test]
fn rows_stamped_in_whole_seconds_are_all_exported_once_at_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, updated_at TEXT NOT NULL);
         INSERT INTO t(v, updated_at) VALUES ('a', strftime('%Y-%m-%d %H:%M:%S', 'now', '-1 minute'));",
    )
    .unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        "version = 1\nhistory = \"history.db\"\n\n[sources.db]\nkind = \"sqlite\"\npath = \"t.db\"\n\n\
         [[export]]\nname = \"t\"\nsource = \"db\"\ndestination = \"out\"\n\n\
         [[export.table]]\nname = \"t\"\nincremental = { strategy = \"timestamp\", column = \"updated_at\" }\n",
    )
    .unwrap();
    for i in 1..=5 {
        run_ok(&config, &["run"]);
        db.execute("INSERT INTO t(v, updated_at) VALUES (?1, strftime('%Y-%m-%d %H:%M:%S', 'now'))", [format!("r{i}")])
            .unwrap();
        std::thread::sleep(Duration::from_millis(1200));
    }
    // The default lag (5 s) and the second in progress, with a margin.
    std::thread::sleep(Duration::from_millis(6500));
    run_ok(&config, &["run"]);
    assert_eq!(ids(&dir.path().join("out")), [1, 2, 3, 4, 5, 6]);
    // And at the defaults the six committed manifests form one chain, newest to first, each
    // link naming the manifest before by key and by the hash of its bytes.
    assert_eq!(chain(&dir.path().join("out"), "t/t"), 6);
}

/// Walks a table's manifest chain from its newest manifest (the one no other links to) back to
/// its first, checking each link's hash; returns how many manifests it visited, which must be
/// all of the table's.
fn chain(out: &Path, table: &str) -> usize {
    use sha2::{Digest, Sha256};
    let mut manifests = std::collections::BTreeMap::new();
    for run in std::fs::read_dir(out.join(table)).unwrap() {
        let key = format!("{table}/{}/manifest.json", run.unwrap().file_name().to_string_lossy());
        if let Ok(bytes) = std::fs::read(out.join(&key)) {
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            manifests.insert(key, (hex::encode(Sha256::digest(&bytes)), json));
        }
    }
    let linked: Vec<String> =
        manifests.values().filter_map(|(_, m)| m["previous"]["key"].as_str().map(str::to_string)).collect();
    let heads: Vec<&String> = manifests.keys().filter(|k| !linked.contains(k)).collect();
    assert_eq!(heads.len(), 1, "one newest manifest, no fork: {heads:?}");
    let (mut key, mut visited) = (heads[0].clone(), 0);
    loop {
        let (_, m) = &manifests[&key];
        visited += 1;
        let Some(prev) = m["previous"]["key"].as_str() else { break };
        assert_eq!(m["previous"]["sha256"].as_str(), Some(manifests[prev].0.as_str()), "{key} links {prev} by hash");
        key = prev.to_string();
    }
    assert_eq!(visited, manifests.len(), "every committed manifest is in the chain");
    visited
}

/// Ctrl-C (and SIGTERM) stop a run cleanly: it stops reading, aborts its parts, records the
/// table's run as failed ("interrupted"), gives the lease back and exits 130 (143), leaving the
/// watermark where it was. A second signal exits at once.
#[test]
fn an_interrupted_run_stops_cleanly_records_why_and_releases_its_lease() {
    let (dir, config) = workspace(300_000, INCREMENTAL, FULL_CSV);
    let out = dir.path().join("out");
    let leases = || -> i64 {
        let h = rusqlite::Connection::open(dir.path().join("history.db")).unwrap();
        h.query_row("SELECT count(*) FROM leases", [], |r| r.get(0)).unwrap()
    };
    run_ok(&config, &["run"]);
    let mut interrupted = Vec::new();
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        // A full refresh reads the whole table, so there is a read under way to interrupt.
        for delay_ms in [150u64, 80, 250, 40, 120] {
            let before = watermark(&config);
            let mut child = sluice(&config, &["run", "--full-refresh"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let sent = Instant::now();
            unsafe { libc::kill(child.id() as i32, signal) };
            let status = child.wait().unwrap();
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            // Finished before the signal, or killed before the handler was installed: nothing
            // to check here.
            if matches!(status.code(), Some(0) | None) {
                continue;
            }
            assert_eq!(status.code(), Some(code), "{err}");
            assert!(sent.elapsed() < Duration::from_secs(5), "stopped within a bound");
            assert!(err.contains("interrupted"), "{err}");
            assert_eq!(leases(), 0, "the lease is given back");
            assert_eq!(watermark(&config), before, "nothing committed");
            assert!(stray_files(&out).is_empty(), "left behind: {:?}", stray_files(&out));
            let history = String::from_utf8(run_ok(&config, &["history", "contacts", "--json"]).stdout).unwrap();
            assert!(!history.contains("\"running\""), "{history}");
            assert!(history.contains("interrupted (SIG"), "{history}");
            interrupted.push(code);
            break;
        }
    }
    assert_eq!(interrupted, [130, 143], "a run was interrupted mid-way by each signal");

    // A second signal exits at once, leaving what a killed run leaves for the next run.
    let mut child =
        sluice(&config, &["run", "--full-refresh"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(5));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(matches!(status.code(), Some(0) | Some(130) | None), "{status:?}");
    run_ok(&config, &["run"]);
    assert!(stray_files(&out).is_empty(), "left behind: {:?}", stray_files(&out));
}

#[test]
fn demo_refuses_a_folder_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep").unwrap();
    let out = Command::new(BIN).args(["demo", "--dir"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a sluice demo folder"));
    assert!(dir.path().join("precious.txt").exists());
}

#[test]
fn killed_runs_leave_no_manifest_and_no_watermark_change_and_the_next_run_exports_the_window() {
    let (dir, config) = workspace(120_000, INCREMENTAL, FULL_CSV);
    let out = dir.path().join("out");
    let db = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    let mut next = 120_001;
    let mut committed_kills = 0;
    for delay_ms in [5u64, 40, 90, 160, 260, 400, 700] {
        let before = watermark(&config);
        let manifests_before = manifests(&out).len();
        let mut child = sluice(&config, &["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill(&mut child);
        let after = watermark(&config);
        let new_manifests = manifests(&out).len() - manifests_before;
        // Either nothing was committed, or the manifest (the commit point) exists and the
        // history catches up on the next run; never a watermark without its manifest.
        assert!(new_manifests <= 1, "at most the killed run's manifest");
        if new_manifests == 1 {
            committed_kills += 1;
        }
        // A watermark only ever moves to the window's upper bound of a manifest on disk (the
        // killed run's, or an earlier killed run's that this one committed on start).
        if after != before {
            let highs: Vec<serde_json::Value> = manifests(&out)
                .iter()
                .map(|m| {
                    serde_json::from_slice::<serde_json::Value>(&std::fs::read(m).unwrap()).unwrap()["window"]["high"]
                        .clone()
                })
                .collect();
            assert!(highs.contains(&after), "watermark {after} has no manifest (killed after {delay_ms} ms)");
        }
        // More rows arrive between attempts, stamped when written (as an application would;
        // a stamp older than a committed watermark is a late commit, which only `lag` covers).
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3f").to_string();
        insert_contacts(&db, next, 5_000, &now);
        next += 5_000;
    }
    // Past the default lag (5 s) and the second in progress, the last rows are in a window.
    std::thread::sleep(Duration::from_millis(6_500));
    run_ok(&config, &["run"]);
    let all = ids(&out);
    assert_eq!(all.len() as i64, next - 1, "every row exactly once ({committed_kills} kills had committed)");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "no row twice");
    assert!(stray_files(&out).is_empty(), "left behind: {:?}", stray_files(&out));
    let history = String::from_utf8(run_ok(&config, &["history", "contacts", "--json"]).stdout).unwrap();
    assert!(!history.contains("\"running\""), "every interrupted run is settled");
}

#[test]
fn two_runs_at_once_one_runs_and_the_other_exits_3_naming_the_holder() {
    let (_dir, config) = workspace(200_000, INCREMENTAL, FULL_CSV);
    let mut first = sluice(&config, &["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    let holder = loop {
        let s = status_json(&config);
        if let Some(h) = s[0]["running"].as_str() {
            break h.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the first run never took the lease");
        std::thread::sleep(Duration::from_millis(10));
    };
    let second = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    let msg = stderr(&second);
    assert!(msg.contains("already running") && msg.contains(&holder), "{msg}");
    assert!(first.wait().unwrap().success());
}

#[test]
fn a_missing_table_or_column_is_a_clear_error_and_commits_nothing() {
    let (dir, config) = workspace(10, INCREMENTAL, FULL_CSV);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("name = \"contacts\"\nincremental", "name = \"contact\"\nincremental"))
        .unwrap();
    let out = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("table contact not found") && stderr(&out).contains("tables there: contacts"),
        "{}",
        stderr(&out)
    );

    std::fs::write(&config, text.replace("incremental = ", "columns = [\"id\", \"emial\"]\nincremental = ")).unwrap();
    let out = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("column \"emial\" not found; the table has: id, email"), "{}", stderr(&out));
    assert!(manifests(&dir.path().join("out")).is_empty());
    assert!(watermark(&config).is_null());
    let s = status_json(&config);
    assert_eq!(s[0]["tables"][0]["last_result"], "failed");
    assert!(s[0]["tables"][0]["last_error"].as_str().unwrap().contains("emial"), "{s}");
}

#[test]
fn an_unreadable_database_is_a_clear_error() {
    let (dir, config) = workspace(1, INCREMENTAL, FULL_CSV);
    std::fs::write(dir.path().join("source.db"), b"this is not a database, it is a text file").unwrap();
    let out = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = stderr(&out);
    assert!(
        msg.contains("cannot open SQLite database") && msg.contains("source.db") && msg.contains("not a database"),
        "{msg}"
    );
    std::fs::remove_file(dir.path().join("source.db")).unwrap();
    let out = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("check the source's path"), "{}", stderr(&out));
    assert!(!dir.path().join("source.db").exists(), "a missing database is not created");
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Mount(PathBuf);
impl Mount {
    fn new(path: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(path).status().unwrap();
        assert!(ok.success(), "mounting a test tmpfs needs root (tests run as root here and in CI)");
        Mount(path.to_path_buf())
    }
}
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_or_read_only_destination_fails_cleanly_and_commits_nothing() {
    let (dir, config) = workspace(20_000, INCREMENTAL, FULL_CSV);
    let out_dir = dir.path().join("out");

    let full = Mount::new(&out_dir, "size=128k");
    let out = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("No space left on device"), "{}", stderr(&out));
    assert!(watermark(&config).is_null());
    assert!(std::fs::read_dir(&out_dir).unwrap().all(|e| e.unwrap().path().is_dir()), "no file left behind");
    drop(full);

    let _ro = Mount::new(&out_dir, "size=1m,ro");
    let out = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Read-only file system"), "{}", stderr(&out));
    assert!(watermark(&config).is_null());
    let history = String::from_utf8(run_ok(&config, &["history", "contacts", "--json"]).stdout).unwrap();
    assert!(history.contains("\"failed\""), "{history}");
}

#[test]
fn a_bad_config_exits_2_naming_the_key() {
    let (_dir, config) =
        workspace(1, "{ strategy = \"timestamp\", column = \"updated_at\", lag = \"soon\" }", FULL_CSV);
    let out = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("export.contacts.table.contacts.incremental.lag: invalid duration \"soon\""),
        "{}",
        stderr(&out)
    );
    let out = sluice(&config, &["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let missing = sluice(Path::new("/nonexistent/sluice.toml"), &["status"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read config file"), "{}", stderr(&missing));

    // A quoted version is named as such (not "expected u32").
    let text = std::fs::read_to_string(&config).unwrap().replace("version = 1", "version = \"1\"");
    std::fs::write(&config, text).unwrap();
    let quoted = sluice(&config, &["validate"]).output().unwrap();
    assert_eq!(quoted.status.code(), Some(2));
    let why = stderr(&quoted);
    assert!(why.contains("version: \"1\" is not a version number") && why.contains("without quotes"), "{why}");
}

#[test]
fn an_unknown_export_exits_2_listing_the_known_ones() {
    let (_dir, config) = workspace(1, INCREMENTAL, FULL_CSV);
    let out = sluice(&config, &["run", "--export", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no export named \"nope\"; the file defines: contacts"), "{}", stderr(&out));
}

#[test]
fn naming_a_table_the_export_lacks_exits_2_before_anything_runs() {
    let (dir, config) = workspace(3, INCREMENTAL, FULL_CSV);
    let out = sluice(&config, &["run", "--table", "orders"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("has no table \"orders\"; its tables: contacts"), "{}", stderr(&out));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_watermark_whose_type_changed_is_a_clear_error_not_a_silent_stall() {
    let (dir, config) = workspace(3, INCREMENTAL, FULL_CSV);
    run_ok(&config, &["run"]);
    let db = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    // The application moves to epoch seconds in an INTEGER column.
    db.execute_batch(
        "DROP TABLE contacts;
         CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, version INTEGER NOT NULL, updated_at INTEGER);
         INSERT INTO contacts VALUES (1, 'a@example.com', NULL, 2, 1700000000);",
    )
    .unwrap();
    let out = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    // The manifest's columns name the change first (schema drift), with the same way out.
    let why = stderr(&out);
    assert!(
        why.contains("column \"updated_at\" retyped from TEXT to INTEGER") && why.contains("--full-refresh"),
        "{why}"
    );
    run_ok(&config, &["run", "--full-refresh"]);
    assert_eq!(watermark(&config)["type"], "int");
}

#[test]
fn plan_shows_the_window_the_bound_sql_and_the_row_count_without_exporting() {
    let (dir, config) = workspace(42, INCREMENTAL, FULL_CSV);
    let out = run_ok(&config, &["plan"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SELECT \"id\", \"email\", \"name\", \"version\", \"updated_at\" FROM \"contacts\" WHERE \"updated_at\" <= ?"), "{text}");
    assert!(text.contains("rows:      42"), "{text}");
    assert!(!dir.path().join("out").exists());

    run_ok(&config, &["run"]);
    // A second later the bound (whole milliseconds: the table's stamps) has moved on.
    std::thread::sleep(Duration::from_millis(1_100));
    let plan: serde_json::Value = serde_json::from_slice(&run_ok(&config, &["plan", "--json"]).stdout).unwrap();
    assert_eq!(plan[0]["rows"], 0);
    assert_eq!(plan[0]["params"].as_array().unwrap().len(), 2, "low and high are bound");
}

#[test]
fn status_and_history_report_runs_rows_and_watermarks() {
    let (_dir, config) = workspace(7, INCREMENTAL, FULL_CSV);
    let run: serde_json::Value = serde_json::from_slice(&run_ok(&config, &["run", "--json"]).stdout).unwrap();
    assert_eq!(run[0]["rows"], 7);
    assert_eq!(run[0]["succeeded"], true);
    let s = status_json(&config);
    assert_eq!(s[0]["tables"][0]["rows"], 7);
    assert_eq!(s[0]["tables"][0]["last_result"], "succeeded");
    assert_eq!(s[0]["tables"][0]["watermark"]["type"], "text");
    let text = String::from_utf8(run_ok(&config, &["status"]).stdout).unwrap();
    assert!(text.starts_with("EXPORT") && text.contains("contacts"), "{text}");
    let h = String::from_utf8(run_ok(&config, &["history", "contacts"]).stdout).unwrap();
    assert!(h.contains("succeeded"), "{h}");
}

#[test]
fn every_command_has_help() {
    for cmd in ["run", "plan", "status", "history", "validate", "demo"] {
        let out = Command::new(BIN).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: sluice"), "{cmd}");
    }
}

/// Twenty incremental runs at the default config, then the history file is lost: the next run
/// refuses to start over (it would export every row again beside the copies already there) and
/// names the two ways on; `history rebuild` restores every watermark exactly from the verified
/// manifests, and the run after it exports only the new rows, so no row is lost or doubled.
#[test]
fn a_lost_history_is_refused_then_rebuilt_from_the_files_and_nothing_is_lost_or_doubled() {
    let (dir, config) = workspace(50, INCREMENTAL, FULL_CSV);
    let out = dir.path().join("out");
    let db = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    for i in 0..20 {
        run_ok(&config, &["run"]);
        // Rows stamped just after the committed bound: the next run's window holds them.
        let bound = watermark(&config)["value"].as_str().unwrap().to_string();
        let next = chrono::NaiveDateTime::parse_from_str(&bound, "%Y-%m-%d %H:%M:%S%.3f").unwrap()
            + chrono::Duration::milliseconds(1);
        let first = 1000 + i * 3;
        insert_contacts(&db, first, 3, &next.format("%Y-%m-%d %H:%M:%S%.3f").to_string());
        if i == 9 {
            // A backup of the history after run 10 (no process has it open between commands).
            for f in ["history.db", "history.db-wal", "history.db-shm"] {
                if let Ok(bytes) = std::fs::read(dir.path().join(f)) {
                    std::fs::write(dir.path().join(format!("backup-{f}")), bytes).unwrap();
                }
            }
        }
    }
    // A backfill too: the rebuilt history records it and leaves the cursor where the chain has it.
    run_ok(
        &config,
        &["backfill", "contacts", "-t", "contacts", "--from", "2025-05-31 00:00:00", "--to", "2025-06-01 00:00:00"],
    );
    let original = watermark(&config);
    assert_eq!(manifests(&out).len(), 21);

    for f in ["history.db", "history.db-wal", "history.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    let refused = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let why = stderr(&refused);
    assert!(why.contains("the history has no record of this table"), "{why}");
    assert!(why.contains("sluice history rebuild contacts") && why.contains("--full-refresh"), "{why}");
    assert_eq!(manifests(&out).len(), 21, "the refused run wrote nothing");

    // A consumer's view of the files alone proves them, history or not.
    let copy = sluice(&config, &["verify", "--at"]).arg(&out).output().unwrap();
    assert!(copy.status.success(), "{}{}", String::from_utf8_lossy(&copy.stdout), stderr(&copy));

    let rebuilt = run_ok(&config, &["history", "rebuild", "contacts"]);
    assert!(String::from_utf8_lossy(&rebuilt.stdout).contains("rebuilt"), "{rebuilt:?}");
    assert_eq!(watermark(&config), original, "the rebuilt watermark is the one the runs committed");
    // Rebuilding again records nothing: every run is known.
    let again: serde_json::Value =
        serde_json::from_slice(&run_ok(&config, &["history", "rebuild", "contacts", "--json"]).stdout).unwrap();
    assert_eq!((again[0]["runs"].as_u64(), again[0]["kept"].as_u64()), (Some(0), Some(21)), "{again}");
    // A history restored from a backup taken after run 10 (behind the files): the rebuild
    // catches it up to the same watermark.
    for f in ["history.db", "history.db-wal", "history.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
        if let Ok(bytes) = std::fs::read(dir.path().join(format!("backup-{f}"))) {
            std::fs::write(dir.path().join(f), bytes).unwrap();
        }
    }
    let known: serde_json::Value =
        serde_json::from_slice(&run_ok(&config, &["history", "contacts", "--json", "--limit", "100"]).stdout).unwrap();
    assert_eq!(known.as_array().unwrap().len(), 10, "the backup knows ten runs: {known}");
    let caught: serde_json::Value =
        serde_json::from_slice(&run_ok(&config, &["history", "rebuild", "contacts", "--json"]).stdout).unwrap();
    assert_eq!((caught[0]["runs"].as_u64(), caught[0]["kept"].as_u64()), (Some(11), Some(10)), "{caught}");
    assert_eq!(watermark(&config), original, "caught up to the runs' watermark");
    let verified = run_ok(&config, &["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report[0]["tables"][0]["runs"], 20, "{report}");
    assert_eq!(report[0]["findings"], serde_json::json!([]), "the rebuilt history agrees with the files");

    // A second later the bound (whole seconds, as the rows' stamps) has moved past new rows.
    std::thread::sleep(Duration::from_millis(1100));
    run_ok(&config, &["run"]);
    // Every row up to the committed bound, once (rows above it wait for the lag to pass), and
    // the backfill's 50 again.
    let bound = watermark(&config)["value"].as_str().unwrap().to_string();
    let mut due: Vec<i64> = db
        .prepare("SELECT id FROM contacts WHERE updated_at <= ?1")
        .unwrap()
        .query_map([&bound], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    due.extend(1..=50);
    due.sort();
    assert!(due.len() > 100, "the runs exported new rows: {due:?}");
    assert_eq!(ids(&out), due, "every row once, and the backfilled ones once more");
    assert_eq!(chain(&out, "contacts/contacts"), 21);
}

/// `verify` names what was tampered with and exits 1; the consumer's mode reads no config.
#[test]
fn verify_exits_1_naming_a_changed_part_and_reads_a_copy_without_a_config() {
    let (dir, config) = workspace(30, INCREMENTAL, FULL_CSV);
    let out = dir.path().join("out");
    run_ok(&config, &["run"]);
    let clean = run_ok(&config, &["verify"]);
    assert!(String::from_utf8_lossy(&clean.stdout).contains("every chain verified"), "{clean:?}");
    let part = manifests(&out)[0].with_file_name("part-00000.csv");
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&part, bytes).unwrap();
    let bad = sluice(&config, &["verify"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("part-00000.csv") && text.contains("its bytes changed after the run"), "{text}");
    // A copy elsewhere, verified by whoever received it: no config file there.
    let copy = Command::new(BIN).current_dir(dir.path()).args(["verify", "--at", "out"]).output().unwrap();
    assert_eq!(copy.status.code(), Some(1), "{}", stderr(&copy));
    let missing = Command::new(BIN).args(["verify", "--at"]).arg(dir.path().join("nothing")).output().unwrap();
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("there is no folder"), "{}", stderr(&missing));
    let nowhere = Command::new(BIN).args(["verify", "--at", "ftp://host/x"]).output().unwrap();
    assert_eq!(nowhere.status.code(), Some(2), "{}", stderr(&nowhere));
    assert!(stderr(&nowhere).contains("cannot open \"ftp://host/x\""), "{}", stderr(&nowhere));
}

/// A late row found by the next run, cured by rewinding the cursor: the move is refused where
/// it would lose rows or cannot be done, recorded in the chain, and a run killed after it loses
/// nothing: every row after the rewound cursor is exported once more, the late one for the
/// first time.
#[test]
fn a_late_row_is_reported_then_a_rewind_exports_it_and_a_killed_run_after_it_loses_nothing() {
    let (dir, config) = workspace(60_000, INCREMENTAL, FULL_CSV);
    let out = dir.path().join("out");
    run_ok(&config, &["run"]);
    let db = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    // Committed with a stamp inside the window the first run already exported.
    insert_contacts(&db, 900_000, 1, "2025-06-01 00:00:00");
    run_ok(&config, &["run"]);
    assert_eq!(status_json(&config)[0]["tables"][0]["late_rows"], 1, "the next run counts it");
    assert!(!ids(&out).contains(&900_000));

    let show: serde_json::Value =
        serde_json::from_slice(&run_ok(&config, &["state", "show", "contacts", "--json"]).stdout).unwrap();
    let cursor = show[0]["cursor"]["value"].as_str().unwrap().to_string();
    // Forward without --skip would lose rows; the first run has no start to go back to.
    let forward = sluice(&config, &["state", "set", "contacts", "-t", "contacts", "--to", "2099-01-01 00:00:00"])
        .output()
        .unwrap();
    assert_eq!(forward.status.code(), Some(2), "{}", stderr(&forward));
    assert!(stderr(&forward).contains("--skip"), "{}", stderr(&forward));
    let first_run = show[0]["committed_by"].as_str().unwrap().to_string();
    let history: serde_json::Value =
        serde_json::from_slice(&run_ok(&config, &["history", "contacts", "--json"]).stdout).unwrap();
    let oldest = history.as_array().unwrap().last().unwrap()["run_id"].as_str().unwrap().to_string();
    let to_first =
        sluice(&config, &["state", "rewind", "contacts", "-t", "contacts", "--to-run", &oldest]).output().unwrap();
    assert_eq!(to_first.status.code(), Some(2), "{}", stderr(&to_first));
    assert!(stderr(&to_first).contains("--full-refresh"), "{}", stderr(&to_first));
    assert_ne!(first_run, "");

    let moved = run_ok(
        &config,
        &["state", "rewind", "contacts", "-t", "contacts", "--to", "2025-05-31 23:59:59", "--reason", "late row"],
    );
    assert!(
        String::from_utf8_lossy(&moved.stdout).contains(&format!("from {cursor} to 2025-05-31 23:59:59")),
        "{moved:?}"
    );
    // A run killed part way, then one that finishes.
    let mut child = sluice(&config, &["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(120));
    kill(&mut child);
    run_ok(&config, &["run"]);
    let mut seen = std::collections::BTreeMap::new();
    for id in ids(&out) {
        *seen.entry(id).or_insert(0) += 1;
    }
    assert_eq!(seen.get(&900_000), Some(&1), "the late row, exported once");
    assert!((1..=60_000).all(|id| seen.get(&id) == Some(&2)), "every other row once before the rewind and once after");
    // The move is in the chain: verify proves it, with a notice naming who moved it and why.
    let verified = run_ok(&config, &["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    let moved: Vec<&serde_json::Value> =
        report[0]["findings"].as_array().unwrap().iter().filter(|f| f["kind"] == "cursor_moved").collect();
    assert_eq!(moved.len(), 1, "{report}");
    assert!(moved[0]["problem"].as_str().unwrap().contains("(late row)"), "{report}");
    assert_eq!(report[0]["tables"][0]["violations"], 0, "{report}");
}

/// `sluice backfill` exports a bounded window into the table's backfills/ folder, marked, with
/// the cursor left where it was, also when a backfill is killed part way (the next command
/// settles it without moving the cursor); `verify` checks backfills outside the chain.
#[test]
fn a_backfill_exports_its_window_outside_the_chain_and_a_killed_one_leaves_the_cursor_alone() {
    let (dir, config) = workspace(150_000, INCREMENTAL, FULL_CSV);
    let out = dir.path().join("out");
    run_ok(&config, &["run"]);
    let before = watermark(&config);
    let window =
        ["backfill", "contacts", "-t", "contacts", "--from", "2025-05-31 00:00:00", "--to", "2025-06-01 00:00:00"];
    let mut child = sluice(&config, &window).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    kill(&mut child);
    assert_eq!(watermark(&config), before, "a killed backfill leaves the cursor");
    let done = run_ok(&config, &[&window[..], &["--reason", "audit", "--json"]].concat());
    let summary: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    let table = &summary[0]["tables"][0];
    assert_eq!((table["rows"].as_u64(), table["backfill"].as_bool()), (Some(150_000), Some(true)), "{summary}");
    assert_eq!(watermark(&config), before, "a backfill leaves the cursor");
    let backfills: Vec<serde_json::Value> = manifests(&out)
        .iter()
        .filter(|m| m.to_string_lossy().contains("/backfills/"))
        .map(|m| serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap())
        .collect();
    assert!(
        !backfills.is_empty()
            && backfills.iter().all(|m| m["totals"]["rows"] == 150_000 && m["backfill"]["by"].is_string())
    );
    // Past the cursor is the next run's.
    let past =
        sluice(&config, &["backfill", "contacts", "-t", "contacts", "--from", "2025-01-01", "--to", "2099-01-01"])
            .output()
            .unwrap();
    assert_eq!(past.status.code(), Some(1), "{}", stderr(&past));
    assert!(stderr(&past).contains("after the cursor"), "{}", stderr(&past));
    run_ok(&config, &["run"]);
    let verified: serde_json::Value = serde_json::from_slice(&run_ok(&config, &["verify", "--json"]).stdout).unwrap();
    assert_eq!(verified[0]["findings"], serde_json::json!([]), "{verified}");
    assert_eq!(verified[0]["tables"][0]["backfills"].as_u64(), Some(backfills.len() as u64), "{verified}");
}

/// Piped into a reader that stops early (`| head`), a command ends quietly: no panic, no
/// backtrace.
#[test]
fn output_piped_into_a_reader_that_stops_early_ends_quietly() {
    let (_dir, config) = workspace(10, INCREMENTAL, FULL_CSV);
    for _ in 0..3 {
        run_ok(&config, &["run"]);
    }
    let mut child = sluice(&config, &["history", "contacts", "--limit", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert_ne!(out.status.code(), Some(101), "no panic: {err}");
}

/// A run of one row in one part says so in the singular.
#[test]
fn a_one_row_run_says_1_row_and_1_part() {
    let (_dir, config) = workspace(1, INCREMENTAL, FULL_CSV);
    let out = run_ok(&config, &["run"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(1 row, 1 part, "), "{out:?}");
}

/// The demo makes its own config and history: the global options it would ignore are refused,
/// not silently dropped.
#[test]
fn demo_refuses_the_global_options_it_would_ignore() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--dir"])
        .arg(dir.path().join("d"))
        .args(["--config", "mine.toml", "--json"])
        .env_remove("SLUICE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--config, --json would be ignored"), "{}", stderr(&out));
    assert!(!dir.path().join("d").exists(), "nothing built");
    let help = Command::new(BIN).args(["demo", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("do not apply"));
}
