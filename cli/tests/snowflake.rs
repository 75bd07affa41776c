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
