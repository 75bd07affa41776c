//! The sluice command against fakesnow (behind the project's adapter), with the credentials in
//! the environment: check-connection, plan with an unloaded table, a run, and a refused login.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sluice_testkit::fakesnow::{FakeSnow, PASSWORD};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice(config: &Path, password: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("SLUICE_LOG", "warn")
        .env("WH_PASSWORD", password)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A database with a CONTACTS table, and a config exporting it (and a table that is unloaded).
fn workspace(fs: &FakeSnow, columns: &str) -> (tempfile::TempDir, PathBuf) {
    let db = fs.database(
        "CLI",
        &[
            "CREATE TABLE CONTACTS (ID NUMBER(38,0), EMAIL VARCHAR, UPDATED_AT TIMESTAMP_NTZ(9))",
            "INSERT INTO CONTACTS VALUES (1, 'a@example.com', '2024-01-01 00:00:01'), (2, NULL, '2024-01-01 00:00:02')",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            r#"version = 1
[sources.wh]
kind = "snowflake"
account = "test"
user = "SLUICE"
database = "{db}"
schema = "PUBLIC"
auth = "password"
credentials = "env:WH"
endpoint = "{endpoint}"
stage = "@{db}.PUBLIC.EXPORTS"

[[export]]
name = "contacts"
source = "wh"
destination = "out"

  [[export.table]]
  name = "CONTACTS"
  columns = {columns}
  incremental = {{ strategy = "timestamp", column = "UPDATED_AT", lag = "0s" }}

  [[export.table]]
  name = "{db}.PUBLIC.CONTACTS"
  mode = "unload"
  incremental = {{ strategy = "timestamp", column = "UPDATED_AT", upper_bound = "max" }}
"#,
            endpoint = fs.endpoint
        ),
    )
    .unwrap();
    (dir, config)
}

#[test]
fn check_connection_reports_the_session_and_each_tables_columns() {
    let fs = FakeSnow::shared();
    let (_dir, config) = workspace(fs, r#"["ID", "EMAIL"]"#);
    let o = sluice(&config, PASSWORD, &["check-connection"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("session:") && out.contains("CONTACTS: ok (3 columns)"), "{out}");

    let (_dir, config) = workspace(fs, r#"["ID", "PHONE"]"#);
    let o = sluice(&config, PASSWORD, &["check-connection", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report[0]["tables"][0]["missing"], serde_json::json!(["PHONE"]));
}

#[test]
fn plan_shows_the_select_and_the_copy_into_then_run_exports_the_window() {
    let fs = FakeSnow::shared();
    let (dir, config) = workspace(fs, r#"["ID", "EMAIL"]"#);
    let o = sluice(&config, PASSWORD, &["plan", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let streamed = &plan[0];
    assert!(streamed["sql"].as_str().unwrap().starts_with("SELECT \"ID\", \"EMAIL\" FROM \"CONTACTS\" WHERE"));
    assert!(streamed.get("unload_sql").is_none());
    assert_eq!(streamed["rows"], 2);
    let unload = plan[1]["unload_sql"].as_str().unwrap();
    assert!(
        unload.starts_with("COPY INTO @") && unload.contains("/contacts/") && unload.contains("/RUN_ID/part"),
        "{unload}"
    );
    assert!(unload.contains("DETAILED_OUTPUT = TRUE"), "{unload}");

    let o = sluice(&config, PASSWORD, &["run", "--json", "--table", "CONTACTS"]);
    assert!(o.status.success(), "{}", text(&o));
    let rows = sluice_testkit::committed_rows(&dir.path().join("out"));
    assert_eq!(rows, vec![vec![Some("1".into()), Some("a@example.com".into())], vec![Some("2".into()), None]]);
}

#[test]
fn a_refused_login_exits_1_without_the_password_in_the_message() {
    let fs = FakeSnow::shared();
    let (_dir, config) = workspace(fs, r#"["ID"]"#);
    let o = sluice(&config, "not-the-password", &["run"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("refused the login of user \"SLUICE\"") && out.contains("env:WH"), "{out}");
    assert!(!out.contains("not-the-password"), "{out}");

    let o = sluice(&config, "", &["check-connection"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("WH_PASSWORD"), "says which variable to set: {}", text(&o));
}

/// Schema drift on Snowflake (fakesnow): an added column stops the run by default with the
/// difference named; `add_columns` exports and announces it; `ignore` leaves it out; a retyped
/// or dropped column stops the run until a full refresh sends the new shape whole.
#[test]
fn schema_drift_on_snowflake_fails_by_default_and_each_mode_does_what_it_says() {
    let fs = FakeSnow::shared();
    let db = fs.database(
        "DRIFT",
        &[
            "CREATE TABLE CONTACTS (ID NUMBER(38,0), EMAIL VARCHAR, UPDATED_AT TIMESTAMP_NTZ(9))",
            "INSERT INTO CONTACTS VALUES (1, 'a@example.com', '2024-01-01 00:00:01')",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    let write = |mode: &str| {
        std::fs::write(
            &config,
            format!(
                "version = 1\n[sources.wh]\nkind = \"snowflake\"\naccount = \"test\"\nuser = \"SLUICE\"\ndatabase = \"{db}\"\n\
                 schema = \"PUBLIC\"\nauth = \"password\"\ncredentials = \"env:WH\"\nendpoint = \"{}\"\n\n\
                 [[export]]\nname = \"contacts\"\nsource = \"wh\"\ndestination = \"out\"\n\n\
                 [[export.table]]\nname = \"CONTACTS\"\n{mode}\
                 incremental = {{ strategy = \"timestamp\", column = \"UPDATED_AT\", lag = \"0s\" }}\n",
                fs.endpoint
            ),
        )
        .unwrap();
    };
    let newest = || -> serde_json::Value {
        let out = dir.path().join("out/contacts/contacts");
        // The last written: run ids of one second are in no order.
        std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| std::fs::read(e.unwrap().path().join("manifest.json")).ok())
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap())
            .max_by_key(|m| m["written_at"].as_str().unwrap().to_string())
            .unwrap()
    };
    let names = |m: &serde_json::Value| -> Vec<String> {
        m["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect()
    };
    write("");
    let o = sluice(&config, PASSWORD, &["run"]);
    assert!(o.status.success(), "{}", text(&o));

    fs.sql_in(
        &db,
        &[
            "ALTER TABLE CONTACTS ADD COLUMN REGION VARCHAR",
            "INSERT INTO CONTACTS VALUES (2, 'b@example.com', '2024-01-01 00:00:02', 'EU')",
        ],
    );
    let o = sluice(&config, PASSWORD, &["run"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("column \"REGION\" added (VARCHAR"), "{}", text(&o));

    write("on_schema_change = \"ignore\"\n");
    let o = sluice(&config, PASSWORD, &["run"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(names(&newest()), ["ID", "EMAIL", "UPDATED_AT"]);

    write("on_schema_change = \"add_columns\"\n");
    fs.sql_in(&db, &["INSERT INTO CONTACTS VALUES (3, 'c@example.com', '2024-01-01 00:00:03', 'US')"]);
    let o = sluice(&config, PASSWORD, &["run"]);
    assert!(o.status.success(), "{}", text(&o));
    let m = newest();
    assert_eq!(names(&m), ["ID", "EMAIL", "UPDATED_AT", "REGION"]);
    assert_eq!(m["added_columns"][0]["name"], "REGION", "{m}");

    fs.sql_in(&db, &["ALTER TABLE CONTACTS DROP COLUMN EMAIL"]);
    let o = sluice(&config, PASSWORD, &["run"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("column \"EMAIL\" dropped") && text(&o).contains("--full-refresh"), "{}", text(&o));
    let o = sluice(&config, PASSWORD, &["run", "--full-refresh"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(names(&newest()), ["ID", "UPDATED_AT", "REGION"]);
}
