//! The AWS adapters against moto's server (S3, DynamoDB, EventBridge, SQS), started by the test
//! harness on a free loopback port. Each test works in its own uuid-named bucket or table.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::config::{Credentials, Region};
use sluice_aws::{DynamoHistory, EventBridgeSink, S3Store, PART_SIZE};
use sluice_core::ports::{HistoryStore, LeaseOwner, ObjectMeta, ObjectStore, RunRecord, RunState};
use sluice_core::run::{Ports, Quiet, Runner};
use sluice_core::spec::Config;
use sluice_core::value::{Watermark, Window};
use sluice_core::Error;
use sluice_local::SqliteSource;
use sluice_testkit::history::BeforeCommit;
use sluice_testkit::moto::{unique_name, Moto};
use sluice_testkit::{contacts_config, create_contacts, insert_contacts};
use std::path::Path;

async fn config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&Moto::shared().endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await
}

async fn bucket(cfg: &aws_config::SdkConfig) -> (aws_sdk_s3::Client, String) {
    let s3 = sluice_aws::s3_client(cfg);
    let name = unique_name("b");
    s3.create_bucket().bucket(&name).send().await.unwrap();
    (s3, name)
}

async fn table(cfg: &aws_config::SdkConfig) -> (aws_sdk_dynamodb::Client, String) {
    let ddb = aws_sdk_dynamodb::Client::new(cfg);
    let name = unique_name("history");
    DynamoHistory::create_table(&ddb, &name).await.unwrap();
    (ddb, name)
}

const TIMESTAMP: &str = "{ strategy = \"timestamp\", column = \"updated_at\" }";

/// A contacts table of `rows` rows in `dir`, a config exporting it, and the source reading it.
fn contacts(dir: &Path, rows: i64, incremental: &str, format: &str) -> (Config, SqliteSource) {
    let db = dir.join("source.db");
    insert_contacts(&create_contacts(&db), 1, rows, "2025-06-01 00:00:00");
    (Config::load(&contacts_config(dir, incremental, format), sluice_local::KINDS).unwrap(), SqliteSource::new(db))
}

/// For whole-export tests: a bucket, a history table, and a bus whose `sluice` events reach an
/// SQS queue, each the test's own.
struct Stack {
    cfg: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    b: String,
    ddb: aws_sdk_dynamodb::Client,
    t: String,
    bus: String,
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl Stack {
    async fn new() -> Stack {
        let cfg = config().await;
        let (s3, b) = bucket(&cfg).await;
        let (ddb, t) = table(&cfg).await;
        let bus = unique_name("bus");
        let (sqs, url) = events_queue(&cfg, &bus).await;
        Stack { cfg, s3, b, ddb, t, bus, sqs, url }
    }
}

fn meta() -> ObjectMeta {
    ObjectMeta { content_type: "text/csv".into(), content_encoding: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_keeps_the_object_store_contract() {
    let cfg = config().await;
    let (s3, b) = bucket(&cfg).await;
    let store = S3Store::new(s3, &b, "exports/", None);
    assert_eq!(store.location(), format!("s3://{b}/exports"));
    sluice_testkit::object_store::check_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_streams_as_a_multipart_upload_and_an_aborted_one_leaves_nothing() {
    let cfg = config().await;
    let (s3, b) = bucket(&cfg).await;
    let store = S3Store::new(s3.clone(), &b, "", None);

    // 2.5 parts of data in 1 MiB chunks.
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let chunks = (PART_SIZE * 5 / 2) / chunk.len();
    let mut w = store.create("big.csv", &meta()).await.unwrap();
    for _ in 0..chunks {
        w.write(&chunk).await.unwrap();
    }
    assert_eq!(w.finish().await.unwrap(), (chunks * chunk.len()) as u64);
    let head = s3.head_object().bucket(&b).key("big.csv").send().await.unwrap();
    assert!(head.e_tag().unwrap().ends_with("-3\""), "a 3-part multipart ETag, got {:?}", head.e_tag());
    assert_eq!(head.content_length(), Some((chunks * chunk.len()) as i64));
    let back = store.get("big.csv").await.unwrap().unwrap();
    assert!(back.chunks(chunk.len()).all(|c| c == chunk.as_slice()));

    let mut w = store.create("aborted.csv", &meta()).await.unwrap();
    for _ in 0..(PART_SIZE / chunk.len() + 1) {
        w.write(&chunk).await.unwrap();
    }
    w.abort().await.unwrap();
    let uploads = s3.list_multipart_uploads().bucket(&b).send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "no orphaned upload: {:?}", uploads.uploads());
    assert_eq!(store.get("aborted.csv").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_history_keeps_the_lease_and_commit_contract() {
    let cfg = config().await;
    let (ddb, t) = table(&cfg).await;
    sluice_testkit::history::check_contract(&DynamoHistory::new(ddb, &t)).await;
}

/// An SQS queue that receives every `sluice` event on `bus` through a rule.
async fn events_queue(cfg: &aws_config::SdkConfig, bus: &str) -> (aws_sdk_sqs::Client, String) {
    let eb = aws_sdk_eventbridge::Client::new(cfg);
    let sqs = aws_sdk_sqs::Client::new(cfg);
    eb.create_event_bus().name(bus).send().await.unwrap();
    let q = sqs.create_queue().queue_name(unique_name("q")).send().await.unwrap();
    let url = q.queue_url().unwrap().to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attrs.attributes().unwrap().get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).unwrap().clone();
    let rule = unique_name("r");
    eb.put_rule().name(&rule).event_bus_name(bus).event_pattern(r#"{"source":["sluice"]}"#).send().await.unwrap();
    eb.put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("q").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();
    (sqs, url)
}

async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> serde_json::Value {
    for _ in 0..20 {
        let out = sqs.receive_message().queue_url(url).wait_time_seconds(1).send().await.unwrap();
        if let Some(m) = out.messages().first() {
            return serde_json::from_str(m.body().unwrap()).unwrap();
        }
    }
    panic!("no event arrived on the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_writes_parts_and_manifest_to_s3_history_to_dynamodb_and_an_event_to_eventbridge() {
    let Stack { cfg, s3, b, ddb, t, bus, sqs, url } = Stack::new().await;

    // GIVEN a table whose one CSV part is larger than an S3 part, so the multipart path runs.
    let dir = tempfile::tempdir().unwrap();
    let (spec, source) =
        contacts(dir.path(), 200_000, TIMESTAMP, "{ compression = \"none\", max_file_size = \"64MiB\" }");
    let store = S3Store::new(s3.clone(), &b, "exports", Some(sluice_aws::Encryption::S3));
    let history = DynamoHistory::new(ddb, &t);
    let events = EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&cfg), &bus);
    let opts = sluice_testkit::run_options();

    // WHEN it runs
    let ports = Ports { source: &source, store: &store, history: &history, events: &events };
    let summary = Runner::new(ports, &Quiet).run(&spec.exports[0], &opts).await.unwrap();

    // THEN the manifest lists a part that is really in S3, byte for byte
    assert!(summary.succeeded, "{:?}", summary.error);
    assert_eq!(summary.rows, 200_000);
    let key = summary.tables[0].manifest_key.clone().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&store.get(&key).await.unwrap().unwrap()).unwrap();
    let part = &manifest["parts"][0];
    assert!(part["bytes"].as_u64().unwrap() > PART_SIZE as u64, "the part spans several S3 parts");
    let head =
        s3.head_object().bucket(&b).key(format!("exports/{}", part["key"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(head.content_length(), part["bytes"].as_i64());
    assert!(head.e_tag().unwrap().contains('-'), "uploaded as multipart");
    assert_eq!(head.content_type(), Some("text/csv"));
    // the watermark is in DynamoDB
    assert_eq!(
        history.watermark("contacts", "contacts").await.unwrap().unwrap().watermark,
        summary.tables[0].window.high.clone().unwrap()
    );
    // and the event reached the queue through the rule
    let event = receive(&sqs, &url).await;
    assert_eq!(event["detail-type"], "ExportSucceeded");
    assert_eq!(event["source"], "sluice");
    assert_eq!(event["detail"]["rows"], 200_000);
    assert!(s3.list_multipart_uploads().bucket(&b).send().await.unwrap().uploads().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_refuses_the_run_naming_the_holder() {
    let cfg = config().await;
    let (s3, b) = bucket(&cfg).await;
    let (ddb, t) = table(&cfg).await;
    let history = DynamoHistory::new(ddb, &t);
    let holder = LeaseOwner { run_id: "scheduled-run".into(), host: "lambda-9".into(), pid: 1 };
    history.acquire_lease("contacts", &holder, Duration::from_secs(300)).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (spec, source) = contacts(dir.path(), 0, "{ strategy = \"full\" }", "{ compression = \"none\" }");
    let store = S3Store::new(s3, &b, "", None);
    let events = sluice_local::JsonlEventLog::new(dir.path().join("events.jsonl"));
    let opts = sluice_testkit::run_options();
    let ports = Ports { source: &source, store: &store, history: &history, events: &events };
    let err = Runner::new(ports, &Quiet).run(&spec.exports[0], &opts).await.unwrap_err();
    assert!(matches!(err, Error::LeaseHeld { .. }));
    assert!(err.to_string().contains("scheduled-run") && err.to_string().contains("lambda-9"), "{err}");
    assert!(store.list("").await.unwrap().is_empty());
}

/// The real S3 store, with S3 losing the multipart upload (aborted out of band) once the first
/// part of an object is up: the next UploadPart really fails in S3.
struct UploadLost {
    inner: S3Store,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

struct UploadLostWriter {
    inner: Box<dyn sluice_core::ports::ObjectWriter>,
    s3: aws_sdk_s3::Client,
    bucket: String,
    written: usize,
    struck: bool,
}

#[async_trait::async_trait]
impl sluice_core::ports::ObjectWriter for UploadLostWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), sluice_core::BoxError> {
        self.inner.write(chunk).await?;
        self.written += chunk.len();
        if !self.struck && self.written > PART_SIZE * 2 {
            self.struck = true;
            let uploads = self.s3.list_multipart_uploads().bucket(&self.bucket).send().await.unwrap();
            for u in uploads.uploads() {
                self.s3
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(u.key().unwrap())
                    .upload_id(u.upload_id().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<u64, sluice_core::BoxError> {
        self.inner.finish().await
    }
    async fn abort(self: Box<Self>) -> Result<(), sluice_core::BoxError> {
        self.inner.abort().await
    }
}

#[async_trait::async_trait]
impl ObjectStore for UploadLost {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn create(
        &self,
        key: &str,
        meta: &ObjectMeta,
    ) -> Result<Box<dyn sluice_core::ports::ObjectWriter>, sluice_core::BoxError> {
        let inner = self.inner.create(key, meta).await?;
        Ok(Box::new(UploadLostWriter {
            inner,
            s3: self.s3.clone(),
            bucket: self.bucket.clone(),
            written: 0,
            struck: false,
        }))
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), sluice_core::BoxError> {
        self.inner.put(key, bytes, meta).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, sluice_core::BoxError> {
        self.inner.get(key).await
    }
    async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, sluice_core::BoxError> {
        self.inner.get_tagged(key).await
    }
    async fn read(&self, key: &str) -> Result<Option<sluice_core::ports::ByteStream>, sluice_core::BoxError> {
        self.inner.read(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), sluice_core::BoxError> {
        self.inner.delete(key).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, sluice_core::BoxError> {
        self.inner.delete_prefix(prefix).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, sluice_core::BoxError> {
        self.inner.list(prefix).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_failure_mid_upload_leaves_no_manifest_no_upload_the_old_watermark_and_an_export_failed_event() {
    let Stack { cfg, s3, b, ddb, t, bus, sqs, url } = Stack::new().await;

    let dir = tempfile::tempdir().unwrap();
    let (spec, source) =
        contacts(dir.path(), 400_000, TIMESTAMP, "{ compression = \"none\", max_file_size = \"64MiB\" }");
    let store = UploadLost { inner: S3Store::new(s3.clone(), &b, "exports", None), s3: s3.clone(), bucket: b.clone() };
    let history = DynamoHistory::new(ddb, &t);
    let events = EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&cfg), &bus);
    let opts = sluice_testkit::run_options();
    let ports = Ports { source: &source, store: &store, history: &history, events: &events };
    let summary = Runner::new(ports, &Quiet).run(&spec.exports[0], &opts).await.unwrap();

    assert!(!summary.succeeded);
    let err = summary.tables[0].error.clone().unwrap();
    assert!(err.contains("UploadPart") || err.contains("CompleteMultipartUpload"), "{err}");
    assert!(store.list("").await.unwrap().is_empty(), "no part and no manifest stays behind");
    assert!(s3.list_multipart_uploads().bucket(&b).send().await.unwrap().uploads().is_empty());
    assert!(history.watermark("contacts", "contacts").await.unwrap().is_none());
    assert_eq!(history.runs("contacts", 5).await.unwrap()[0].state, RunState::Failed);
    let event = receive(&sqs, &url).await;
    assert_eq!(event["detail-type"], "ExportFailed");
    assert!(history.lease("contacts").await.unwrap().is_none(), "lease released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_refused_because_the_watermark_moved_leaves_no_manifest_and_publishes_export_failed() {
    let Stack { cfg, s3, b, ddb, t, bus, sqs, url } = Stack::new().await;

    let dir = tempfile::tempdir().unwrap();
    let (spec, source) = contacts(dir.path(), 500, TIMESTAMP, "{ compression = \"gzip\" }");
    let store = S3Store::new(s3, &b, "exports", None);
    let dynamo = DynamoHistory::new(ddb.clone(), &t);
    // Another writer moves the watermark just before the run commits.
    let history = BeforeCommit::new(&dynamo, move || {
        use aws_sdk_dynamodb::types::AttributeValue::S;
        let put = ddb
            .put_item()
            .table_name(&t)
            .item("pk", S("EXPORT#contacts".into()))
            .item("sk", S("WATERMARK#contacts".into()))
            .item("table_name", S("contacts".into()))
            .item("watermark", S(r#"{"type":"text","value":"9999"}"#.into()))
            .item("last_export", S("9999".into()))
            .item("run_id", S("intruder".into()))
            .item("committed_at", S("2026-01-01T00:00:00Z".into()));
        Box::pin(async move {
            put.send().await.unwrap();
        })
    });
    let events = EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&cfg), &bus);
    let opts = sluice_testkit::run_options();
    let ports = Ports { source: &source, store: &store, history: &history, events: &events };
    let summary = Runner::new(ports, &Quiet).run(&spec.exports[0], &opts).await.unwrap();

    assert!(!summary.succeeded);
    assert!(summary.tables[0].error.as_deref().unwrap().contains("watermark moved"), "{:?}", summary.tables[0].error);
    assert!(store.list("").await.unwrap().is_empty(), "the manifest and parts were removed");
    let found = dynamo.watermark("contacts", "contacts").await.unwrap().unwrap();
    assert_eq!(found.run_id, "intruder", "the other writer's watermark stands");
    assert_eq!(dynamo.runs("contacts", 5).await.unwrap()[0].state, RunState::Failed);
    assert_eq!(receive(&sqs, &url).await["detail-type"], "ExportFailed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_ledger_in_dynamodb_keeps_its_contract() {
    let (ddb, t) = table(&config().await).await;
    sluice_testkit::ledger::check_contract(&DynamoHistory::new(ddb, &t)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_in_dynamodb_keeps_its_contract() {
    let (ddb, t) = table(&config().await).await;
    let dir = tempfile::tempdir().unwrap();
    sluice_testkit::catalog::check_contract(&DynamoHistory::new(ddb, &t), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_in_dynamodb_keep_their_contract() {
    let (ddb, t) = table(&config().await).await;
    let dir = tempfile::tempdir().unwrap();
    sluice_testkit::alerts::check_contract(&DynamoHistory::new(ddb, &t), dir.path()).await;
}

#[tokio::test]
async fn secrets_manager_returns_the_secret_and_names_a_missing_one() {
    use sluice_core::ports::Secrets;
    let cfg = config().await;
    let client = aws_sdk_secretsmanager::Client::new(&cfg);
    let name = unique_name("sluice/snowflake");
    client.create_secret().name(&name).secret_string(r#"{"password":"s3cret"}"#).send().await.unwrap();
    let secrets = sluice_aws::SecretsManager::new(client);
    assert_eq!(secrets.secret_string(&name).await.unwrap(), r#"{"password":"s3cret"}"#);
    let err = secrets.secret_string("sluice/absent").await.unwrap_err().to_string();
    assert!(err.contains("\"sluice/absent\"") && err.contains("not found"), "{err}");
}

/// The `check` strategy on S3 and DynamoDB: a state larger than an S3 part is written as a
/// multipart upload, read back as a stream by the next run, and removed once that run commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_table_keeps_its_state_in_s3_and_exports_only_what_changed() {
    let cfg = config().await;
    let (s3, b) = bucket(&cfg).await;
    let (ddb, t) = table(&cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let check = "{ strategy = \"check\", key = [\"id\"], columns = [\"email\", \"name\"], deletes = true }";
    let (spec, source) = contacts(dir.path(), 1_000_000, check, "{ compression = \"zstd\" }");
    let store = S3Store::new(s3.clone(), &b, "exports", None);
    let history = DynamoHistory::new(ddb, &t);
    let events = sluice_local::JsonlEventLog::new(dir.path().join("events.jsonl"));
    let ports = Ports { source: &source, store: &store, history: &history, events: &events };
    let first = Runner::new(ports, &Quiet).run(&spec.exports[0], &sluice_testkit::run_options()).await.unwrap();
    assert!(first.succeeded, "{:?}", first.error);
    let Some(Watermark::Text(state)) = history.watermark("contacts", "contacts").await.unwrap().map(|w| w.watermark)
    else {
        panic!("a check table's watermark is its state's key")
    };
    let head = s3.head_object().bucket(&b).key(format!("exports/{state}")).send().await.unwrap();
    assert!(head.content_length().unwrap() > PART_SIZE as i64, "the state spans several S3 parts");

    let db = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    db.execute_batch(
        "UPDATE contacts SET email = 'moved@example.com' WHERE id % 1000 = 0; DELETE FROM contacts WHERE id = 17;",
    )
    .unwrap();
    let second = Runner::new(ports, &Quiet).run(&spec.exports[0], &sluice_testkit::run_options()).await.unwrap();
    assert!(second.succeeded, "{:?}", second.error);
    let c = second.tables[0].changes.unwrap();
    assert_eq!((c.inserts, c.updates, c.deletes, c.unchanged), (0, 1000, 1, 998_999));
    assert!(store.get(&state).await.unwrap().is_none(), "the state it compared with is removed");
    assert!(s3.list_multipart_uploads().bucket(&b).send().await.unwrap().uploads().is_empty());
}

/// Every item of the table, as (pk, sk) pairs, sorted.
async fn keys(ddb: &aws_sdk_dynamodb::Client, t: &str) -> Vec<(String, String)> {
    let out = ddb.scan().table_name(t).send().await.unwrap();
    let text = |i: &std::collections::HashMap<String, AttributeValue>, k: &str| i[k].as_s().unwrap().clone();
    let mut keys: Vec<_> = out.items().iter().map(|i| (text(i, "pk"), text(i, "sk"))).collect();
    keys.sort();
    keys
}

fn open_run(export: &str, table: &str, run_id: &str) -> RunRecord {
    RunRecord {
        export: export.into(),
        table: table.into(),
        run_id: run_id.into(),
        state: RunState::Running,
        strategy: sluice_core::strategy::Strategy::Full,
        full_refresh: false,
        window: Window { low: None, high: None },
        base_watermark: None,
        rows: 0,
        bytes: 0,
        parts: 0,
        null_rows: 0,
        prefix: format!("{export}/{table}/{run_id}"),
        manifest_key: format!("{export}/{table}/{run_id}/manifest.json"),
        started_at: chrono::Utc::now(),
        finished_at: None,
        error: None,
        changes: None,
        late_rows: 0,
        backfill: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_runs_read_only_their_markers_and_run_records_expire_with_the_retention() {
    let cfg = config().await;
    let (ddb, t) = table(&cfg).await;
    let h = DynamoHistory::new(ddb.clone(), &t).with_record_ttl(Some(Duration::from_secs(30 * 86_400)));
    let me = LeaseOwner { run_id: "20261130T000000Z-0000000a".into(), host: "lambda-1".into(), pid: 7 };
    let lease = h.acquire_lease("e", &me, Duration::from_secs(60)).await.unwrap();
    // A long history of finished runs, and two open ones.
    for i in 0..30 {
        let run = open_run("e", "contacts", &format!("20261129T0000{i:02}Z-0000000b"));
        h.begin_run(&lease, &run).await.unwrap();
        h.commit_run(&lease, &run, None, None).await.unwrap();
    }
    let (a, b) =
        (open_run("e", "contacts", "20261130T000001Z-0000000c"), open_run("e", "orders", "20261130T000001Z-0000000c"));
    h.begin_run(&lease, &a).await.unwrap();
    h.begin_run(&lease, &b).await.unwrap();
    let open = h.open_runs("e").await.unwrap();
    assert_eq!(open.iter().map(|r| r.table.as_str()).collect::<Vec<_>>(), ["contacts", "orders"]);
    // Reading them costs the markers, not the history: DynamoDB counts what a query scanned.
    let scanned = ddb
        .query()
        .table_name(&t)
        .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
        .expression_attribute_values(":pk", AttributeValue::S("EXPORT#e".into()))
        .expression_attribute_values(":p", AttributeValue::S("OPEN#".into()))
        .send()
        .await
        .unwrap()
        .scanned_count();
    assert_eq!(scanned, 2);
    // Failing one and committing the other closes both markers.
    h.fail_run(&RunRecord { error: Some("stopped".into()), ..a.clone() }).await.unwrap();
    h.commit_run(&lease, &b, None, None).await.unwrap();
    assert!(h.open_runs("e").await.unwrap().is_empty());
    assert!(keys(&ddb, &t).await.iter().all(|(_, sk)| !sk.starts_with("OPEN#")));
    // Run records carry the TTL (30 days from now); the watermark and lease do not expire that way.
    let items = ddb.scan().table_name(&t).send().await.unwrap();
    let now = chrono::Utc::now().timestamp();
    for item in items.items() {
        let sk = item["sk"].as_s().unwrap();
        let ttl = item.get("ttl").map(|v| v.as_n().unwrap().parse::<i64>().unwrap());
        if sk.starts_with("RUN#") {
            let ttl = ttl.unwrap_or_else(|| panic!("{sk} has no ttl"));
            assert!((ttl - now - 30 * 86_400).abs() < 120, "{sk}: {ttl}");
        } else if sk.starts_with("WATERMARK#") {
            assert!(ttl.is_none(), "{sk}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_items_live_apart_from_runs_and_an_old_table_is_migrated_once() {
    let cfg = config().await;
    let (ddb, t) = table(&cfg).await;
    let h = DynamoHistory::new(ddb.clone(), &t);
    let dir = tempfile::tempdir().unwrap();
    let config = sluice_testkit::catalog::sources_config(dir.path());
    let exports = sluice_core::catalog::Exports { catalog: &h, config: &config, who: "alice".into() };
    exports.create(sluice_testkit::catalog::CONTACTS).await.unwrap();
    exports.edit("crm", &sluice_core::catalog::Edit::SetDestination("elsewhere".into()), None).await.unwrap();
    // The control functions' items are all under CATALOG partitions: IAM tells them apart from
    // the export's runs, watermarks and lease.
    let now = keys(&ddb, &t).await;
    assert!(now.iter().all(|(pk, _)| pk == "CATALOG" || pk == "CATALOG#crm"), "{now:?}");
    let versions = now.iter().filter(|(pk, _)| pk == "CATALOG#crm").count() as u64;
    assert!(versions >= 3, "definitions and audit records: {now:?}");
    let entry = sluice_core::catalog::Catalog::entry(&h, "crm").await.unwrap().unwrap();
    let draft = entry.draft_version.unwrap();

    // The layout of Sluice before 0.2: definitions and audit records under EXPORT#crm, and an
    // open run without its marker.
    let out = ddb.scan().table_name(&t).send().await.unwrap();
    for item in out.items().iter().filter(|i| i["pk"].as_s().unwrap() == "CATALOG#crm") {
        let mut old = item.clone();
        old.insert("pk".into(), AttributeValue::S("EXPORT#crm".into()));
        ddb.put_item().table_name(&t).set_item(Some(old)).send().await.unwrap();
        ddb.delete_item()
            .table_name(&t)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
    }
    let stranded = open_run("crm", "contacts", "20261130T000000Z-0000000d");
    ddb.put_item()
        .table_name(&t)
        .item("pk", AttributeValue::S("EXPORT#crm".into()))
        .item("sk", AttributeValue::S(format!("RUN#x#{}#contacts", stranded.run_id)))
        .item("state", AttributeValue::S("running".into()))
        .item("record", AttributeValue::S(serde_json::to_string(&stranded).unwrap()))
        .send()
        .await
        .unwrap();
    // Reading an old definition says what to do rather than "no such version".
    let shown = sluice_core::catalog::Catalog::definition(&h, "crm", draft).await.unwrap_err();
    let shown = sluice_core::run::error_chain(&shown);
    assert!(shown.contains("sluice migrate --history dynamodb://"), "{shown}");
    assert!(h.open_runs("crm").await.unwrap().is_empty(), "no marker yet");

    let done = h.migrate().await.unwrap();
    assert_eq!((done.catalog_items_moved, done.open_markers_added), (versions, 1));
    let after = keys(&ddb, &t).await;
    assert!(
        after.iter().all(|(pk, sk)| pk != "EXPORT#crm" || sk.starts_with("RUN#") || sk.starts_with("OPEN#")),
        "{after:?}"
    );
    assert_eq!(sluice_core::catalog::Catalog::definition(&h, "crm", draft).await.unwrap().unwrap().version, draft);
    assert_eq!(sluice_core::catalog::Catalog::audit(&h, "crm", 10).await.unwrap().len(), 2);
    assert_eq!(h.open_runs("crm").await.unwrap()[0].run_id, stranded.run_id);
    // Again: nothing left to do, nothing changed.
    assert_eq!(h.migrate().await.unwrap(), sluice_aws::Migration::default());
    assert_eq!(keys(&ddb, &t).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_keeps_the_event_sink_contract() {
    use futures::FutureExt;
    let cfg = config().await;
    let bus = unique_name("bus");
    let (sqs, url) = events_queue(&cfg, &bus).await;
    let sink = EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&cfg), &bus);
    // Events reach the queue through the rule, in no promised order: wait for both.
    let received = || {
        let (sqs, url) = (sqs.clone(), url.clone());
        async move {
            let mut entries = Vec::new();
            for _ in 0..20 {
                let out = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .unwrap();
                for m in out.messages() {
                    entries.push(serde_json::from_str(m.body().unwrap()).unwrap());
                }
                if entries.len() >= 2 {
                    break;
                }
            }
            entries
        }
        .boxed()
    };
    sluice_testkit::events::check_contract(&sink, &received).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_rules_keep_the_scheduler_contract() {
    use futures::FutureExt;
    use sluice_testkit::scheduler::Held;
    let cfg = config().await;
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let target = "arn:aws:lambda:us-east-1:123456789012:function:sluice-export";
    let scheduler = sluice_aws::EventBridgeScheduler::new(eb.clone(), &unique_name("orch-"), target);
    let inspect = |rule: String| {
        let eb = eb.clone();
        async move {
            let described = eb.describe_rule().name(&rule).send().await.ok()?;
            let targets = eb.list_targets_by_rule().rule(&rule).send().await.ok()?;
            let input = targets.targets().first().and_then(|t| t.input()).map(|i| serde_json::from_str(i).unwrap());
            Some(Held {
                schedule: described.schedule_expression().unwrap_or_default().to_string(),
                enabled: described.state() == Some(&aws_sdk_eventbridge::types::RuleState::Enabled),
                input: input.unwrap_or_default(),
            })
        }
        .boxed()
    };
    sluice_testkit::scheduler::check_contract(&scheduler, Some(&inspect)).await;
}

/// `verify` on S3 with a DynamoDB history: a clean chain passes, and each tampering is named.
#[tokio::test(flavor = "multi_thread")]
async fn verify_proves_a_chain_in_s3_and_names_each_tampering() {
    let cfg = config().await;
    let (s3, b) = bucket(&cfg).await;
    let (ddb, t) = table(&cfg).await;
    let (_, empty) = table(&cfg).await;
    let store = S3Store::new(s3, &b, "exports", None);
    let history = DynamoHistory::new(ddb.clone(), &t);
    let dir = tempfile::tempdir().unwrap();
    let events = sluice_local::JsonlEventLog::new(dir.path().join("events.jsonl"));
    let chain = sluice_testkit::verify::make_chain(dir.path(), &store, &history, &events).await;
    sluice_testkit::verify::check_verify(&store, &history, &DynamoHistory::new(ddb, &empty), &chain).await;
}

/// The streamed listing pages past S3's 1,000 keys a page, in the order `list` gives.
#[tokio::test(flavor = "multi_thread")]
async fn the_streamed_listing_pages_past_a_thousand_keys() {
    use futures::StreamExt;
    let cfg = config().await;
    let (s3, b) = bucket(&cfg).await;
    let store = S3Store::new(s3, &b, "exports", None);
    let keys: Vec<String> = (0..1010).map(|i| format!("e/t/r{:04}/part-00000.csv", 1009 - i)).collect();
    let meta = meta();
    futures::stream::iter(keys.iter())
        .map(|k| store.put(k, b"x".to_vec(), &meta))
        .buffer_unordered(32)
        .for_each(|r| async move { r.unwrap() })
        .await;
    let streamed: Vec<String> = store.list_stream("e").map(|k| k.unwrap()).collect().await;
    assert_eq!(streamed.len(), 1010);
    assert_eq!(streamed, store.list("e").await.unwrap());
    assert!(streamed.windows(2).all(|w| w[0] < w[1]), "sorted");
}
