//! The real export function under `cargo lambda watch` (a local Lambda runtime API), invoked
//! with `cargo lambda invoke` and the fixtures in tests/fixtures, against moto's S3, DynamoDB,
//! EventBridge, SQS and Secrets Manager, and fakesnow for Snowflake.

use std::time::Duration;

use aws_sdk_s3::config::{Credentials, Region};
use sluice_aws::DynamoHistory;
use sluice_core::catalog::Exports;
use sluice_core::ports::{HistoryStore, LeaseOwner};
use sluice_testkit::catalog::{FakePreflight, MemoryScheduler};
use sluice_testkit::fakesnow::{FakeSnow, PASSPHRASE};
use sluice_testkit::moto::{repo_root, unique_name, Moto};
use sluice_testkit::runtime::Runtime;
use sluice_testkit::{create_contacts, insert_contacts};

/// moto's clients, and a bucket and history table of the test's own.
struct Stack {
    sdk: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    bucket: String,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl Stack {
    async fn new(moto: &Moto) -> Stack {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&moto.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .load()
            .await;
        let s3 = sluice_aws::s3_client(&sdk);
        let bucket = unique_name("exports");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let table = unique_name("history");
        DynamoHistory::create_table(&ddb, &table).await.unwrap();
        Stack { sdk, s3, bucket, ddb, table }
    }

    /// The function's environment against moto, with its config and history table.
    fn env(&self, moto: &Moto, config: String, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("SLUICE_CONFIG", config),
            ("SLUICE_HISTORY_TABLE", self.table.clone()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        env
    }
}

/// A contacts table of `rows` rows in `dir`, and a config exporting it incrementally (the
/// default settings) to `s3://<bucket>/exports`; returns the config's path.
fn contacts_export(dir: &std::path::Path, rows: i64, bucket: &str) -> std::path::PathBuf {
    let db = dir.join("source.db");
    insert_contacts(&create_contacts(&db), 1, rows, "2025-06-01 00:00:00");
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[sources.db]\nkind = \"sqlite\"\npath = \"{}\"\n\n[[export]]\nname = \"contacts\"\nsource = \"db\"\n\
             destination = \"s3://{bucket}/exports\"\nformat = {{ compression = \"gzip\" }}\n\n[[export.table]]\nname = \"contacts\"\n\
             incremental = {{ strategy = \"timestamp\", column = \"updated_at\" }}\n",
            db.display()
        ),
    )
    .unwrap();
    config
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures").join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_runs_scheduled_exports_and_answers_bad_requests_clearly() {
    let moto = Moto::shared();
    let Stack { sdk, s3, bucket, ddb, table } = Stack::new(moto).await;

    let dir = tempfile::tempdir().unwrap();
    let config = contacts_export(dir.path(), 1_000, &bucket);

    let stack = Stack { sdk, s3, bucket, ddb, table };
    let watch = Runtime::start(
        env!("CARGO_BIN_EXE_sluice-export"),
        &stack.env(moto, config.display().to_string(), &[("SLUICE_EVENT_BUS", "default"), ("SLUICE_SSE", "AES256")]),
    );
    let Stack { s3, bucket, ddb, table, .. } = stack;

    // A schedule whose input names the export: one run, committed.
    let (ok, summary) = watch.invoke(&fixture("schedule-input.json"));
    assert!(ok, "{summary}");
    assert_eq!(summary["rows"], 1000, "{summary}");
    let manifest_key = format!("exports/{}", summary["tables"][0]["manifest_key"].as_str().unwrap());
    s3.head_object().bucket(&bucket).key(&manifest_key).send().await.expect("the manifest is in S3");
    let history = DynamoHistory::new(ddb.clone(), &table);
    assert!(history.watermark("contacts", "contacts").await.unwrap().is_some());

    // An EventBridge event naming it in its detail: nothing new since, an empty run.
    let (ok, summary) = watch.invoke(&fixture("eventbridge-detail.json"));
    assert!(ok, "{summary}");
    assert_eq!(summary["rows"], 0);

    // A schedule without input, and an unknown export: clear errors of a request kind.
    let (ok, err) = watch.invoke(&fixture("scheduled-no-input.json"));
    assert!(!ok);
    let text = err.to_string();
    assert!(text.contains("Sluice.InvalidRequest") && text.contains("names no export"), "{text}");
    let (ok, err) = watch.invoke(r#"{"export": "nope"}"#);
    assert!(!ok);
    assert!(
        err.to_string().contains("no export named \\\"nope\\\"") || err.to_string().contains("no export named"),
        "{err}"
    );

    // A managed export (in the DynamoDB catalog): refused as a draft, run once activated,
    // with no redeploy: the function reads the catalog per invocation.
    let file = sluice_connect::load_config(&config).unwrap();
    let managed = Exports { catalog: &history, config: &file, who: "tester".into() };
    let definition = format!(
        "name = \"managed\"\nsource = \"db\"\ndestination = \"s3://{bucket}/managed\"\n\n[[table]]\nname = \"contacts\"\n\
         incremental = {{ strategy = \"full\" }}\n"
    );
    managed.create(&definition).await.unwrap();
    let (ok, err) = watch.invoke(r#"{"export": "managed"}"#);
    assert!(!ok);
    assert!(
        err.to_string().contains("Sluice.InvalidRequest") && err.to_string().contains("activate it first"),
        "{err}"
    );
    managed.activate("managed", None, &FakePreflight(None)).await.unwrap();
    let (ok, summary) = watch.invoke(r#"{"export": "managed"}"#);
    assert!(ok, "{summary}");
    assert_eq!(summary["rows"], 1000, "{summary}");

    // An orchestration's rule names itself: its runs go on while it and the export run, and
    // are skipped (not failed: a retry would not change the answer) once either is paused or
    // it is gone.
    let rules = MemoryScheduler::default();
    managed.orchestrate("managed", "hourly", "rate(1 hour)", None, &rules).await.unwrap();
    let scheduled = r#"{"export": "managed", "orchestration": "hourly"}"#;
    let (ok, summary) = watch.invoke(scheduled);
    assert!(ok && summary["succeeded"] == true, "{summary}");
    managed.set_orchestration_paused("managed", "hourly", true, &rules).await.unwrap();
    let (ok, answer) = watch.invoke(scheduled);
    assert!(ok, "{answer}");
    assert!(answer["skipped"].as_str().unwrap().contains("is paused"), "{answer}");
    let (ok, answer) = watch.invoke(r#"{"export": "managed", "orchestration": "gone"}"#);
    assert!(ok && answer["skipped"].as_str().unwrap().contains("no orchestration \"gone\""), "{answer}");

    // Another run holds the lease: refused as already running, nothing written.
    let holder = LeaseOwner { run_id: "other".into(), host: "elsewhere".into(), pid: 1 };
    history.acquire_lease("contacts", &holder, Duration::from_secs(300)).await.unwrap();
    let (ok, err) = watch.invoke(&fixture("schedule-input.json"));
    assert!(!ok);
    assert!(err.to_string().contains("Sluice.AlreadyRunning") && err.to_string().contains("other"), "{err}");
}

/// The deployed shape: the config in S3, a Snowflake source whose key is in Secrets Manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snowflake_export_configured_in_s3_runs_with_its_key_from_secrets_manager() {
    let moto = Moto::shared();
    let fs = FakeSnow::shared();
    let Stack { sdk, s3, bucket, ddb, table } = Stack::new(moto).await;
    let secret = unique_name("sluice/snowflake");
    let pem = std::fs::read_to_string(fs.key("key_encrypted.p8")).unwrap();
    let value = serde_json::json!({ "private_key": pem, "private_key_passphrase": PASSPHRASE }).to_string();
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.create_secret().name(&secret).secret_string(value).send().await.unwrap();

    let db = fs.database(
        "LAMBDA",
        &[
            "CREATE TABLE CONTACTS (ID NUMBER(38,0), EMAIL VARCHAR, UPDATED_AT TIMESTAMP_NTZ(9))",
            "INSERT INTO CONTACTS SELECT range, 'u' || range || '@example.com', \
             '2024-01-01'::TIMESTAMP + to_seconds(range) FROM range(0, 2500)",
        ],
    );
    let config = format!(
        "version = 1\n[sources.warehouse]\nkind = \"snowflake\"\naccount = \"test\"\nuser = \"SLUICE\"\ndatabase = \"{db}\"\n\
         schema = \"PUBLIC\"\nauth = \"key_pair\"\ncredentials = \"secretsmanager:{secret}\"\nendpoint = \"{}\"\n\n\
         [[export]]\nname = \"contacts\"\nsource = \"warehouse\"\ndestination = \"s3://{bucket}/exports\"\n\n\
         [[export.table]]\nname = \"CONTACTS\"\nincremental = {{ strategy = \"timestamp\", column = \"UPDATED_AT\", upper_bound = \"max\" }}\n",
        fs.endpoint
    );
    s3.put_object().bucket(&bucket).key("config/sluice.toml").body(config.into_bytes().into()).send().await.unwrap();
    let stack = Stack { sdk, s3, bucket, ddb, table };
    let (s3, bucket) = (&stack.s3, &stack.bucket);

    let watch = Runtime::start(
        env!("CARGO_BIN_EXE_sluice-export"),
        &stack.env(moto, format!("s3://{bucket}/config/sluice.toml"), &[]),
    );
    let (ok, summary) = watch.invoke(r#"{"export": "contacts"}"#);
    assert!(ok, "{summary}");
    // Tie-safe max: the newest row waits for the next run.
    assert_eq!(summary["rows"], 2499, "{summary}");
    let manifest_key = format!("exports/{}", summary["tables"][0]["manifest_key"].as_str().unwrap());
    let manifest = s3.get_object().bucket(bucket).key(&manifest_key).send().await.expect("the manifest is in S3");
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(manifest["columns"][2]["type"], "TIMESTAMP_NTZ(9)");
    let history = DynamoHistory::new(stack.ddb.clone(), &stack.table);
    let w = history.watermark("contacts", "CONTACTS").await.unwrap().unwrap();
    assert_eq!(w.watermark.to_string(), "2024-01-01T00:41:38.000000000");

    // A secret the function cannot read: a configuration-kind error naming it, no retry loop.
    sm.delete_secret().secret_id(&secret).force_delete_without_recovery(true).send().await.unwrap();
    drop(watch);
    let watch = Runtime::start(
        env!("CARGO_BIN_EXE_sluice-export"),
        &stack.env(moto, format!("s3://{bucket}/config/sluice.toml"), &[]),
    );
    let (ok, err) = watch.invoke(r#"{"export": "contacts"}"#);
    assert!(!ok);
    let text = err.to_string();
    // (cargo lambda wraps long lines, so the secret's name is checked by its error, not its text)
    assert!(text.contains("Sluice.SourceUnavailable") && text.contains("ResourceNotFoundException"), "{text}");
    assert!(text.contains("Secrets Manager secret") && text.contains("not found"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

/// The runtime's shutdown signal (SIGTERM) stops a run under way cleanly: the invocation
/// answers that the run was interrupted, the run is recorded failed with why, the lease is
/// given back and the watermark stays, for the next environment's run to export the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_run_cleanly_and_gives_the_lease_back() {
    let moto = Moto::shared();
    let stack = Stack::new(moto).await;
    let dir = tempfile::tempdir().unwrap();
    let config = contacts_export(dir.path(), 400_000, &stack.bucket);
    let function = std::sync::Arc::new(Runtime::start(
        env!("CARGO_BIN_EXE_sluice-export"),
        &stack.env(moto, config.display().to_string(), &[]),
    ));
    let history = DynamoHistory::new(stack.ddb.clone(), &stack.table);
    let invoking = function.clone();
    let run = std::thread::spawn(move || invoking.invoke(r#"{"export": "contacts"}"#));
    // Once the run is under way (its record open; 400,000 rows take seconds to reach moto).
    let started = std::time::Instant::now();
    while history.open_runs("contacts").await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "the run never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    function.signal("TERM");
    let (ok, answer) = tokio::task::spawn_blocking(move || run.join().unwrap()).await.unwrap();
    let text = answer.to_string();
    assert!(!ok && text.contains("interrupted (SIGTERM)"), "{text}");
    assert!(history.lease("contacts").await.unwrap().is_none(), "the lease is given back");
    assert!(history.watermark("contacts", "contacts").await.unwrap().is_none(), "nothing committed");
    let runs = history.runs("contacts", 10).await.unwrap();
    assert!(runs[0].error.as_deref().is_some_and(|e| e.contains("interrupted (SIGTERM)")), "{runs:?}");
    assert!(history.open_runs("contacts").await.unwrap().is_empty());
}

/// Through the API (invoking the real function, as the OperatePolicy allows): a late row is
/// reported, a backfill exports its window outside the chain with the cursor unmoved, a
/// cursor moved back re-exports from there, and a verification proves the whole as one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_backfills_moves_the_cursor_and_verifies_on_request() {
    let moto = Moto::shared();
    let stack = Stack::new(moto).await;
    let dir = tempfile::tempdir().unwrap();
    let config = contacts_export(dir.path(), 100, &stack.bucket);
    let watch =
        Runtime::start(env!("CARGO_BIN_EXE_sluice-export"), &stack.env(moto, config.display().to_string(), &[]));

    let (ok, first) = watch.invoke(r#"{"export": "contacts"}"#);
    assert!(ok, "{first}");
    // A row committed late, inside the window the first run exported.
    let db = create_contacts(&dir.path().join("source.db"));
    insert_contacts(&db, 5_000, 1, "2025-06-01 00:00:00");
    let (ok, second) = watch.invoke(r#"{"export": "contacts"}"#);
    assert!(ok, "{second}");
    assert_eq!(second["tables"][0]["late_rows"]["rows"], 1, "{second}");

    // A backfill of that window: its own folder, marked, and the cursor where it was.
    let backfill = r#"{"export": "contacts", "backfill": {"table": "contacts", "from": "2025-05-31 23:59:59", "to": "2025-06-01 00:00:00", "by": "alice", "reason": "late row"}}"#;
    let (ok, filled) = watch.invoke(backfill);
    assert!(ok, "{filled}");
    let t = &filled["tables"][0];
    assert_eq!((t["rows"].as_u64(), t["backfill"].as_bool()), (Some(101), Some(true)), "{filled}");
    let key = t["manifest_key"].as_str().unwrap();
    assert!(key.starts_with("contacts/contacts/backfills/"), "{key}");
    let m = stack.s3.get_object().bucket(&stack.bucket).key(format!("exports/{key}")).send().await.unwrap();
    let m: serde_json::Value = serde_json::from_slice(&m.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(m["backfill"]["by"], "alice", "{m}");
    assert!(m.get("previous").is_none(), "outside the chain: {m}");
    // Past the cursor is the next run's: refused.
    let (ok, refused) = watch.invoke(
        r#"{"export": "contacts", "backfill": {"table": "contacts", "from": "2025-05-31 00:00:00", "to": "2099-01-01 00:00:00"}}"#,
    );
    assert!(!ok && refused["errorMessage"].as_str().unwrap().contains("after the cursor"), "{refused}");

    let (ok, verified) = watch.invoke(r#"{"export": "contacts", "verify": {}}"#);
    assert!(ok, "{verified}");
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(verified["report"]["tables"][0]["runs"], 2, "{verified}");
    assert_eq!(verified["report"]["tables"][0]["backfills"], 1, "{verified}");

    // The cursor moved back to before the late row, by the API's caller; then a run.
    let (ok, moved) = watch.invoke(
        r#"{"export": "contacts", "move_cursor": {"table": "contacts", "to": "2025-05-31 00:00:00", "by": "alice"}}"#,
    );
    assert!(ok, "{moved}");
    assert_eq!(moved["moved"]["to"]["value"], "2025-05-31 00:00:00", "{moved}");
    let (ok, again) = watch.invoke(r#"{"export": "contacts"}"#);
    assert!(ok, "{again}");
    assert_eq!(again["tables"][0]["rows"], 101, "every row after the moved cursor: {again}");
    let (ok, verified) = watch.invoke(r#"{"export": "contacts", "verify": {}}"#);
    assert!(ok && verified["verified"] == true, "{verified}");
    let kinds: Vec<&str> =
        verified["report"]["findings"].as_array().unwrap().iter().filter_map(|f| f["kind"].as_str()).collect();
    assert_eq!(kinds, ["cursor_moved"], "{verified}");
}

/// A bus whose `ExportAlert` events a rule puts on a new queue, as the stack's AlertsRule does
/// for its topic: returns the bus name, the queue client and its URL.
async fn alerts_queue(sdk: &aws_config::SdkConfig) -> (String, aws_sdk_sqs::Client, String) {
    let eb = aws_sdk_eventbridge::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let bus = unique_name("bus");
    eb.create_event_bus().name(&bus).send().await.unwrap();
    let url =
        sqs.create_queue().queue_name(unique_name("alerts")).send().await.unwrap().queue_url().unwrap().to_string();
    let arn_attr = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    let attrs = sqs.get_queue_attributes().queue_url(&url).attribute_names(arn_attr.clone()).send().await.unwrap();
    let arn = attrs.attributes().unwrap()[&arn_attr].clone();
    let rule = unique_name("alerts");
    let pattern = r#"{"source":["sluice"],"detail-type":["ExportAlert"]}"#;
    eb.put_rule().name(&rule).event_bus_name(&bus).event_pattern(pattern).send().await.unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder().id("q").arn(arn).build().unwrap();
    eb.put_targets().rule(&rule).event_bus_name(&bus).targets(target).send().await.unwrap();
    (bus, sqs, url)
}

/// The alert events on the queue so far (their details), waiting up to `wait` for the first.
async fn alerts_received(sqs: &aws_sdk_sqs::Client, url: &str, wait: i32) -> Vec<serde_json::Value> {
    let mut got = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            return got;
        }
        for m in out.messages() {
            let event: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(event["detail-type"], "ExportAlert", "{event}");
            got.push(event["detail"].clone());
            sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_queue_through_a_rule_once_per_incident_and_freshness_is_checked_on_its_own() {
    let moto = Moto::shared();
    let stack = Stack::new(moto).await;
    let (bus, sqs, url) = alerts_queue(&stack.sdk).await;
    let dir = tempfile::tempdir().unwrap();
    let config = contacts_export(dir.path(), 10, &stack.bucket);
    // On a schedule (the stack's rule), with a freshness of one second for the test.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[[export.table]]",
        "schedule = \"rate(15 minutes)\"\n\n[export.alerts]\nfreshness = \"1s\"\n\n[[export.table]]",
    );
    std::fs::write(&config, text).unwrap();
    let watch = Runtime::start(
        env!("CARGO_BIN_EXE_sluice-export"),
        &stack.env(moto, config.display().to_string(), &[("SLUICE_EVENT_BUS", &bus), ("SLUICE_SSE", "AES256")]),
    );

    // Never run: the first check starts the clock, the one after a second fires, once.
    let (ok, out) = watch.invoke(r#"{"check_alerts": true}"#);
    assert!(ok, "{out}");
    assert_eq!((out["checked"].as_u64(), out["alerts"].as_array().map(Vec::len)), (Some(1), Some(0)), "{out}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..2 {
        let (ok, out) = watch.invoke(r#"{"check_alerts": true}"#);
        assert!(ok, "{out}");
    }
    let got = alerts_received(&sqs, &url, 2).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0]["key"].as_str(), got[0]["status"].as_str()), (Some("freshness"), Some("firing")));
    assert!(got[0]["what"].as_str().unwrap().contains("has not succeeded"), "{}", got[0]);

    // The source gone: the run fails and opens failed_run; failing again opens nothing new.
    let db = dir.path().join("source.db");
    std::fs::rename(&db, dir.path().join("away.db")).unwrap();
    for _ in 0..2 {
        let (ok, err) = watch.invoke(r#"{"export": "contacts"}"#);
        assert!(!ok, "{err}");
    }
    let got = alerts_received(&sqs, &url, 2).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0]["key"].as_str(), got[0]["status"].as_str()), (Some("failed_run"), Some("firing")));
    assert!(got[0]["why"].as_str().unwrap().contains("source.db"), "{}", got[0]);

    // Back: the run succeeds, and both incidents resolve, pointing at the run's manifest.
    std::fs::rename(dir.path().join("away.db"), &db).unwrap();
    let (ok, summary) = watch.invoke(r#"{"export": "contacts"}"#);
    assert!(ok, "{summary}");
    let mut got = alerts_received(&sqs, &url, 2).await;
    got.sort_by_key(|a| a["key"].as_str().unwrap().to_string());
    let keys: Vec<(&str, &str)> =
        got.iter().map(|a| (a["key"].as_str().unwrap(), a["status"].as_str().unwrap())).collect();
    assert_eq!(keys, [("failed_run", "resolved"), ("freshness", "resolved")]);
    let manifest = got[0]["manifest"].as_str().unwrap();
    assert!(manifest.starts_with(&format!("s3://{}/exports/contacts/", stack.bucket)), "{manifest}");
    assert_eq!(got[0]["run_id"], summary["run_id"]);
}
