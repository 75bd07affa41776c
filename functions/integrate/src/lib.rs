//! The integration function's wiring: settings from the environment, read once at cold start;
//! an event (S3 notification, EventBridge, SQS, or a direct `{"manifest": "s3://…"}`) turned into
//! deliveries by `sluice_core::integrate`. One function serves one integration
//! (`SLUICE_INTEGRATION`), so each API gets its own concurrency, rate limit and alarms.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

use sluice_aws::{DynamoHistory, EventBridgeSink, S3Store, SecretsManager};
use sluice_connect::S3Location;
use sluice_core::alert::{Watch, Watched, Webhook};
use sluice_core::integrate::backlog::{turn, undelivered, Turn};
use sluice_core::integrate::event::{manifest_key_under, parse, Incoming, ObjectRef};
use sluice_core::integrate::spec::IntegrationSpec;
use sluice_core::integrate::{resolve_token, DeliverError, Deliverer, DeliveryOptions, DeliveryOutcome, DeliveryPorts};
use sluice_core::spec::{Config, ConfigError};

/// Time kept back from the Lambda deadline to save progress and answer.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(10);
/// A claim outlives the invocation's deadline by this much: past it, the owner is surely gone.
pub const CLAIM_SLACK: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum FnError {
    #[error("setting {name}: {problem}")]
    Setting { name: &'static str, problem: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config file could not be fetched or is not valid.
    #[error(transparent)]
    ConfigLoad(#[from] sluice_aws::ConfigLoadError),
    #[error("integration {integration:?}: {problem}")]
    Token { integration: String, problem: String },
    #[error("cannot read the event: {0}")]
    Event(String),
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error("cannot list the undelivered manifests")]
    Backlog(#[from] sluice_core::integrate::backlog::BacklogError),
}

impl FnError {
    /// The Lambda error type, for alarms and for telling a bad event from an API that is down.
    pub fn error_type(&self) -> &'static str {
        match self {
            FnError::Event(_) => "Sluice.InvalidEvent",
            FnError::Setting { .. } | FnError::Config(_) | FnError::ConfigLoad(_) | FnError::Token { .. } => {
                "Sluice.Configuration"
            }
            FnError::Deliver(DeliverError::Busy { .. }) => "Sluice.Busy",
            FnError::Deliver(DeliverError::Mapping { .. }) => "Sluice.Configuration",
            FnError::Deliver(DeliverError::ManifestMissing { .. } | DeliverError::ManifestCorrupt { .. }) => {
                "Sluice.InvalidManifest"
            }
            FnError::Deliver(_) => "Sluice.DeliveryStopped",
            FnError::Backlog(_) => "Sluice.History",
        }
    }
}

/// Settings from the environment (no secrets: the API token comes from Secrets Manager).
pub struct Settings {
    /// Those every function reads ([`sluice_aws::FunctionSettings`]); the history table holds
    /// the delivery ledger, and `SLUICE_SSE` applies to the failures files.
    pub common: sluice_aws::FunctionSettings,
    /// `SLUICE_INTEGRATION`: which `[integrations.<name>]` this function delivers.
    pub integration: String,
    /// `SLUICE_CONTINUATION_QUEUE`: the URL of the function's own SQS queue. A delivery that
    /// reached the invocation's deadline having made progress goes on in a fresh message, so
    /// the original's receive count (and the dead-letter queue) is left to real failures.
    pub continuation_queue: Option<String>,
}

impl Settings {
    pub fn from_env() -> Result<Settings, FnError> {
        Ok(Settings {
            common: sluice_aws::FunctionSettings::from_env(DEFAULT_DEADLINE_MARGIN)?,
            integration: sluice_aws::required_var("SLUICE_INTEGRATION")?,
            continuation_queue: sluice_aws::env_var("SLUICE_CONTINUATION_QUEUE"),
        })
    }
}

impl From<sluice_aws::SettingError> for FnError {
    fn from(e: sluice_aws::SettingError) -> FnError {
        FnError::Setting { name: e.name, problem: e.problem }
    }
}

/// Everything built once per cold start.
pub struct App {
    pub settings: Settings,
    pub config: Config,
    /// The integration this function delivers, from the config.
    spec: IntegrationSpec,
    store: S3Store,
    bucket: String,
    prefix: String,
    history: DynamoHistory,
    events: EventBridgeSink,
    http: sluice_http::ReqwestClient,
    /// The API token, read at cold start and again when the API refuses it (rotated).
    token: std::sync::Mutex<Option<String>>,
    secrets: SecretsManager,
    host: String,
    sqs: aws_sdk_sqs::Client,
}

impl App {
    pub async fn init(settings: Settings) -> Result<App, FnError> {
        let sdk = sluice_aws::client_config().await;
        let s3 = sluice_aws::s3_client(&sdk);
        let config = sluice_aws::load_config(&s3, &settings.common.config, sluice_connect::KINDS).await?;
        let spec = config.integration(&settings.integration)?.clone();
        // The config says where the token goes; the stack says where it may go.
        if let Some(problem) = settings.common.secret_hosts.check_integration(&spec) {
            return Err(FnError::Setting { name: "SLUICE_SECRET_HOSTS", problem });
        }
        let export = config.export(&spec.export)?;
        let Some(S3Location { bucket, prefix }) = export.destination.settings_as::<S3Location>() else {
            return Err(FnError::Setting {
                name: "SLUICE_CONFIG",
                problem: format!(
                    "export {:?} writes to {}; the function reads S3 only: set destination = \"s3://bucket/prefix\"",
                    export.name, export.destination
                ),
            });
        };
        let store = S3Store::new(s3, bucket, prefix, settings.common.encryption.clone());
        let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk));
        let token = resolve_token(&spec, &secrets)
            .await
            .map_err(|problem| FnError::Token { integration: spec.name.clone(), problem })?;
        let http = sluice_http::ReqwestClient::new().map_err(|problem| FnError::Setting { name: "HTTP", problem })?;
        let history = DynamoHistory::new(aws_sdk_dynamodb::Client::new(&sdk), &settings.common.history_table)
            .with_record_ttl(settings.common.record_ttl);
        let events = EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), &settings.common.event_bus);
        let host = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| "lambda".into());
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        Ok(App {
            sqs,
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            settings,
            config,
            spec,
            store,
            history,
            events,
            http,
            token: std::sync::Mutex::new(token),
            secrets,
            host,
        })
    }

    /// Handles one invocation. For SQS batches the answer lists the messages to retry
    /// (`batchItemFailures`); otherwise a failed delivery fails the invocation.
    pub async fn handle(&self, event: &Value, deadline: Option<Instant>) -> Result<Value, FnError> {
        let now = Instant::now();
        let remaining = deadline.map(|d| d.saturating_duration_since(now));
        debug!(remaining_ms = remaining.map(|r| r.as_millis() as u64), "invocation");
        // A margin as long as the time left means: stop at once (save progress, answer).
        let stop_by = remaining.map(|r| now + r.saturating_sub(self.settings.common.deadline_margin));
        match parse(event).map_err(|e| FnError::Event(e.0))? {
            Incoming::Sweep => self.sweep(deadline, stop_by).await,
            Incoming::Objects(objects) => {
                let mut results = Vec::new();
                for o in &objects {
                    results.push(self.deliver(o, deadline, stop_by).await?);
                }
                Ok(json!({ "deliveries": results }))
            }
            Incoming::Sqs(messages) => {
                let mut failures = Vec::new();
                for (id, objects) in messages {
                    let objects = match objects {
                        Ok(o) => o,
                        Err(e) => {
                            warn!(message = %id, error = %e, "an SQS message that is not an S3 event; it goes to the dead-letter queue after its retries");
                            failures.push(json!({ "itemIdentifier": id }));
                            continue;
                        }
                    };
                    for o in &objects {
                        match self.deliver(o, deadline, stop_by).await {
                            Ok(_) => {}
                            Err(e) if self.continued(&e, o).await => {
                                info!(message = %id, key = %o.key, "the delivery reached the deadline with progress; it goes on in a fresh message");
                            }
                            Err(e) => {
                                warn!(message = %id, error = %sluice_core::run::error_chain(&e), kind = e.error_type(), "delivery not finished; the message is retried");
                                failures.push(json!({ "itemIdentifier": id }));
                                break;
                            }
                        }
                    }
                }
                Ok(json!({ "batchItemFailures": failures }))
            }
        }
    }

    /// The manifest at `key`, when it is there and reads as one (the deliverer names what is
    /// wrong otherwise).
    async fn manifest(&self, key: &str) -> Result<Option<sluice_core::manifest::Manifest>, FnError> {
        use sluice_core::ports::ObjectStore;
        let bytes = self.store.get(key).await.map_err(|source| {
            FnError::Deliver(DeliverError::Store {
                integration: self.spec.name.clone(),
                op: "reading",
                key: key.into(),
                source,
            })
        })?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    fn deliverer(&self, deadline: Option<Instant>, stop_by: Option<Instant>) -> Deliverer<'_> {
        let ports = DeliveryPorts {
            store: &self.store,
            ledger: &self.history,
            http: &self.http,
            events: &self.events,
            secrets: Some(&self.secrets),
        };
        let mut opts = DeliveryOptions::new(format!("{}:{}", self.host, uuid::Uuid::new_v4().simple()));
        opts.token = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        opts.stop_by = stop_by;
        if let Some(d) = deadline {
            opts.claim_ttl = d.saturating_duration_since(Instant::now()) + CLAIM_SLACK;
        }
        Deliverer::new(ports, &self.spec, opts)
    }

    /// Whether a delivery that stopped at the deadline, having sent new batches, was handed on
    /// to a fresh message of the function's queue (an SQS message is then done, not retried).
    async fn continued(&self, e: &FnError, object: &ObjectRef) -> bool {
        let FnError::Deliver(DeliverError::Stopped { at_deadline: true, summary, .. }) = e else { return false };
        let Some(queue) = &self.settings.continuation_queue else { return false };
        if summary.requests <= summary.retries {
            return false; // no new batch went out: not progress, a failure to count
        }
        let body = json!({ "manifest": format!("s3://{}/{}", object.bucket, object.key), "continued": true });
        match self.sqs.send_message().queue_url(queue).message_body(body.to_string()).send().await {
            Ok(_) => true,
            Err(err) => {
                warn!(error = %sluice_core::run::error_chain(&err), "handing the delivery on failed; the message is retried instead");
                false
            }
        }
    }

    /// The sweep: every committed manifest not delivered yet, oldest first (a table whose
    /// delivery stops or is held elsewhere is left for the next sweep), then the age of the
    /// oldest one left as the `UndeliveredAgeSeconds` metric the stack's alarm watches.
    async fn sweep(&self, deadline: Option<Instant>, stop_by: Option<Instant>) -> Result<Value, FnError> {
        let backlog = undelivered(&self.history, &self.history, &self.store, &self.spec, None).await?;
        let deliverer = self.deliverer(deadline, stop_by);
        let mut delivered = Vec::new();
        let mut blocked = std::collections::BTreeSet::new();
        for u in &backlog {
            if blocked.contains(&u.table) {
                continue;
            }
            if stop_by.is_some_and(|s| Instant::now() >= s) {
                break;
            }
            match self.deliver_one(&deliverer, &u.manifest_key).await {
                Ok(_) => delivered.push(u.manifest_key.clone()),
                Err(e) => {
                    warn!(key = %u.manifest_key, error = %sluice_core::run::error_chain(&e), "the sweep left a table's backlog for later");
                    blocked.insert(u.table.clone());
                }
            }
        }
        self.keep_token(&deliverer);
        // What it did not deliver (a run committed meanwhile is counted by the next sweep).
        let left: Vec<_> = backlog.iter().filter(|u| !delivered.contains(&u.manifest_key)).collect();
        let now = chrono::Utc::now();
        let age = left.iter().filter_map(|u| u.committed_at).min().map_or(0, |c| (now - c).num_seconds().max(0));
        println!("{}", sluice_aws::undelivered_emf_line(&self.spec.name, age, left.len()));
        Ok(json!({ "swept": delivered, "undelivered": left.len(), "oldest_undelivered_age_s": age }))
    }

    /// Where a manifest stands, asking again for a short while when its run has not committed:
    /// the export writes the manifest, then commits, so its event usually arrives first.
    async fn wait_for_commit(
        &self,
        key: &str,
        manifest: &sluice_core::manifest::Manifest,
        stop_by: Option<Instant>,
    ) -> Result<Turn, FnError> {
        let until = Instant::now() + COMMIT_WAIT;
        let mut pause = Duration::from_millis(500);
        loop {
            let t = turn(&self.history, &self.history, &self.store, &self.spec, key, manifest).await?;
            let next = Instant::now() + pause;
            if !matches!(t, Turn::Uncommitted { .. }) || next > until || stop_by.is_some_and(|s| next >= s) {
                return Ok(t);
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }

    /// Delivers one manifest; a finished delivery then settles its export's rejected-rows
    /// alert (an alert never changes the delivery's outcome).
    async fn deliver_one(&self, deliverer: &Deliverer<'_>, key: &str) -> Result<DeliveryOutcome, DeliverError> {
        let outcome = deliverer.deliver(key).await;
        if let Ok(DeliveryOutcome::Done(summary)) = &outcome {
            if let Ok(export) = self.config.export(&summary.export) {
                let webhook = Webhook {
                    http: &self.http,
                    secrets: &self.secrets,
                    hosts: Some(&self.settings.common.secret_hosts),
                };
                let watch = Watch {
                    history: &self.history,
                    alerts: &self.history,
                    events: &self.events,
                    notify: Some(&webhook),
                };
                if let Err(e) = watch.after_delivery(&Watched::of(export), summary).await {
                    warn!(export = %summary.export, error = %sluice_core::run::error_chain(&e), "alerts not checked");
                }
            }
        }
        outcome
    }

    /// Keeps the token a deliverer ended with (read again after a refusal) for the next ones.
    fn keep_token(&self, deliverer: &Deliverer<'_>) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = deliverer.token();
    }

    async fn deliver(
        &self,
        object: &ObjectRef,
        deadline: Option<Instant>,
        stop_by: Option<Instant>,
    ) -> Result<Value, FnError> {
        let deliverer = self.deliverer(deadline, stop_by);
        let result = self.deliver_with(&deliverer, object, stop_by).await;
        self.keep_token(&deliverer);
        result
    }

    async fn deliver_with(
        &self,
        deliverer: &Deliverer<'_>,
        object: &ObjectRef,
        stop_by: Option<Instant>,
    ) -> Result<Value, FnError> {
        let Some(key) = manifest_key_under(object, &self.bucket, &self.prefix) else {
            debug!(bucket = %object.bucket, key = %object.key, "not a manifest under this export's destination; ignored");
            return Ok(json!({ "ignored": object.key }));
        };
        // A manifest that is missing, unreadable or not this integration's: the deliverer says
        // which, as it does for any key.
        let Some(manifest) = self.manifest(&key).await?.filter(|m| self.spec.wants(&m.export, &m.table)) else {
            return outcome(&key, self.deliver_one(deliverer, &key).await?);
        };
        match self.wait_for_commit(&key, &manifest, stop_by).await? {
            Turn::Foreign { why } => {
                error!(key = %key, run_id = %manifest.run_id, problem = %why,
                    "not delivered: no committed run of this export wrote this manifest; check who can write under the export's prefix");
                Ok(json!({ "refused": key, "why": why }))
            }
            Turn::Uncommitted { run_id } => {
                info!(key = %key, run_id = %run_id, "its run has not committed; the sweep delivers it once the next run settles it");
                Ok(json!({ "uncommitted": key, "run_id": run_id }))
            }
            Turn::Stale { delivered_run } => {
                warn!(key = %key, delivered_run = %delivered_run,
                    "not delivered: a later run of the table was delivered already, and this one's rows would overwrite newer ones");
                Ok(json!({ "stale": key, "delivered_run": delivered_run }))
            }
            Turn::Ready { earlier, later } => {
                // Earlier runs of the table first. One held by another invocation is on its way:
                // that invocation carries on with the later ones, this one, too.
                for e in &earlier {
                    info!(key = %e.manifest_key, run_id = %e.run_id, "delivering an earlier run's undelivered manifest first");
                    match self.deliver_one(deliverer, &e.manifest_key).await {
                        Ok(_) => {}
                        Err(DeliverError::Busy { owner, .. }) => {
                            info!(key = %key, behind = %e.manifest_key, owner = %owner, "waiting behind an earlier run's delivery, whose owner carries on with this one");
                            return Ok(json!({ "waiting": key, "behind": e.manifest_key }));
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
                let result = match self.deliver_one(deliverer, &key).await {
                    Err(DeliverError::Busy { owner, .. }) => {
                        info!(key = %key, owner = %owner, "being delivered by another invocation, which carries on with what follows");
                        return Ok(json!({ "waiting": key, "behind": key }));
                    }
                    other => outcome(&key, other?)?,
                };
                // Then the runs after it that wait (their events may have found this one busy),
                // and those that committed meanwhile: asked again until none is left.
                let mut later = later;
                'carry: for _ in 0..CARRY_ROUNDS {
                    if later.is_empty() {
                        break;
                    }
                    for l in &later {
                        if stop_by.is_some_and(|s| Instant::now() >= s) {
                            break 'carry;
                        }
                        if let Err(e) = self.deliver_one(deliverer, &l.manifest_key).await {
                            info!(key = %l.manifest_key, error = %sluice_core::run::error_chain(&e), "a later run's delivery is left to its own event or the sweep");
                            break 'carry;
                        }
                    }
                    let table = Some(manifest.table.as_str());
                    later = undelivered(&self.history, &self.history, &self.store, &self.spec, table).await?;
                }
                Ok(result)
            }
        }
    }
}

/// How many times a delivery carries on with the later runs of its table, asking the history
/// again each time (runs that committed meanwhile), before it leaves the rest to their events
/// and the sweep.
const CARRY_ROUNDS: usize = 4;

/// How long an event that came before its run's commit waits for it, at most.
const COMMIT_WAIT: Duration = Duration::from_secs(16);

fn outcome(key: &str, outcome: DeliveryOutcome) -> Result<Value, FnError> {
    match outcome {
        DeliveryOutcome::Ignored { reason } => {
            debug!(key = %key, "{reason}");
            Ok(json!({ "ignored": key }))
        }
        DeliveryOutcome::Skipped(r) => Ok(json!({ "skipped": key, "why": r.skipped })),
        DeliveryOutcome::Duplicate(r) => {
            info!(key = %key, "already delivered; a duplicate event is skipped");
            Ok(json!({ "duplicate": key, "delivered_at": r.updated_at }))
        }
        DeliveryOutcome::Done(summary) => Ok(serde_json::to_value(&*summary).unwrap_or(Value::Null)),
    }
}
