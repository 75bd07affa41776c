//! Alerts as a user of the CLI meets them, at the defaults plus a webhook: a failed run is
//! announced once however often it fails again, and once more when a run succeeds; an export
//! that never ran goes stale on the freshness check's own schedule; rows rejected by an
//! integration raise their own alert. Each announcement is an `ExportAlert` line in
//! events.jsonl, a line on stderr and a post to the webhook.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use sluice_testkit::api::{FakeApi, Shape};
use sluice_testkit::{contacts_config, create_contacts, insert_contacts};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SLUICE_CONFIG")
        .env_remove("SLUICE_HISTORY")
        .env("HOOK_TOKEN", "t0ken")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `ExportAlert` events so far: (alert key, status).
fn alerts(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["detail-type"] == "ExportAlert")
        .map(|e| {
            (e["detail"]["key"].as_str().unwrap().to_string(), e["detail"]["status"].as_str().unwrap().to_string())
        })
        .collect()
}

fn pair(key: &str, status: &str) -> (String, String) {
    (key.to_string(), status.to_string())
}

/// The posts the webhook received, as their text.
fn posts(hook: &FakeApi) -> Vec<String> {
    hook.requests().iter().filter_map(|r| r.body["text"].as_str().map(str::to_string)).collect()
}

/// Contacts exported by timestamp on a schedule, with `alerts` as the export's alert keys.
fn workspace(alerts: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    insert_contacts(&create_contacts(&dir.path().join("source.db")), 1, 20, "2025-06-01 00:00:00");
    let incremental = "{ strategy = \"timestamp\", column = \"updated_at\", lag = \"0s\" }";
    let config = contacts_config(dir.path(), incremental, "{ kind = \"csv\" }");
    let toml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("destination = \"out\"\n", "destination = \"out\"\nschedule = \"rate(1 minute)\"\n")
        .replace("[[export.table]]", &format!("[export.alerts]\n{alerts}\n\n[[export.table]]"));
    std::fs::write(&config, toml).unwrap();
    (dir, config)
}

#[test]
fn a_failed_run_is_announced_once_and_again_when_a_run_succeeds() {
    let hook = FakeApi::start(Shape::Webhook);
    std::env::set_var("ALERTS_TEST_WEBHOOK", format!("{}/slack", hook.url));
    let (dir, config) = workspace("webhook = \"env:ALERTS_TEST_WEBHOOK\"\nzero_rows = 2");
    let db = dir.path().join("source.db");
    std::fs::rename(&db, dir.path().join("away.db")).unwrap();

    // Two failures in a row: one incident.
    for _ in 0..2 {
        let out = sluice(&config, &["run"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    }
    assert_eq!(alerts(dir.path()), [pair("failed_run", "firing")]);
    let sent = posts(&hook);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("export contacts's run") && sent[0].contains("source.db"), "{}", sent[0]);
    let listed = sluice(&config, &["alerts", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("failed_run") && text.contains("FIRING") && text.contains("1 alert open"), "{text}");

    // The source back: the run succeeds and the incident resolves, once.
    std::fs::rename(dir.path().join("away.db"), &db).unwrap();
    let out = sluice(&config, &["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("alert resolved"), "{}", stderr(&out));
    assert_eq!(alerts(dir.path()), [pair("failed_run", "firing"), pair("failed_run", "resolved")]);
    let sent = posts(&hook);
    assert_eq!(sent.len(), 2);
    assert!(sent[1].starts_with(":white_check_mark: Resolved"), "{}", sent[1]);
    assert!(!sent.iter().any(|p| p.contains("/slack")), "the webhook's URL is never in a message");

    // zero_rows = 2: the second run in a row with nothing new fires, a run with rows resolves.
    sluice(&config, &["run"]);
    assert_eq!(alerts(dir.path()).len(), 2, "one empty run is not yet an incident");
    sluice(&config, &["run"]);
    assert_eq!(alerts(dir.path()).last(), Some(&pair("zero_rows", "firing")));
    // A new row stamped after the last run's window (lag = "0s"; stamps of whole seconds are
    // exported once their second has passed, so two seconds on, stamped a second ago).
    std::thread::sleep(Duration::from_millis(2100));
    let now = (chrono::Utc::now() - chrono::Duration::seconds(1)).format("%Y-%m-%d %H:%M:%S").to_string();
    insert_contacts(&rusqlite::Connection::open(&db).unwrap(), 21, 1, &now);
    sluice(&config, &["run"]);
    assert_eq!(alerts(dir.path()).last(), Some(&pair("zero_rows", "resolved")));
    let json: serde_json::Value =
        serde_json::from_slice(&sluice(&config, &["alerts", "list", "--json"]).stdout).unwrap();
    let states: Vec<(&str, &str)> =
        json.as_array().unwrap().iter().map(|r| (r["key"].as_str().unwrap(), r["state"].as_str().unwrap())).collect();
    assert_eq!(states, [("failed_run", "resolved"), ("zero_rows", "resolved")]);
}

#[test]
fn an_export_that_never_ran_goes_stale_on_the_check_and_a_run_resolves_it() {
    let (dir, config) = workspace("freshness = \"2s\"");
    // The first check starts the clock: nothing to announce, nothing open.
    let out = sluice(&config, &["alerts", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(alerts(dir.path()).is_empty());
    std::thread::sleep(Duration::from_millis(2500));
    let out = sluice(&config, &["alerts", "check"]);
    assert_eq!(out.status.code(), Some(1), "an open alert exits 1: {}", stderr(&out));
    assert!(stderr(&out).contains("has not succeeded since it was first watched"), "{}", stderr(&out));
    // Checked again (and by `run --due` when nothing is due): still open, announced once.
    let out = sluice(&config, &["alerts", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(alerts(dir.path()), [pair("freshness", "firing")]);
    let out = sluice(&config, &["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(alerts(dir.path()), [pair("freshness", "firing"), pair("freshness", "resolved")]);
    // Stale again after 2 s without a success, seen by `run --due` with nothing due.
    std::thread::sleep(Duration::from_millis(2500));
    let out = sluice(&config, &["run", "--due"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing is due"));
    assert_eq!(alerts(dir.path()).last(), Some(&pair("freshness", "firing")));
}

#[test]
fn rows_an_integration_rejects_raise_an_alert_naming_the_failures_file() {
    let api = FakeApi::start(Shape::Webhook);
    api.reject_records_where("id", "3");
    let (dir, config) = workspace("");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "\n[integrations.hook]\nkind = \"webhook\"\nexport = \"contacts\"\nurl = \"{}/in\"\ntoken = \"env:HOOK_TOKEN\"\n",
        api.url
    ));
    std::fs::write(&config, toml).unwrap();
    let out = sluice(&config, &["run"]);
    assert!(stderr(&out).contains("ALERT: integration hook rejected 1 of 20 rows"), "{}", stderr(&out));
    assert!(stderr(&out).contains("failures/hook"), "{}", stderr(&out));
    assert_eq!(alerts(dir.path()), [pair("rejected_rows:hook:contacts", "firing")]);
}

#[test]
fn a_pasted_webhook_url_is_refused_without_being_echoed() {
    let (_dir, config) = workspace("webhook = \"https://hooks.example.com/services/T000/B000/XXXXSECRET\"");
    let out = sluice(&config, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let msg = stderr(&out);
    assert!(msg.contains("export.contacts.alerts.webhook") && msg.contains("not a secret location"), "{msg}");
    assert!(!msg.contains("XXXXSECRET"), "{msg}");
}
