//! The delivery engine end to end on one machine: a real export (SQLite → CSV parts and a
//! manifest in a folder), the ledger in the history file, reqwest, and the fake API answering
//! with every fault an API has. After each delivery: every row is delivered or in the failures
//! file, none applied twice, none lost.

use serde_json::Value;
use std::collections::BTreeSet;

use std::time::{Duration, Instant};

use sluice_core::integrate::{
    resolve_token, DeliverError, Deliverer, DeliveryOptions, DeliveryOutcome, DeliveryPorts, FailedRecord,
};
use sluice_core::ports::{DeliveryId, DeliveryLedger, DeliveryState, NoSecrets, ObjectStore};
use sluice_core::run::{Ports, Quiet, Runner};
use sluice_core::spec::Config;
use sluice_http::ReqwestClient;
use sluice_local::{DirectoryStore, JsonlEventLog, SqliteHistory, SqliteSource};
use sluice_testkit::api::{FakeApi, Fault, Shape};
use sluice_testkit::{contacts_config, create_contacts, insert_contacts, run_options};

const CSV: &str = "{ compression = \"gzip\", max_file_size = 20000 }";

struct Env {
    dir: tempfile::TempDir,
    api: FakeApi,
    manifest: String,
    rows: u64,
}

impl Env {
    /// Exports `rows` contacts, with an integration to the fake API declared as `integration`
    /// (the TOML body of `[integrations.api]`, `url`/`endpoint` added).
    async fn new(shape: Shape, rows: i64, integration: &str) -> Env {
        Env::exporting(shape, rows, integration, "{ strategy = \"full\" }").await
    }

    /// As `new`, with the table's `incremental` given.
    async fn exporting(shape: Shape, rows: i64, integration: &str, incremental: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let conn = create_contacts(&dir.path().join("source.db"));
        insert_contacts(&conn, 1, rows, "2026-01-01 00:00:00.000");
        let api = FakeApi::start(shape);
        let config = contacts_config(dir.path(), incremental, CSV);
        let target = match shape {
            Shape::Webhook => format!("url = \"{}/contacts\"", api.url),
            Shape::Hubspot => format!("endpoint = \"{}\"\ntoken = \"env:SLUICE_TEST_HUBSPOT_TOKEN\"", api.url),
        };
        let mut text = std::fs::read_to_string(&config).unwrap();
        let kind = if integration.contains("kind =") { "" } else { "kind = \"webhook\"\n" };
        text.push_str(&format!("\n[integrations.api]\n{kind}export = \"contacts\"\n{target}\n{integration}\n"));
        std::fs::write(&config, text).unwrap();
        let env = Env { dir, api, manifest: String::new(), rows: rows as u64 };
        let config = env.config();
        let source = SqliteSource::new(env.dir.path().join("source.db"));
        let history = SqliteHistory::open(&env.dir.path().join("history.db"), "test-host").unwrap();
        let store = env.store();
        let events = env.events();
        let ports = Ports { source: &source, store: &store, history: &history, events: &events };
        let summary = Runner::new(ports, &Quiet).run(&config.exports[0], &run_options()).await.unwrap();
        assert!(summary.succeeded, "{summary:?}");
        Env { manifest: summary.tables[0].manifest_key.clone().unwrap(), ..env }
    }

    /// Runs the export again; the new run's manifest is the one delivered from then on.
    async fn export_again(self) -> Env {
        let config = self.config();
        let source = SqliteSource::new(self.dir.path().join("source.db"));
        let history = SqliteHistory::open(&self.dir.path().join("history.db"), "test-host").unwrap();
        let (store, events) = (self.store(), self.events());
        let ports = Ports { source: &source, store: &store, history: &history, events: &events };
        let summary = Runner::new(ports, &Quiet).run(&config.exports[0], &run_options()).await.unwrap();
        assert!(summary.succeeded, "{summary:?}");
        Env { manifest: summary.tables[0].manifest_key.clone().unwrap(), ..self }
    }

    fn config(&self) -> Config {
        Config::load(&self.dir.path().join("sluice.toml"), sluice_local::KINDS).unwrap()
    }
    fn store(&self) -> DirectoryStore {
        DirectoryStore::new(self.dir.path().join("out"))
    }
    fn events(&self) -> JsonlEventLog {
        JsonlEventLog::new(self.dir.path().join("events.jsonl"))
    }
    fn ledger(&self) -> SqliteHistory {
        SqliteHistory::open(&self.dir.path().join("history.db"), "test-host").unwrap()
    }

    fn options(&self) -> DeliveryOptions {
        let mut o = DeliveryOptions::new(format!("test-host:{}:t", std::process::id()));
        o.retry_base = Duration::from_millis(5);
        o.retry_cap = Duration::from_millis(50);
        o.token = Some("t0ken".into());
        o
    }

    async fn deliver_with(&self, opts: DeliveryOptions) -> Result<DeliveryOutcome, DeliverError> {
        let config = self.config();
        let spec = config.integration("api").unwrap();
        let (store, ledger, events, http) = (self.store(), self.ledger(), self.events(), ReqwestClient::new().unwrap());
        let ports = DeliveryPorts { store: &store, ledger: &ledger, http: &http, events: &events, secrets: None };
        Deliverer::new(ports, spec, opts).deliver(&self.manifest).await
    }

    async fn deliver(&self) -> Result<DeliveryOutcome, DeliverError> {
        self.deliver_with(self.options()).await
    }

    fn failures(&self) -> Vec<FailedRecord> {
        let path = self.dir.path().join("out").join(self.manifest.replace("manifest.json", "failures/api.jsonl"));
        match std::fs::read_to_string(&path) {
            Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn events_of(&self, detail_type: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("events.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["detail-type"] == detail_type)
            .map(|e| e["detail"].clone())
            .collect()
    }

    /// Ids of the webhook records the API applied; panics if one was applied twice.
    fn applied_ids(&self) -> BTreeSet<i64> {
        let mut ids = BTreeSet::new();
        for r in self.api.applied() {
            let id = r["id"].as_i64().or_else(|| r["properties"]["id"].as_str().and_then(|s| s.parse().ok())).unwrap();
            assert!(ids.insert(id), "record {id} was applied twice");
        }
        ids
    }

    /// Delivered + failed = rows, and the two sets are the rows exactly.
    fn assert_complete(&self, delivered: &BTreeSet<i64>) {
        let failed: BTreeSet<i64> =
            self.failures().iter().map(|f| f.row["id"].as_i64().expect("an INTEGER id stays a number")).collect();
        assert!(delivered.is_disjoint(&failed), "a record both delivered and failed");
        let all: BTreeSet<i64> = delivered.union(&failed).copied().collect();
        assert_eq!(all, (1..=self.rows as i64).collect(), "every row delivered or failed, none lost");
    }
}

fn done(outcome: Result<DeliveryOutcome, DeliverError>) -> sluice_core::integrate::DeliverySummary {
    match outcome {
        Ok(DeliveryOutcome::Done(s)) => *s,
        other => panic!("expected a finished delivery, got {other:?}"),
    }
}

#[tokio::test]
async fn every_row_arrives_once_under_429s_500s_slow_answers_and_per_record_errors() {
    let env =
        Env::new(Shape::Webhook, 1200, "batch_size = 25\nmax_in_flight = 4\ntimeout = \"300ms\"\nmax_attempts = 20")
            .await;
    env.api.random_faults(42, 0.1, 0.1, 0.05, Duration::from_millis(450));
    for id in [17, 400, 401, 1199] {
        env.api.reject_records_where("email", &format!("user{id}@example.com"));
    }
    let s = done(env.deliver().await);
    assert_eq!((s.rows, s.delivered, s.failed), (1200, 1196, 4));
    assert!(s.retries > 0, "the fault mix made it retry");
    let ids = env.applied_ids();
    assert_eq!(ids.len(), 1196);
    env.assert_complete(&ids);
    let failures = env.failures();
    assert_eq!(failures.iter().map(|f| f.index).collect::<Vec<_>>(), vec![16, 399, 400, 1198], "in row order");
    assert!(failures.iter().all(|f| f.stage == "api" && f.error.contains("is not accepted")), "{failures:?}");
    // Retries of a batch carry its key: a slow answer's retry was not applied again.
    let requests = env.api.requests();
    assert!(requests.iter().all(|r| r.headers["authorization"] == "Bearer t0ken"));
    let keys: BTreeSet<&String> = requests.iter().map(|r| &r.headers["idempotency-key"]).collect();
    assert!(keys.len() < requests.len(), "some batch was sent more than once");
    let event = env.events_of("IntegrationFailed");
    assert_eq!(event.len(), 1);
    assert_eq!((event[0]["delivered"].as_u64(), event[0]["failed"].as_u64()), (Some(1196), Some(4)));
}

#[tokio::test]
async fn a_batch_refused_whole_is_split_until_the_bad_record_is_alone() {
    let env = Env::new(Shape::Webhook, 100, "batch_size = 64").await;
    env.api.reject_batches_containing("email", "user50@example.com");
    let s = done(env.deliver().await);
    assert_eq!((s.delivered, s.failed), (99, 1));
    let f = &env.failures()[0];
    assert_eq!((f.index, f.status, f.stage.as_str()), (49, Some(400), "api"));
    assert_eq!(f.row["email"], "user50@example.com");
    // 64 + 36 rows: the first batch splits down to one record in log2(64) = 6 levels.
    assert!(s.requests <= 2 + 2 * 6, "{} requests", s.requests);
    env.assert_complete(&env.applied_ids());
}

#[tokio::test]
async fn a_duplicate_event_is_skipped_and_sends_nothing() {
    let env = Env::new(Shape::Webhook, 30, "batch_size = 10").await;
    let s = done(env.deliver().await);
    assert_eq!(s.delivered, 30);
    let sent = env.api.requests().len();
    match env.deliver().await.unwrap() {
        DeliveryOutcome::Duplicate(r) => assert_eq!(r.state, DeliveryState::Done),
        other => panic!("{other:?}"),
    }
    assert_eq!(env.api.requests().len(), sent, "a duplicate sends nothing");
    assert_eq!(env.events_of("IntegrationSucceeded").len(), 1);
}

#[tokio::test]
async fn refused_credentials_stop_the_delivery_and_the_next_attempt_resumes() {
    let env = Env::new(Shape::Webhook, 300, "batch_size = 10\nmax_in_flight = 1").await;
    env.api.script(vec![Fault::Status(200); 0]);
    // 12 batches go through, then the token is refused.
    let api = &env.api;
    let deliver = env.deliver();
    let stopper = async {
        while api.requests().len() < 12 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        api.always(Some(401));
    };
    let (outcome, ()) = tokio::join!(deliver, stopper);
    let err = outcome.unwrap_err();
    assert!(matches!(err, DeliverError::Stopped { .. }), "{err:?}");
    assert!(err.to_string().contains("401") && err.to_string().contains("token"), "{err}");
    let id = DeliveryId {
        integration: "api".into(),
        manifest_key: env.manifest.clone(),
        etag: env.store().get_tagged(&env.manifest).await.unwrap().unwrap().1,
    };
    let record = env.ledger().delivery(&id).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::InProgress);
    assert!(record.progress.settled_rows >= 100, "progress kept: {:?}", record.progress);
    assert_eq!(env.events_of("IntegrationFailed").len(), 1, "an operator hears of it");

    api.always(None);
    let before = api.requests().len();
    let s = done(env.deliver().await);
    assert_eq!((s.delivered, s.failed), (300, 0));
    assert!(api.requests().len() - before <= 30 - 10, "resumed, not restarted");
    env.assert_complete(&env.applied_ids());
}

#[tokio::test]
async fn a_deadline_stops_the_delivery_and_the_next_one_resumes_without_resending() {
    let env = Env::new(Shape::Webhook, 300, "batch_size = 10\nrate_limit = \"10/s\"").await;
    let mut opts = env.options();
    opts.stop_by = Some(Instant::now() + Duration::from_millis(400));
    let err = env.deliver_with(opts).await.unwrap_err();
    assert!(err.to_string().contains("deadline"), "{err}");
    assert!(env.events_of("IntegrationFailed").is_empty(), "a deadline is routine: the retry resumes");
    let first = env.api.requests().len();
    assert!((2..30).contains(&first), "{first} requests before the deadline");
    let s = done(env.deliver().await);
    assert_eq!(s.delivered, 300);
    assert_eq!(env.api.requests().len(), 30, "no batch sent twice");
    env.assert_complete(&env.applied_ids());
}

#[tokio::test]
async fn hubspot_contacts_are_upserted_by_email_with_per_record_errors_from_a_207() {
    std::env::set_var("SLUICE_TEST_HUBSPOT_TOKEN", "pat-na1-test");
    let env = Env::new(
        Shape::Hubspot,
        250,
        "kind = \"hubspot_contacts\"\nbatch_size = 100\nrate_limit = \"100/10s\"\n\
         [integrations.api.properties]\nemail = \"email\"\nfirstname = \"name\"\nsluice_version = { column = \"version\", type = \"number\" }\nsource = { value = \"sluice\" }\n",
    )
    .await;
    env.api.reject_records_where("email", "user7@example.com");
    env.api.script(vec![Fault::TooMany(0.2)]);
    let mut opts = env.options();
    let config = env.config();
    opts.token = resolve_token(config.integration("api").unwrap(), &NoSecrets("none")).await.unwrap();
    let s = done(env.deliver_with(opts).await);
    assert_eq!((s.delivered, s.failed, s.retries), (249, 1, 1));
    let contacts = env.api.contacts();
    assert_eq!(contacts.len(), 249);
    let c = &contacts["user6@example.com"];
    assert_eq!(c["firstname"], "Pipe|6");
    assert_eq!(c["sluice_version"], "1", "property values go as strings");
    assert_eq!(c["source"], "sluice");
    assert!(contacts["user5@example.com"].get("firstname").is_none(), "a NULL is left out, not sent as null");
    let f = &env.failures()[0];
    assert_eq!((f.index, f.stage.as_str()), (6, "api"));
    assert!(f.error.starts_with("VALIDATION_ERROR"), "{}", f.error);
    let r = &env.api.requests()[1];
    assert_eq!(r.path, "/crm/v3/objects/contacts/batch/upsert");
    assert_eq!(r.headers["authorization"], "Bearer pat-na1-test");
    assert_eq!(r.body["inputs"][0]["idProperty"], "email");
}

/// A `check` table's changes to HubSpot: updates are upserted without Sluice's `_sluice_op`
/// column, and a delete (which an upsert would turn into a contact of empty values) fails its
/// record into the failures file instead.
#[tokio::test]
async fn hubspot_gets_a_check_tables_updates_and_refuses_its_deletes() {
    std::env::set_var("SLUICE_TEST_HUBSPOT_TOKEN", "pat-na1-test");
    let check = "{ strategy = \"check\", key = [\"id\"], columns = [\"email\", \"name\"], deletes = true }";
    let integration = "kind = \"hubspot_contacts\"\nbatch_size = 100\ndrop = [\"updated_at\"]\n";
    let env = Env::exporting(Shape::Hubspot, 20, integration, check).await;
    let mut opts = env.options();
    opts.token = Some("pat-na1-test".into());
    let s = done(env.deliver_with(opts.clone()).await);
    assert_eq!((s.delivered, s.failed), (20, 0));
    assert!(env.api.contacts().values().all(|c| c.get("_sluice_op").is_none()), "not a contact property");

    let db = rusqlite::Connection::open(env.dir.path().join("source.db")).unwrap();
    db.execute_batch("UPDATE contacts SET name = 'Renamed' WHERE id = 4; DELETE FROM contacts WHERE id = 9;").unwrap();
    let env = env.export_again().await;
    let s = done(env.deliver_with(opts).await);
    assert_eq!((s.delivered, s.failed), (1, 1));
    assert_eq!(env.api.contacts()["user4@example.com"]["name"], "Renamed");
    let f = &env.failures()[0];
    assert_eq!(f.stage, "check");
    assert!(f.error.contains("do not delete contacts"), "{f:?}");
    assert_eq!(f.row["id"].to_string().trim_matches('"'), "9", "{f:?}");
}

#[tokio::test]
async fn values_that_cannot_take_their_type_fail_alone_and_a_fixed_mapping_resends_them() {
    let env = Env::new(
        Shape::Webhook,
        40,
        "batch_size = 8\n[integrations.api.properties]\nid = \"id\"\nlabel = { column = \"name\", type = \"number\" }\n",
    )
    .await;
    // Names are text: every non-NULL one fails its record at mapping.
    let s = done(env.deliver().await);
    assert_eq!((s.delivered, s.failed), (8, 32), "only NULL names map to a number");
    assert!(env.failures().iter().all(|f| f.stage == "mapping" && f.error.contains("column \"name\"")));
    env.assert_complete(&env.applied_ids());

    // Fix the mapping, send the failures again.
    let path = env.dir.path().join("sluice.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace("type = \"number\"", "type = \"string\"");
    std::fs::write(&path, text).unwrap();
    let config = env.config();
    let (store, ledger, events, http) = (env.store(), env.ledger(), env.events(), ReqwestClient::new().unwrap());
    let ports = DeliveryPorts { store: &store, ledger: &ledger, http: &http, events: &events, secrets: None };
    let failures_key = env.manifest.replace("manifest.json", "failures/api.jsonl");
    let again =
        Deliverer::new(ports, config.integration("api").unwrap(), env.options()).retry_failures(&failures_key).await;
    let s = done(again);
    assert_eq!((s.rows, s.delivered, s.failed), (32, 32, 0));
    assert_eq!(env.applied_ids().len(), 40);
}

#[tokio::test]
async fn the_rate_limit_holds_over_every_window() {
    let env = Env::new(Shape::Webhook, 300, "batch_size = 10\nrate_limit = \"10/s\"\nmax_in_flight = 8").await;
    done(env.deliver().await);
    let times: Vec<Duration> = env.api.requests().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 30);
    // Arrival times jitter by a few milliseconds; a window 40 ms short of the period still
    // holds no more than the limit.
    for (i, t) in times.iter().enumerate() {
        let n = times[i..].iter().filter(|u| **u < *t + Duration::from_millis(960)).count();
        assert!(n <= 10, "{n} requests in the 960 ms from {t:?}");
    }
    let span = times[29] - times[0];
    assert!(span >= Duration::from_millis(1900), "30 requests at 10/s take two seconds at least: {span:?}");
}

#[tokio::test]
async fn a_delivery_waiting_on_a_slow_api_keeps_its_claim() {
    let env = Env::new(Shape::Webhook, 20, "batch_size = 10\nmax_in_flight = 1\ntimeout = \"5s\"").await;
    env.api.script(vec![Fault::Slow(Duration::from_millis(900))]);
    let mut opts = env.options();
    opts.claim_ttl = Duration::from_millis(300);
    let deliver = env.deliver_with(opts);
    let rival = async {
        // Well past the claim's 300 ms, while the first request still waits for its answer.
        tokio::time::sleep(Duration::from_millis(650)).await;
        let etag = env.store().get_tagged(&env.manifest).await.unwrap().unwrap().1;
        let id = DeliveryId { integration: "api".into(), manifest_key: env.manifest.clone(), etag };
        env.ledger().claim(&id, "rival:1:x", Duration::from_secs(60), 20).await.unwrap()
    };
    let (outcome, rival) = tokio::join!(deliver, rival);
    assert!(matches!(rival, sluice_core::ports::Claim::Held { .. }), "the claim was renewed: {rival:?}");
    assert_eq!(done(outcome).delivered, 20);
}

/// An answer's body is read up to MAX_BODY: a server sending more cannot fill the memory.
#[tokio::test]
async fn an_answer_larger_than_the_cap_is_cut() {
    use sluice_core::integrate::api::{HttpClient, HttpRequest};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        let size = 3 * sluice_http::MAX_BODY;
        let _ = write!(conn, "HTTP/1.1 200 OK\r\ncontent-length: {size}\r\ncontent-type: text/plain\r\n\r\n");
        let block = vec![b'x'; 64 * 1024];
        for _ in 0..size / block.len() {
            if conn.write_all(&block).is_err() {
                break;
            }
        }
    });
    let client = sluice_http::ReqwestClient::new().unwrap();
    let request =
        HttpRequest { method: "POST".into(), url: format!("http://{addr}/in"), headers: vec![], body: b"[]".to_vec() };
    let answer = client.send(request, std::time::Duration::from_secs(10)).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), sluice_http::MAX_BODY);
}

/// A daily quota is kept, not discovered by a refusal: the delivery stops when the day's count
/// (shared through the ledger by every process) reaches it, keeps its progress, and says why.
#[tokio::test]
async fn the_daily_limit_stops_the_delivery_before_the_api_would_refuse() {
    let env = Env::new(Shape::Webhook, 100, "batch_size = 10\ndaily_limit = 4\nmax_in_flight = 1").await;
    let err = env.deliver().await.unwrap_err();
    assert!(err.to_string().contains("daily_limit of 4 requests"), "{err}");
    assert_eq!(env.api.requests().len(), 4, "no request past the day's quota");
    // Another process (another deliverer on the same ledger) has nothing left today either.
    let again = env.deliver().await.unwrap_err();
    assert!(again.to_string().contains("daily_limit"), "{again}");
    assert_eq!(env.api.requests().len(), 4);
    assert_eq!(env.applied_ids().len(), 40, "the batches sent were delivered and kept");
}
