//! `sluice integrate` and the local fan-out of `sluice run`, as a user runs them: against the
//! fake API in this process, with the ledger in the history file. Includes a delivery killed
//! with SIGKILL part-way and run again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_testkit::api::{FakeApi, Fault, Shape};
use sluice_testkit::{contacts_config, create_contacts, insert_contacts};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SLUICE_CONFIG")
        .env_remove("SLUICE_HISTORY")
        .env("HOOK_TOKEN", "s3cret-token");
    c
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Contacts exported to `out/`, and an integration `hook` to the fake API.
fn workspace(rows: i64, api: &FakeApi, integration: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    insert_contacts(&create_contacts(&dir.path().join("source.db")), 1, rows, "2025-06-01 00:00:00");
    let config = contacts_config(dir.path(), "{ strategy = \"full\" }", "{ compression = \"gzip\" }");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "\n[integrations.hook]\nkind = \"webhook\"\nexport = \"contacts\"\nurl = \"{}/in\"\ntoken = \"env:HOOK_TOKEN\"\n{integration}\n",
        api.url
    ));
    std::fs::write(&config, toml).unwrap();
    (dir, config)
}

/// Contacts (`rows` of them) exported by timestamp, and an integration `hook` to the fake API
/// with `extra` settings: the workspace of the tests that run the export several times.
fn stamped_workspace(api: &FakeApi, rows: i64, extra: &str) -> (tempfile::TempDir, PathBuf, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let db = create_contacts(&dir.path().join("source.db"));
    insert_contacts(&db, 1, rows, "2025-06-01 00:00:00");
    let config = contacts_config(
        dir.path(),
        "{ strategy = \"timestamp\", column = \"updated_at\" }",
        "{ compression = \"gzip\" }",
    );
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "\n[integrations.hook]\nkind = \"webhook\"\nexport = \"contacts\"\nurl = \"{}/in\"\ntoken = \"env:HOOK_TOKEN\"\n{extra}",
        api.url
    ));
    std::fs::write(&config, toml).unwrap();
    (dir, config, db)
}

fn applied_ids(api: &FakeApi) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    for r in api.applied() {
        let id = r["id"].as_i64().unwrap();
        assert!(ids.insert(id), "record {id} applied twice");
    }
    ids
}

fn manifest_of(run: &Output) -> String {
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    v["runs"][0]["tables"][0]["manifest_key"].as_str().unwrap().to_string()
}

#[test]
fn sluice_run_delivers_what_it_exported_and_a_second_delivery_is_a_duplicate() {
    let api = FakeApi::start(Shape::Webhook);
    let (dir, config) = workspace(250, &api, "batch_size = 100");
    let out = sluice(&config, &["run", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["deliveries"][0]["delivered"], 250, "{v}");
    assert_eq!(applied_ids(&api), (1..=250).collect());
    assert!(api.requests().iter().all(|r| r.headers["authorization"] == "Bearer s3cret-token"));

    // The same manifest again, by its path: nothing sent.
    let manifest = dir.path().join("out").join(manifest_of(&out));
    let again = sluice(&config, &["integrate", "-i", "hook", "-m", manifest.to_str().unwrap()]).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("already delivered"), "{}", text(&again));
    assert_eq!(api.requests().len(), 3);

    // The events file says what happened, for a local consumer.
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert!(
        events.lines().any(|l| l.contains("\"IntegrationSucceeded\"") && l.contains("\"delivered\":250")),
        "{events}"
    );
    assert!(!events.contains("s3cret-token"), "no secret in events");

    // status shows the latest delivery.
    let status = sluice(&config, &["status"]).output().unwrap();
    let t = text(&status);
    assert!(t.contains("INTEGRATION") && t.contains("hook") && t.contains("done") && t.contains("250"), "{t}");
    let status = sluice(&config, &["status", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v[0]["integrations"][0]["delivered"], 250, "{v}");

    // --no-integrate leaves delivery to later.
    let quiet = sluice(&config, &["run", "--no-integrate"]).output().unwrap();
    assert!(quiet.status.success(), "{}", text(&quiet));
    assert_eq!(api.requests().len(), 3);
}

#[test]
fn records_the_api_refuses_land_in_the_failures_file_and_can_be_sent_again() {
    let api = FakeApi::start(Shape::Webhook);
    let (dir, config) = workspace(60, &api, "batch_size = 20");
    api.reject_records_where("email", "user7@example.com");
    api.reject_batches_containing("email", "user33@example.com");
    let out = sluice(&config, &["run", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a delivery with failures fails the command: {}", text(&out));
    let manifest = manifest_of(&out);
    let failures = dir.path().join("out").join(manifest.replace("manifest.json", "failures/hook.jsonl"));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&failures).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    // Values keep the types the columns declare (an INTEGER id is a number, as exported).
    assert_eq!((lines[0]["row"]["id"].as_i64(), lines[0]["stage"].as_str()), (Some(7), Some("api")));
    assert_eq!((lines[1]["row"]["id"].as_i64(), lines[1]["status"].as_u64()), (Some(33), Some(400)));
    assert_eq!(lines[0]["row"]["email"], "user7@example.com");
    assert_eq!(applied_ids(&api).len(), 58);

    // The API is half fixed: 7 goes through, 33 fails again into a retry file beside it.
    let api2 = FakeApi::start(Shape::Webhook);
    api2.reject_records_where("email", "user33@example.com");
    let toml = std::fs::read_to_string(&config).unwrap().replace(&api.url, &api2.url);
    std::fs::write(&config, toml).unwrap();
    let retry = |file: &std::path::Path| {
        sluice(&config, &["integrate", "-i", "hook", "--retry-failures", file.to_str().unwrap()]).output().unwrap()
    };
    let out = retry(&failures);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(applied_ids(&api2), BTreeSet::from([7]));
    let again = std::fs::read_dir(failures.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".retry-"))
        .expect("a retry file");
    let status = || -> serde_json::Value {
        let out = sluice(&config, &["status", "--json"]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0]["integrations"][0].clone()
    };
    assert_eq!((status()["delivered"].as_u64(), status()["failed"].as_u64()), (Some(1), Some(1)), "{}", status());

    // The same file again: not "already delivered", but where the rows still failing are.
    let out = retry(&failures);
    assert_eq!(out.status.code(), Some(1), "rows still fail: {}", text(&out));
    let said = text(&out);
    let name = again.file_name().unwrap().to_string_lossy().into_owned();
    assert!(said.contains("already sent again") && said.contains("1 failed again") && said.contains(&name), "{said}");
    assert_eq!(applied_ids(&api2), BTreeSet::from([7]), "nothing sent twice");

    // Fixed for good: the retry file goes through, and status says nothing fails.
    let api3 = FakeApi::start(Shape::Webhook);
    let toml = std::fs::read_to_string(&config).unwrap().replace(&api2.url, &api3.url);
    std::fs::write(&config, toml).unwrap();
    let out = retry(&again);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(applied_ids(&api3), BTreeSet::from([33]));
    assert_eq!(status()["failed"].as_u64(), Some(0), "{}", status());
}

#[test]
fn a_delivery_killed_part_way_resumes_and_sends_no_record_twice() {
    let api = FakeApi::start(Shape::Webhook);
    let (dir, config) = workspace(400, &api, "batch_size = 10\nrate_limit = \"20/s\"\nmax_in_flight = 4");
    let run = sluice(&config, &["run", "--no-integrate", "--json"]).output().unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let manifest = v[0]["tables"][0]["manifest_key"].as_str().unwrap().to_string();

    let mut child = sluice(&config, &["integrate", "-i", "hook", "-m", &manifest])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while api.requests().len() < 25 {
        assert!(started.elapsed() < Duration::from_secs(20), "the delivery did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no clean-up of any kind
    child.wait().unwrap();
    let before = api.requests().len();
    assert!(before < 40, "killed part-way ({before} of 40 requests)");

    let out = sluice(&config, &["integrate", "-i", "hook", "-m", &manifest, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["delivered"], 400, "{v}");
    assert_eq!(applied_ids(&api), (1..=400).collect(), "every record applied exactly once");
    // Resumed from the checkpoint: at most the batches of the last 250 ms (5 at 20/s) and those
    // in flight are sent again, under their idempotency keys.
    assert!(api.requests().len() <= 40 + 5 + 4, "{} requests", api.requests().len());
    drop(dir);
}

#[test]
fn a_bad_integration_is_refused_with_every_problem_and_no_secret_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let config = contacts_config(dir.path(), "{ strategy = \"full\" }", "{ compression = \"none\" }");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(
        "\n[integrations.hook]\nkind = \"webhook\"\nexport = \"contacts\"\nurl = \"https://user:hunter2@hooks.example.com/x\"\n\
         token = \"pat-na1-0123456789\"\nheaders = { Authorization = \"Bearer abc\" }\nbody = '{\"a\": 1}'\n\
         [integrations.crm]\nkind = \"hubspot_contacts\"\nexport = \"nope\"\nbatch_size = 500\n\
         [integrations.crm.properties]\nfirstname = \"name\"\n",
    );
    std::fs::write(&config, toml).unwrap();
    let out = sluice(&config, &["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    for expected in [
        "integrations.hook.url: not an http(s) URL without credentials",
        "integrations.hook.token: not a token location",
        "integrations.hook.headers.Authorization: credentials do not go in the config file",
        "integrations.hook.body: the template holds \"{{records}}\" 0 times",
        "integrations.crm.export: no export named \"nope\"",
        "integrations.crm.batch_size: 500 is out of range",
        "integrations.crm.token: missing",
        "integrations.crm.properties: no property \"email\" to match contacts on",
    ] {
        assert!(t.contains(expected), "missing {expected:?} in:\n{t}");
    }
    for secret in ["hunter2", "pat-na1-0123456789", "Bearer abc"] {
        assert!(!t.contains(secret), "{secret} echoed:\n{t}");
    }
    // An unknown integration is named with those that exist.
    let fine = contacts_config(dir.path(), "{ strategy = \"full\" }", "{ compression = \"none\" }");
    let out = sluice(&fine, &["integrate", "-i", "nope", "-m", "x/manifest.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no integration named \"nope\""), "{}", text(&out));
}

/// A delivery stopped by an API that is down is not stranded: the stop says how to resume, status
/// counts it, and the next `sluice run` delivers it before its own manifest, in run order.
#[test]
fn a_stopped_delivery_is_resumed_by_the_next_run_before_its_own_manifest() {
    let api = FakeApi::start(Shape::Webhook);
    let (_dir, config, db) = stamped_workspace(&api, 3, "");

    // The API is down: the run commits, its delivery stops.
    api.always(Some(503));
    let first = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    let resume = format!("resume with: sluice --config {} integrate --integration hook --pending", config.display());
    assert!(text(&first).contains(&resume), "{}", text(&first));
    let status: serde_json::Value =
        serde_json::from_slice(&sluice(&config, &["status", "--json"]).output().unwrap().stdout).unwrap();
    assert_eq!(status[0]["integrations"][0]["undelivered"], 1, "{status}");
    assert!(status[0]["integrations"][0]["oldest_undelivered"].is_string(), "{status}");
    let table = text(&sluice(&config, &["status"]).output().unwrap());
    assert!(table.contains("UNDELIVERED") && table.contains("1 (oldest"), "{table}");

    // A second run while it is still down: its manifest waits behind the first.
    insert_contacts(&db, 4, 2, &chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3f").to_string());
    // Past the default lag (5 s) and the second in progress.
    std::thread::sleep(Duration::from_millis(6_500));
    let second = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    assert!(text(&second).contains("2 manifest(s) of table contacts wait"), "{}", text(&second));
    assert!(api.applied().is_empty());

    // The API is back: the next run delivers both waiting manifests first, oldest first.
    api.always(None);
    insert_contacts(&db, 6, 1, &chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3f").to_string());
    std::thread::sleep(Duration::from_millis(6_500));
    let third = sluice(&config, &["run"]).output().unwrap();
    assert!(third.status.success(), "{}", text(&third));
    let order: Vec<i64> = api.applied().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(order, [1, 2, 3, 4, 5, 6], "in run order, each once");
    let status: serde_json::Value =
        serde_json::from_slice(&sluice(&config, &["status", "--json"]).output().unwrap().stdout).unwrap();
    assert_eq!(status[0]["integrations"][0]["undelivered"], 0, "{status}");

    // With nothing waiting, --pending says so.
    let pending = sluice(&config, &["integrate", "-i", "hook", "--pending"]).output().unwrap();
    assert!(pending.status.success() && text(&pending).contains("nothing undelivered"), "{}", text(&pending));
}

/// A token travels over HTTPS only: a webhook with a token on plain http (other than to this
/// machine) and an http HubSpot endpoint are refused by validate, naming what to write.
#[test]
fn a_token_is_never_sent_over_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let config = contacts_config(dir.path(), "{ strategy = \"full\" }", "{ compression = \"none\" }");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(
        "\n[integrations.hook]\nkind = \"webhook\"\nexport = \"contacts\"\nurl = \"http://hooks.example.com/x\"\n\
         token = \"env:HOOK_TOKEN\"\n\
         [integrations.crm]\nkind = \"hubspot_contacts\"\nexport = \"contacts\"\nendpoint = \"http://api.hubapi.com\"\n\
         token = \"env:HOOK_TOKEN\"\n[integrations.crm.properties]\nemail = \"email\"\n\
         [integrations.plain]\nkind = \"webhook\"\nexport = \"contacts\"\nurl = \"http://hooks.example.com/open\"\n",
    );
    std::fs::write(&config, toml).unwrap();
    let out = sluice(&config, &["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(t.contains("integrations.hook.url: plain http, and the token would travel in clear text"), "{t}");
    assert!(t.contains("integrations.crm.endpoint: plain http"), "{t}");
    assert!(!t.contains("integrations.plain"), "no token, no secret to protect: {t}");
}

/// Run N's delivery is under way in another process (slowly: an API that answers late) when run
/// N+1 commits. N+1's rows must not overtake N's: the run's fan-out finds N held and leaves N+1
/// waiting behind it, and the next `--pending` delivers N+1 once N is done.
#[test]
fn a_run_committed_while_an_earlier_delivery_is_under_way_waits_behind_it() {
    let api = FakeApi::start(Shape::Webhook);
    let (_dir, config, db) = stamped_workspace(&api, 40, "batch_size = 1\nmax_in_flight = 1\n");

    // Run N commits while the API is down; then a slow API, and its delivery under way elsewhere.
    api.always(Some(503));
    let first = sluice(&config, &["run"]).output().unwrap();
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    api.always(None);
    api.script(vec![Fault::Slow(Duration::from_millis(400)); 40]);
    let mut stalled = sluice(&config, &["integrate", "-i", "hook", "--pending"]).stdout(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while api.requests().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(20), "the first delivery never started");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Run N+1, past the default lag: committed, and its rows wait.
    insert_contacts(&db, 41, 5, &chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3f").to_string());
    std::thread::sleep(Duration::from_millis(6_000));
    let second = sluice(&config, &["run"]).output().unwrap();
    assert!(text(&second).contains("is being delivered by"), "{}", text(&second));
    assert!(stalled.try_wait().unwrap().is_none(), "run N's delivery was still under way");
    assert!(api.applied().iter().all(|r| r["id"].as_i64().unwrap() <= 40), "nothing of run N+1 yet");

    assert!(stalled.wait().unwrap().success());
    let pending = sluice(&config, &["integrate", "-i", "hook", "--pending"]).output().unwrap();
    assert!(pending.status.success(), "{}", text(&pending));
    let order: Vec<i64> = api.applied().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(order, (1..=45).collect::<Vec<_>>(), "run N's rows, then run N+1's, each once");
}

/// An operator may decide a run's rows are not to go (the API will never take them): `--skip`
/// records that, with who and why, and the runs of the table waiting behind it go next.
#[test]
fn a_skipped_delivery_lets_the_runs_behind_it_go_and_says_who_skipped_it() {
    let api = FakeApi::start(Shape::Webhook);
    let (_dir, config, db) = stamped_workspace(&api, 3, "");
    api.always(Some(503));
    let first = sluice(&config, &["run", "--json"]).output().unwrap();
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    let manifest = manifest_of(&first);

    // A reason is required.
    let bare = sluice(&config, &["integrate", "-i", "hook", "--skip", &manifest]).output().unwrap();
    assert_eq!(bare.status.code(), Some(2), "{}", text(&bare));
    assert!(text(&bare).contains("--reason"), "{}", text(&bare));
    let skip = sluice(&config, &["integrate", "-i", "hook", "--skip", &manifest, "--reason", "rows of a bad load"])
        .output()
        .unwrap();
    assert!(skip.status.success(), "{}", text(&skip));
    assert!(text(&skip).contains("skipped by") && text(&skip).contains("rows of a bad load"), "{}", text(&skip));
    let status: serde_json::Value =
        serde_json::from_slice(&sluice(&config, &["status", "--json"]).output().unwrap().stdout).unwrap();
    assert_eq!(status[0]["integrations"][0]["undelivered"], 0, "{status}");

    // The API is back: the next run delivers its own rows only.
    api.always(None);
    insert_contacts(&db, 4, 2, &chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3f").to_string());
    std::thread::sleep(Duration::from_millis(6_000));
    let second = sluice(&config, &["run"]).output().unwrap();
    assert!(second.status.success(), "{}", text(&second));
    let order: Vec<i64> = api.applied().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(order, [4, 5], "the skipped run's rows were not sent");
}
