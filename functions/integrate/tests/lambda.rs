//! The real integration function under `cargo lambda watch`, fed the events moto's S3 really
//! produces for a run's manifest: S3 → SQS notifications (an `s3:TestEvent` first, URL-encoded
//! keys) and S3 → EventBridge → SQS (with its spurious "Object Tags Added"), wrapped as Lambda's
//! SQS event source wraps them. The API is the fake one in this process.

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::types::{
    Event, EventBridgeConfiguration, FilterRule, FilterRuleName, NotificationConfiguration,
    NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

use sluice_aws::{DynamoHistory, EventBridgeSink, S3Store};
use sluice_core::run::{Ports, Quiet, Runner};
use sluice_local::SqliteSource;
use sluice_testkit::api::{FakeApi, Fault, Shape};
use sluice_testkit::moto::{unique_name, Moto};
use sluice_testkit::runtime::Runtime;
use sluice_testkit::{create_contacts, insert_contacts, run_options};

struct Stack {
    moto: &'static Moto,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    eb: aws_sdk_eventbridge::Client,
    ddb: aws_sdk_dynamodb::Client,
    bucket: String,
    table: String,
    dir: tempfile::TempDir,
    api: FakeApi,
}

impl Stack {
    async fn new() -> Stack {
        let moto = Moto::shared();
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
        Stack {
            moto,
            s3,
            sqs: aws_sdk_sqs::Client::new(&sdk),
            eb: aws_sdk_eventbridge::Client::new(&sdk),
            ddb,
            bucket,
            table,
            dir: tempfile::tempdir().unwrap(),
            api: FakeApi::start(Shape::Webhook),
        }
    }

    async fn queue(&self) -> (String, String) {
        let url = self.sqs.create_queue().queue_name(unique_name("q")).send().await.unwrap().queue_url.unwrap();
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let arn = attrs.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
        (url, arn)
    }

    /// Every message on the queue, wrapped as Lambda's SQS event source wraps a batch.
    async fn drain(&self, url: &str) -> Value {
        let mut records = Vec::new();
        let mut idle = 0;
        while idle < 2 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            if out.messages().is_empty() {
                idle += 1;
            }
            for m in out.messages() {
                records.push(json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                    "attributes": {}, "messageAttributes": {}, "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1",
                }));
            }
        }
        json!({ "Records": records })
    }

    fn config(&self, integration: &str) -> String {
        format!(
            "version = 1\n[sources.db]\nkind = \"sqlite\"\npath = \"{}\"\n\n[[export]]\nname = \"contacts\"\nsource = \"db\"\n\
             destination = \"s3://{}/exports\"\nformat = {{ compression = \"zstd\", max_file_size = 8000 }}\n\n\
             [[export.table]]\nname = \"contacts\"\nincremental = {{ strategy = \"full\" }}\n\n\
             [integrations.hook]\nkind = \"webhook\"\nexport = \"contacts\"\nurl = \"{}/contacts\"\nbatch_size = 25\n\
             timeout = \"2s\"\ntoken = \"env:HOOK_TOKEN\"\n{integration}\n",
            self.dir.path().join("source.db").display(),
            self.bucket,
            self.api.url
        )
    }

    /// Exports `rows` contacts to S3 as the export function would; returns the manifest's key.
    async fn export(&self, rows: i64, config: &str) -> String {
        insert_contacts(&create_contacts(&self.dir.path().join("source.db")), 1, rows, "2026-01-01 00:00:00");
        self.run(config).await
    }

    /// One more run of the export over the table as it is; returns the manifest's key.
    async fn run(&self, config: &str) -> String {
        let config = sluice_connect::parse_config(&self.dir.path().join("sluice.toml"), config).unwrap();
        let source = SqliteSource::new(self.dir.path().join("source.db"));
        let store = S3Store::new(self.s3.clone(), &self.bucket, "exports", None);
        let history = DynamoHistory::new(self.ddb.clone(), &self.table);
        let events = EventBridgeSink::new(self.eb.clone(), "default");
        let ports = Ports { source: &source, store: &store, history: &history, events: &events };
        let summary = Runner::new(ports, &Quiet).run(&config.exports[0], &run_options()).await.unwrap();
        assert!(summary.succeeded, "{summary:?}");
        summary.tables[0].manifest_key.clone().unwrap()
    }

    async fn watch(&self, config: &str, extra: &[(&str, &str)]) -> Runtime {
        let key = "config/sluice.toml";
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(config.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
        let mut env = vec![
            ("AWS_ENDPOINT_URL", self.moto.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("SLUICE_CONFIG", format!("s3://{}/{key}", self.bucket)),
            ("SLUICE_INTEGRATION", "hook".to_string()),
            ("SLUICE_HISTORY_TABLE", self.table.clone()),
            ("HOOK_TOKEN", "hook-token".to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        Runtime::start(env!("CARGO_BIN_EXE_sluice-integrate"), &env)
    }

    fn applied_ids(&self) -> BTreeSet<i64> {
        let mut ids = BTreeSet::new();
        for r in self.api.applied() {
            let id = r["id"].as_i64().unwrap();
            assert!(ids.insert(id), "record {id} applied twice");
        }
        ids
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_reaches_the_api_once_through_s3_notifications_and_eventbridge() {
    let stack = Stack::new().await;
    let (s3_queue, s3_arn) = stack.queue().await;
    let (eb_queue, eb_arn) = stack.queue().await;
    // S3 → SQS for manifests, and S3 → EventBridge → SQS for everything in the bucket.
    let suffix = FilterRule::builder().name(FilterRuleName::Suffix).value("manifest.json").build();
    let filter =
        NotificationConfigurationFilter::builder().key(S3KeyFilter::builder().filter_rules(suffix).build()).build();
    let to_queue =
        QueueConfiguration::builder().queue_arn(&s3_arn).events(Event::S3ObjectCreated).filter(filter).build().unwrap();
    let notifications = NotificationConfiguration::builder()
        .queue_configurations(to_queue)
        .event_bridge_configuration(EventBridgeConfiguration::builder().build())
        .build();
    stack
        .s3
        .put_bucket_notification_configuration()
        .bucket(&stack.bucket)
        .notification_configuration(notifications)
        .send()
        .await
        .unwrap();
    let rule = unique_name("manifests");
    let pattern = json!({"source": ["aws.s3"], "detail": {"bucket": {"name": [stack.bucket]}}}).to_string();
    stack.eb.put_rule().name(&rule).event_pattern(pattern).send().await.unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder().id("q").arn(&eb_arn).build().unwrap();
    stack.eb.put_targets().rule(&rule).targets(target).send().await.unwrap();

    let config = stack.config("");
    let manifest = stack.export(300, &config).await;
    let watch = stack.watch(&config, &[]).await;

    // Through the S3 notification: the test event, then the manifest's record.
    let event = stack.drain(&s3_queue).await;
    let bodies: Vec<String> =
        event["Records"].as_array().unwrap().iter().map(|r| r["body"].as_str().unwrap().to_string()).collect();
    assert!(bodies.iter().any(|b| b.contains("s3:TestEvent")), "{bodies:?}");
    let (ok, out) = watch.invoke(&event.to_string());
    assert!(ok, "{out}");
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    assert_eq!(stack.applied_ids(), (1..=300).collect(), "every row delivered once");
    let requests = stack.api.requests();
    assert_eq!(requests.len(), 12);
    assert!(requests.iter().all(|r| r.headers["authorization"] == "Bearer hook-token"));

    // Through EventBridge: parts, the manifest, tag events. The manifest is a duplicate now.
    let event = stack.drain(&eb_queue).await;
    let bodies = event["Records"].as_array().unwrap().iter().map(|r| r["body"].as_str().unwrap().to_string());
    assert!(
        bodies.clone().any(|b| b.contains(&manifest) && b.contains("Object Created")),
        "the manifest's event arrived"
    );
    let (ok, out) = watch.invoke(&event.to_string());
    assert!(ok, "{out}");
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    assert_eq!(stack.api.requests().len(), 12, "a duplicate event sends nothing");

    // A direct invocation of it: still a duplicate; an event of no known shape: named.
    let (ok, out) = watch.invoke(&json!({"manifest": format!("s3://{}/exports/{manifest}", stack.bucket)}).to_string());
    assert!(ok && out["deliveries"][0]["duplicate"].is_string(), "{out}");
    let (ok, out) = watch.invoke(r#"{"hello": "world"}"#);
    assert!(!ok && out.to_string().contains("Sluice.InvalidEvent") && out.to_string().contains("hello"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_stopped_by_its_deadline_is_resumed_by_the_retried_message() {
    let stack = Stack::new().await;
    // 40 requests at 10 per second: four seconds of work for invocations that stop after one.
    let config = stack.config("rate_limit = \"10/s\"\nmax_in_flight = 2").replace("batch_size = 25", "batch_size = 10");
    let manifest = stack.export(400, &config).await;
    let body = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": stack.bucket}, "object": {"key": format!("exports/{manifest}")}}}]});
    let event = json!({"Records": [{"messageId": "m-1", "body": body.to_string(), "eventSource": "aws:sqs"}]});
    // The runtime gives each invocation ten minutes; keeping all but about a second of them
    // back makes every invocation stop early, as one that runs into its timeout does.
    let watch = stack.watch(&config, &[("SLUICE_DEADLINE_MARGIN", "599s")]).await;
    stack.api.script(vec![Fault::Slow(Duration::from_millis(10))]);
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 15, "the delivery did not finish");
        let (ok, out) = watch.invoke(&event.to_string());
        assert!(ok, "{out}");
        if out["batchItemFailures"] == json!([]) {
            break;
        }
        assert_eq!(out["batchItemFailures"][0]["itemIdentifier"], "m-1", "{out}");
    }
    assert!(attempts >= 2, "the first invocation stopped at its deadline");
    assert_eq!(stack.applied_ids(), (1..=400).collect());
    assert_eq!(stack.api.requests().len(), 40, "no batch sent twice across invocations");
}

/// A manifest whose delivery stopped (the API down) goes before a later run's manifest of the
/// same table: the later one's event delivers the earlier one first, so rows arrive in run order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_stopped_delivery_is_delivered_before_the_next_manifest() {
    let stack = Stack::new().await;
    let config = stack.config("");
    let first = stack.export(30, &config).await;
    let watch = stack.watch(&config, &[]).await;
    let direct = |key: &str| json!({"manifest": format!("s3://{}/exports/{key}", stack.bucket)}).to_string();

    stack.api.always(Some(503));
    let (ok, out) = watch.invoke(&direct(&first));
    assert!(!ok && out.to_string().contains("Sluice.DeliveryStopped"), "{out}");
    assert!(stack.api.applied().is_empty());

    // The next run (a full copy again, each row at version 2) commits while the first is
    // undelivered.
    let db = create_contacts(&stack.dir.path().join("source.db"));
    db.execute("UPDATE contacts SET version = 2", []).unwrap();
    let second = stack.run(&config).await;
    stack.api.always(None);
    let (ok, out) = watch.invoke(&direct(&second));
    assert!(ok, "{out}");
    // Every row of the first run before any of the second's (batches of one manifest may
    // overlap, so each run's rows are compared as a set).
    let applied = stack.api.applied();
    let rows = |part: &[Value]| {
        let mut r: Vec<(String, i64)> =
            part.iter().map(|r| (r["version"].to_string(), r["id"].as_i64().unwrap())).collect();
        r.sort();
        r
    };
    assert_eq!(applied.len(), 60);
    let version = |v: &str| (1..=30).map(|id| (v.to_string(), id)).collect::<Vec<_>>();
    assert_eq!(rows(&applied[..30]), version("1"), "the first run's rows first");
    assert_eq!(rows(&applied[30..]), version("2"), "then the second's");
    // Both are done: their events again send nothing.
    let before = stack.api.requests().len();
    assert!(watch.invoke(&direct(&first)).0 && watch.invoke(&direct(&second)).0);
    assert_eq!(stack.api.requests().len(), before);
}

/// Whoever may write the config must not be able to send the token elsewhere: a token bound for
/// a host the stack's SLUICE_SECRET_HOSTS does not name stops the function at start, naming the
/// host and the setting; named there, the same config starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_goes_only_to_a_host_the_stack_allows() {
    let stack = Stack::new().await;
    let config = stack.config("").replace(&format!("{}/contacts", stack.api.url), "https://hooks.elsewhere.example/in");
    let refused = stack.watch(&config, &[]).await;
    let (ok, out) = refused.invoke(r#"{"hello": "world"}"#);
    let text = out.to_string();
    assert!(!ok && text.contains("SLUICE_SECRET_HOSTS") && text.contains("hooks.elsewhere.example"), "{text}");
    assert!(!text.contains("hook-token"), "no secret in the message");
    assert!(stack.api.requests().is_empty());

    let allowed = stack.watch(&config, &[("SLUICE_SECRET_HOSTS", "*.elsewhere.example")]).await;
    let (ok, out) = allowed.invoke(r#"{"hello": "world"}"#);
    assert!(!ok && out.to_string().contains("Sluice.InvalidEvent"), "it started: {out}");
}

/// Anyone able to put an object under the export's prefix could otherwise have the function push
/// rows of their choosing with the production token. A manifest is delivered only when the
/// history says its run committed it, at that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_no_committed_run_wrote_is_not_delivered() {
    let stack = Stack::new().await;
    let config = stack.config("");
    let real = stack.export(20, &config).await;
    let bytes = stack.s3.get_object().bucket(&stack.bucket).key(format!("exports/{real}")).send().await.unwrap();
    let text = String::from_utf8(bytes.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    let run_id = serde_json::from_str::<Value>(&text).unwrap()["run_id"].as_str().unwrap().to_string();
    let put = |key: String, body: String| {
        let s3 = stack.s3.clone();
        let bucket = stack.bucket.clone();
        async move { s3.put_object().bucket(bucket).key(key).body(body.into_bytes().into()).send().await.unwrap() }
    };
    // The real manifest copied to another run's folder, and one naming a run that never was.
    let copied = real.replace(&run_id, "20990101T000000Z-0000dead");
    put(format!("exports/{copied}"), text.clone()).await;
    let invented = copied.replace("0000dead", "0000beef");
    put(format!("exports/{invented}"), text.replace(&run_id, "20990101T000000Z-0000beef")).await;

    let watch = stack.watch(&config, &[]).await;
    for key in [&copied, &invented] {
        let (ok, out) = watch.invoke(&json!({"manifest": format!("s3://{}/exports/{key}", stack.bucket)}).to_string());
        assert!(ok, "{out}");
        assert_eq!(out["deliveries"][0]["refused"], key.as_str(), "{out}");
    }
    assert!(stack.api.requests().is_empty(), "nothing sent");
    assert!(watch.logs().contains("no committed run of this export wrote this manifest"), "{}", watch.logs());
    // The real one goes.
    let (ok, out) = watch.invoke(&json!({"manifest": format!("s3://{}/exports/{real}", stack.bucket)}).to_string());
    assert!(ok && out["deliveries"][0]["delivered"] == 20, "{out}");
}

/// Run N's delivery is held by an invocation that is waiting out an outage when run N+1's event
/// arrives: N+1 must not overtake it. Its event is answered "waiting" (not failed, so it costs
/// no receive); whoever delivers N then carries on with N+1, and the sweep finds nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_delivery_of_run_n_holds_back_run_n_plus_one() {
    use sluice_core::ports::{DeliveryId, DeliveryLedger, ObjectStore};
    let stack = Stack::new().await;
    let config = stack.config("");
    let first = stack.export(30, &config).await;
    let db = create_contacts(&stack.dir.path().join("source.db"));
    db.execute("UPDATE contacts SET version = 2", []).unwrap();
    let second = stack.run(&config).await;

    // Another invocation holds N's claim (waiting out an outage).
    let history = DynamoHistory::new(stack.ddb.clone(), &stack.table);
    let store = S3Store::new(stack.s3.clone(), &stack.bucket, "exports", None);
    let etag = store.get_tagged(&first).await.unwrap().unwrap().1;
    let id = DeliveryId { integration: "hook".into(), manifest_key: first.clone(), etag };
    let sluice_core::ports::Claim::Mine(stalled) =
        history.claim(&id, "stalled-invocation", Duration::from_secs(600), 30).await.unwrap()
    else {
        panic!("the first claim is taken")
    };

    let watch = stack.watch(&config, &[]).await;
    let direct = |key: &str| json!({"manifest": format!("s3://{}/exports/{key}", stack.bucket)}).to_string();
    let (ok, out) = watch.invoke(&direct(&second));
    assert!(ok, "{out}");
    assert_eq!(out["deliveries"][0]["waiting"], second.as_str(), "{out}");
    assert_eq!(out["deliveries"][0]["behind"], first.as_str(), "{out}");
    assert!(stack.api.applied().is_empty(), "nothing of run N+1 before run N");

    // The holder gives up (its deadline); N's event comes back (its retry) and carries N+1.
    history.save(&stalled, "stalled-invocation", None).await.unwrap();
    let (ok, out) = watch.invoke(&direct(&first));
    assert!(ok, "{out}");
    let versions: Vec<i64> = stack.api.applied().iter().map(|r| r["version"].as_i64().unwrap()).collect();
    assert_eq!(versions.len(), 60, "{out}");
    assert!(versions[..30].iter().all(|v| *v == 1) && versions[30..].iter().all(|v| *v == 2), "{versions:?}");

    // The sweep: nothing left, and the metric says so.
    let (ok, out) = watch.invoke(r#"{"sweep": true}"#);
    assert!(ok, "{out}");
    assert_eq!(out["undelivered"], 0, "{out}");
    assert_eq!(stack.api.applied().len(), 60);
    assert!(watch.logs().contains("\"UndeliveredAgeSeconds\":0"), "{}", watch.logs());
}

/// A long delivery that reaches the invocation's deadline having made progress goes on in a
/// fresh message of the function's own queue: the message it came in is done, so a healthy
/// delivery never climbs toward the dead-letter queue's receive count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_cut_by_the_deadline_continues_in_a_fresh_message() {
    let stack = Stack::new().await;
    let (queue, _) = stack.queue().await;
    let config = stack.config("rate_limit = \"10/s\"\nmax_in_flight = 2").replace("batch_size = 25", "batch_size = 10");
    let manifest = stack.export(400, &config).await;
    let watch =
        stack.watch(&config, &[("SLUICE_DEADLINE_MARGIN", "599s"), ("SLUICE_CONTINUATION_QUEUE", &queue)]).await;
    stack.api.script(vec![Fault::Slow(Duration::from_millis(10))]);
    let body = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": stack.bucket}, "object": {"key": format!("exports/{manifest}")}}}]});
    let mut event = json!({"Records": [{"messageId": "m-1", "body": body.to_string(), "eventSource": "aws:sqs"}]});
    let mut messages = 0;
    loop {
        messages += 1;
        assert!(messages <= 15, "the delivery did not finish");
        let (ok, out) = watch.invoke(&event.to_string());
        assert!(ok, "{out}");
        assert_eq!(out["batchItemFailures"], json!([]), "no message is failed: {out}");
        event = stack.drain(&queue).await;
        match event["Records"].as_array().unwrap().len() {
            0 => break,
            1 => assert!(event["Records"][0]["body"].as_str().unwrap().contains("\"continued\":true"), "{event}"),
            n => panic!("one continuation at a time, not {n}"),
        }
    }
    assert!(messages >= 2, "the first invocation stopped at its deadline and handed on");
    assert_eq!(stack.applied_ids(), (1..=400).collect());
    assert_eq!(stack.api.requests().len(), 40, "no batch sent twice across invocations");
}

/// An API's limit is per account: four invocations delivering one integration at once (four
/// tables' manifests, four function processes) keep to it together, through the send slots in
/// the ledger, and the API never sees more than the limit in any window of its period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_concurrent_deliveries_share_one_rate_limit() {
    let stack = Stack::new().await;
    let tables = ["contacts", "c2", "c3", "c4"];
    let db = create_contacts(&stack.dir.path().join("source.db"));
    insert_contacts(&db, 1, 150, "2026-01-01 00:00:00");
    for t in &tables[1..] {
        db.execute(&format!("CREATE TABLE {t} AS SELECT * FROM contacts"), []).unwrap();
    }
    let mut config =
        stack.config("rate_limit = \"20/s\"\nmax_in_flight = 4").replace("batch_size = 25", "batch_size = 10");
    let extra: String = tables[1..]
        .iter()
        .map(|t| format!("\n[[export.table]]\nname = \"{t}\"\nincremental = {{ strategy = \"full\" }}\n"))
        .collect();
    config = config.replace("\n\n[integrations.hook]", &format!("{extra}\n[integrations.hook]"));
    let parsed = sluice_connect::parse_config(&stack.dir.path().join("sluice.toml"), &config).unwrap();
    let source = SqliteSource::new(stack.dir.path().join("source.db"));
    let store = S3Store::new(stack.s3.clone(), &stack.bucket, "exports", None);
    let history = DynamoHistory::new(stack.ddb.clone(), &stack.table);
    let events = EventBridgeSink::new(stack.eb.clone(), "default");
    let ports = Ports { source: &source, store: &store, history: &history, events: &events };
    let summary = Runner::new(ports, &Quiet).run(&parsed.exports[0], &run_options()).await.unwrap();
    let manifests: Vec<String> = summary.tables.iter().map(|t| t.manifest_key.clone().unwrap()).collect();
    assert_eq!(manifests.len(), 4);

    let mut functions = Vec::new();
    for _ in 0..4 {
        functions.push(stack.watch(&config, &[]).await);
    }
    std::thread::scope(|s| {
        for (f, m) in functions.iter().zip(&manifests) {
            let event = json!({"manifest": format!("s3://{}/exports/{m}", stack.bucket)}).to_string();
            s.spawn(move || {
                let (ok, out) = f.invoke(&event);
                assert!(ok && out["deliveries"][0]["delivered"] == 150, "{out}");
            });
        }
    });
    let mut times: Vec<Duration> = stack.api.requests().iter().map(|r| r.at).collect();
    times.sort();
    assert_eq!(times.len(), 60);
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < *t + Duration::from_secs(1)).count();
        assert!(in_window <= 20, "{in_window} requests in the second from {t:?}: {times:?}");
    }
    let span = (*times.last().unwrap() - times[0]).as_secs_f64();
    eprintln!(
        "4 invocations, limit 20/s: {} requests in {span:.2} s, {:.2}/s",
        times.len(),
        (times.len() - 1) as f64 / span
    );
}

/// A token rotated in Secrets Manager while the function is warm: the API refuses the old one,
/// the function reads the secret again (once), sends the request again with the new token, and
/// keeps it for the next deliveries. No cold start, no failed delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_in_secrets_manager_is_read_again_when_the_api_refuses_the_old_one() {
    let stack = Stack::new().await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&stack.moto.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = unique_name("hook-token");
    secrets.create_secret().name(&name).secret_string("token-v1").send().await.unwrap();
    let config = stack.config("").replace("token = \"env:HOOK_TOKEN\"", &format!("token = \"secretsmanager:{name}\""));
    let first = stack.export(20, &config).await;
    let watch = stack.watch(&config, &[]).await;
    let direct = |key: &str| json!({"manifest": format!("s3://{}/exports/{key}", stack.bucket)}).to_string();
    stack.api.require_token("token-v1");
    let (ok, out) = watch.invoke(&direct(&first));
    assert!(ok && out["deliveries"][0]["delivered"] == 20, "{out}");

    // Rotated: the secret and the API move to v2 together.
    secrets.put_secret_value().secret_id(&name).secret_string("token-v2").send().await.unwrap();
    stack.api.require_token("token-v2");
    let second = stack.run(&config).await;
    let (ok, out) = watch.invoke(&direct(&second));
    assert!(ok && out["deliveries"][0]["delivered"] == 20, "{out}");
    let statuses: Vec<u16> = stack.api.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 1, "one refusal, then the new token: {statuses:?}");
    assert!(watch.logs().contains("the secret holds another (rotated)"), "{}", watch.logs());
    assert!(!watch.logs().contains("token-v2") && !watch.logs().contains("token-v1"), "no token in the logs");

    // Kept: the next delivery goes with v2 at once.
    let db = create_contacts(&stack.dir.path().join("source.db"));
    db.execute("UPDATE contacts SET version = 3", []).unwrap();
    let third = stack.run(&config).await;
    let before = stack.api.requests().len();
    let (ok, out) = watch.invoke(&direct(&third));
    assert!(ok, "{out}");
    assert!(stack.api.requests()[before..].iter().all(|r| r.status == 200), "no second refusal");

    // A token that is wrong for good (the secret still holds the refused one) stops the
    // delivery after that one re-read, naming the token as the problem.
    stack.api.require_token("token-v3");
    db.execute("UPDATE contacts SET version = 4", []).unwrap();
    let fourth = stack.run(&config).await;
    let (ok, out) = watch.invoke(&direct(&fourth));
    assert!(!ok && out.to_string().contains("check the integration's token"), "{out}");
}
