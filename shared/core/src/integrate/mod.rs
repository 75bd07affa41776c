//! Integrations: what happens after the files land. One delivery reads a run's manifest, streams
//! its parts, maps each row to the API's properties and sends them in batches: rate limited,
//! a bounded number in flight, retried with backoff on 429/5xx/timeouts, split in halves when
//! the API refuses a batch whole, and checkpointed in the ledger so a retried invocation resumes
//! instead of resending. Records that fail for good go to `<run>/failures/<integration>.jsonl`;
//! delivered + failed always equals the manifest's row count.

pub mod api;
pub mod backlog;
pub mod event;
pub mod kinds;
pub mod mapping;
pub mod pace;
pub mod raw;
pub mod read;
pub mod spec;

mod pump;
mod send;

use chrono::Utc;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

use crate::error::error_chain;
use crate::error::BoxError;
use crate::layout::{self, RunFolder, MANIFEST_FILE};
use crate::manifest::Manifest;
pub use crate::ports::events::DeliverySummary;
use crate::ports::{
    Claim, DeliveryId, DeliveryLedger, DeliveryProgress, DeliveryRecord, DeliveryState, EventDetail, EventSink,
    ObjectMeta, ObjectStore, RunEvent, SettledBatch,
};
use crate::HistoryError;
use api::{Answer, Api, Batch, HttpClient, Operations, Outgoing};
use mapping::Mapper;
use pace::{backoff, NoSlot, Pace};
use read::{read_part, PartReading, ReadError, Row};
use spec::IntegrationSpec;

/// The delivery summary's schema version (the detail of `IntegrationSucceeded`/`IntegrationFailed`).
pub const DELIVERY_VERSION: u32 = 1;

/// The adapters a delivery works with.
#[derive(Clone, Copy)]
pub struct DeliveryPorts<'a> {
    /// The export's destination, where its manifests and parts are.
    pub store: &'a dyn ObjectStore,
    pub ledger: &'a dyn DeliveryLedger,
    pub http: &'a dyn HttpClient,
    pub events: &'a dyn EventSink,
    /// Where a token kept in Secrets Manager is read again when the API refuses it (rotated
    /// since it was read); `None` keeps the token the options give.
    pub secrets: Option<&'a dyn crate::ports::Secrets>,
}

#[derive(Clone)]
pub struct DeliveryOptions {
    /// Who delivers (`host:pid:random`), for the claim.
    pub owner: String,
    /// How long a claim lasts without a checkpoint: an owner that dies loses it after this.
    pub claim_ttl: Duration,
    /// When to stop starting requests (a Lambda's deadline less a margin): progress is saved and
    /// the next attempt resumes.
    pub stop_by: Option<Instant>,
    /// The API token, resolved by the caller from the integration's `token` location.
    pub token: Option<String>,
    /// The first retry waits up to this (then doubling, with jitter) ...
    pub retry_base: Duration,
    /// ... and never more than this, unless the server's `Retry-After` says more.
    pub retry_cap: Duration,
}

/// Everything but the token, which is never printed.
impl std::fmt::Debug for DeliveryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryOptions")
            .field("owner", &self.owner)
            .field("claim_ttl", &self.claim_ttl)
            .field("stop_by", &self.stop_by)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("retry_base", &self.retry_base)
            .field("retry_cap", &self.retry_cap)
            .finish()
    }
}

impl DeliveryOptions {
    pub fn new(owner: String) -> Self {
        DeliveryOptions {
            owner,
            claim_ttl: Duration::from_secs(120),
            stop_by: None,
            token: None,
            retry_base: Duration::from_millis(250),
            retry_cap: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
pub enum DeliveryOutcome {
    /// Not this integration's manifest (another export or table): acknowledged, nothing done.
    Ignored { reason: String },
    /// Delivered before: the event is a duplicate.
    Duplicate(Box<DeliveryRecord>),
    /// Every row delivered or written to the failures file.
    Done(Box<DeliverySummary>),
    /// Marked done by an operator without sending the rest (`Deliverer::skip`).
    Skipped(Box<DeliveryRecord>),
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("manifest {key} not found in {location}; check the key (events carry it URL-encoded) and that the run committed")]
    ManifestMissing { key: String, location: String },
    #[error("{key} is not a Sluice manifest: {problem}")]
    ManifestCorrupt { key: String, problem: String },
    #[error("integration {integration:?}: {key} is being delivered by {owner} until {expires_at}; this event is retried later and then skipped if that delivery finished")]
    Busy { integration: String, key: String, owner: String, expires_at: String },
    #[error("integration {integration:?}: {problem}; fix the integration's properties and retry")]
    Mapping { integration: String, problem: String },
    #[error(
        "integration {:?}: stopped after {} delivered and {} failed of {} rows: {reason}",
        .summary.integration, .summary.delivered, .summary.failed, .summary.rows
    )]
    Stopped {
        reason: String,
        summary: Box<DeliverySummary>,
        /// Stopped only because the invocation's time ran out: the next attempt resumes.
        at_deadline: bool,
    },
    #[error("integration {integration:?}: the delivery ledger failed")]
    Ledger {
        integration: String,
        #[source]
        source: HistoryError,
    },
    #[error("integration {integration:?}: {op} {key} failed")]
    Store {
        integration: String,
        op: &'static str,
        key: String,
        #[source]
        source: BoxError,
    },
}

/// A record that failed for good, as the failures file holds it: enough to see why and to send it
/// again (`sluice integrate --retry-failures`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRecord {
    /// The row's position among the manifest's rows.
    pub index: u64,
    /// `mapping` (its values could not take their types), `check` (the API cannot take it, e.g.
    /// no email) or `api` (the API refused it).
    pub stage: String,
    pub status: Option<u16>,
    pub error: String,
    /// The row as exported: column → value.
    pub row: Map<String, Value>,
}

/// A part to parse: its first row's index, what the manifest says of it, and its bytes.
type PartFeed = (u64, crate::manifest::PartInfo, tokio::sync::mpsc::Receiver<Result<Vec<u8>, BoxError>>);

/// Rows read from the parts, a batch's worth, in manifest order.
struct InputBatch {
    seq: u64,
    first: u64,
    rows: Vec<Row>,
}

/// What one batch came to.
struct BatchResult {
    seq: u64,
    delivered: u64,
    failures: Vec<FailedRecord>,
}

/// Why a batch could not be settled; the delivery stops and keeps its progress.
#[derive(Debug)]
enum Stop {
    /// The API keeps failing (or no answer): retried later.
    Exhausted(String),
    /// The API refuses in a way no retry fixes soon (credentials, endpoint, daily quota).
    Fatal(String),
    Deadline,
    Store(String, BoxError),
}

impl Stop {
    fn reason(&self) -> String {
        match self {
            Stop::Exhausted(m) => format!("the API kept failing: {m}"),
            Stop::Fatal(m) => m.clone(),
            Stop::Deadline => "stopped before the function's deadline; the next attempt resumes here".into(),
            Stop::Store(key, e) => format!("writing {key} failed: {}", error_chain(e.as_ref())),
        }
    }

    /// Whether an operator should hear of it now (a deadline is routine: the retry resumes).
    fn alarming(&self) -> bool {
        !matches!(self, Stop::Deadline)
    }
}

/// Folds batches settled ahead into the contiguous prefix.
fn settle(p: &mut DeliveryProgress, total_rows: u64) {
    p.ahead.sort_by_key(|b| b.seq);
    while let Some(pos) = p.ahead.iter().position(|b| b.seq * p.batch_size == p.settled_rows) {
        let b = p.ahead.remove(pos);
        p.delivered += b.delivered;
        p.failed += b.failed;
        p.settled_rows = ((b.seq + 1) * p.batch_size).min(total_rows);
    }
}

pub struct Deliverer<'a> {
    ports: DeliveryPorts<'a>,
    spec: &'a IntegrationSpec,
    api: Box<dyn Api>,
    pace: Pace<'a>,
    opts: DeliveryOptions,
    /// The token requests carry: the options', or the one read again after a refusal.
    token: std::sync::Mutex<Option<String>>,
    /// Whether the token was read again already: once per deliverer, so a token that is
    /// simply wrong stops the delivery after one more request, not a loop of them.
    token_reread: tokio::sync::Mutex<bool>,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl<'a> Deliverer<'a> {
    pub fn new(ports: DeliveryPorts<'a>, spec: &'a IntegrationSpec, opts: DeliveryOptions) -> Self {
        Deliverer {
            ports,
            spec,
            api: spec.kind.api(),
            pace: Pace::new(ports.ledger, &spec.name, spec.rate_limit, spec.daily_limit),
            token: std::sync::Mutex::new(opts.token.clone()),
            token_reread: tokio::sync::Mutex::new(false),
            opts,
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    /// The token requests carry now (after a re-read, the new one): callers that keep a token
    /// between deliveries take it from here.
    pub fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// After the API refused `used`: reads a Secrets Manager token again, once, and says
    /// whether it changed (rotated since it was read), so the request is worth sending again.
    async fn reread_token(&self, used: Option<&str>) -> bool {
        let (Some(secrets), Some(spec::TokenSource::SecretsManager(_))) = (self.ports.secrets, &self.spec.token) else {
            return false;
        };
        // Requests refused at once wait here for the one re-reading it.
        let mut reread = self.token_reread.lock().await;
        if *reread {
            // Read again already: send again if it changed since this request went.
            return self.token().as_deref() != used;
        }
        *reread = true;
        match resolve_token(self.spec, secrets).await {
            Ok(fresh) if fresh.as_deref() != used => {
                info!(integration = %self.spec.name, "the API refused the token and the secret holds another (rotated): using it");
                *self.token.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
                true
            }
            Ok(_) => false,
            Err(e) => {
                warn!(integration = %self.spec.name, error = %e, "reading the token again failed");
                false
            }
        }
    }

    /// Claims the delivery for this deliverer: its record, or (`Err`) the finished record of a
    /// delivery done before; `Busy` while another owner holds it.
    async fn claim(&self, id: &DeliveryId, rows: u64) -> Result<Result<DeliveryRecord, DeliveryRecord>, DeliverError> {
        let claim = self
            .ports
            .ledger
            .claim(id, &self.opts.owner, self.opts.claim_ttl, rows)
            .await
            .map_err(|e| self.ledger_err(e))?;
        match claim {
            Claim::Done(r) => Ok(Err(r)),
            Claim::Held { owner, expires_at } => Err(DeliverError::Busy {
                integration: self.spec.name.clone(),
                key: id.manifest_key.clone(),
                owner,
                expires_at: expires_at.to_rfc3339(),
            }),
            Claim::Mine(r) => Ok(Ok(r)),
        }
    }

    fn ledger_err(&self, source: HistoryError) -> DeliverError {
        DeliverError::Ledger { integration: self.spec.name.clone(), source }
    }

    fn store_err(&self, op: &'static str, key: &str, source: BoxError) -> DeliverError {
        DeliverError::Store { integration: self.spec.name.clone(), op, key: key.to_string(), source }
    }

    /// Delivers one manifest (its key relative to the store's root).
    pub async fn deliver(&self, manifest_key: &str) -> Result<DeliveryOutcome, DeliverError> {
        let (manifest, etag) = self.manifest(manifest_key).await?;
        if !self.spec.wants(&manifest.export, &manifest.table) {
            return Ok(DeliveryOutcome::Ignored {
                reason: format!(
                    "integration {:?} delivers export {:?}{}; this manifest is export {:?}, table {:?}",
                    self.spec.name,
                    self.spec.export,
                    self.spec.tables.as_ref().map(|t| format!(" (tables {})", t.join(", "))).unwrap_or_default(),
                    manifest.export,
                    manifest.table
                ),
            });
        }
        // Beside the manifest, one per integration.
        let folder = RunFolder::at(manifest_key.strip_suffix(MANIFEST_FILE).unwrap_or(manifest_key));
        let failures = folder.failures(&self.spec.name);
        self.deliver_rows(&manifest, manifest_key, etag, &failures).await
    }

    /// Marks the manifest's delivery done without sending what is left of it, for `who` and
    /// `why`: an operator's decision that a run's rows are not to go (the API will never take
    /// them, they are superseded). Later runs of its table are then delivered. Refused while
    /// another process holds the delivery; a delivery already done is left as it is.
    pub async fn skip(&self, manifest_key: &str, who: &str, why: &str) -> Result<DeliveryOutcome, DeliverError> {
        let (manifest, etag) = self.manifest(manifest_key).await?;
        let id = DeliveryId { integration: self.spec.name.clone(), manifest_key: manifest_key.into(), etag };
        let mut record = match self.claim(&id, manifest.totals.rows).await? {
            Ok(mine) => mine,
            Err(done) => return Ok(DeliveryOutcome::Duplicate(Box::new(done))),
        };
        let now = Utc::now();
        record.state = DeliveryState::Done;
        record.updated_at = now;
        record.skipped = Some(format!("skipped by {who} at {}: {why}", now.to_rfc3339()));
        self.ports.ledger.save(&record, &self.opts.owner, None).await.map_err(|e| self.ledger_err(e))?;
        info!(integration = %self.spec.name, manifest = %manifest_key, who, why, "delivery skipped by an operator");
        Ok(DeliveryOutcome::Skipped(Box::new(record)))
    }

    /// Sends again the records of a failures file (after the API or the mapping was fixed).
    /// Those that fail again go to `<failures file>.retry-<tag>.jsonl` beside it.
    pub async fn retry_failures(&self, failures: &str) -> Result<DeliveryOutcome, DeliverError> {
        let not_failures = || DeliverError::ManifestCorrupt {
            key: failures.into(),
            problem: "not a failures file: give the path of <run folder>/failures/<integration>.jsonl".into(),
        };
        let (folder, _) = RunFolder::of_failures(failures).ok_or_else(not_failures)?;
        let manifest_key = folder.manifest();
        let manifest = self.manifest(&manifest_key).await?.0;
        let (bytes, etag) = self.fetch(failures).await?;
        let rows = bytes.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).count() as u64;
        let part = crate::manifest::PartInfo { key: failures.into(), rows, bytes: bytes.len() as u64, sha256: None };
        let virtual_manifest = Manifest {
            parts: vec![part],
            totals: crate::manifest::Totals { rows, bytes: bytes.len() as u64, parts: 1 },
            // Described as uncompressed JSON lines, of the failures kind.
            format: crate::format::FormatDescription {
                kind: read::FAILURES_KIND.into(),
                ..crate::format::FileFormat::JsonLines(crate::format::JsonFormat {
                    compression: crate::format::Compression::None,
                    max_file_size: 0,
                })
                .describe()
            },
            ..manifest
        };
        let tag: String = etag.chars().take(8).collect();
        let again = layout::failures_retried(failures, &tag);
        self.deliver_rows(&virtual_manifest, failures, etag, &again).await
    }

    /// A small object (a manifest, a failures file) with its entity tag; absent is an error.
    async fn fetch(&self, key: &str) -> Result<(Vec<u8>, String), DeliverError> {
        let store = self.ports.store;
        match store.get_tagged(key).await {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(DeliverError::ManifestMissing { key: key.into(), location: store.location() }),
            Err(e) => Err(self.store_err("reading", key, e)),
        }
    }

    async fn manifest(&self, key: &str) -> Result<(Manifest, String), DeliverError> {
        let (bytes, etag) = self.fetch(key).await?;
        let manifest = serde_json::from_slice(&bytes)
            .map_err(|e| DeliverError::ManifestCorrupt { key: key.into(), problem: e.to_string() })?;
        Ok((manifest, etag))
    }

    /// Delivers the rows a manifest lists, recording the delivery under `key` and `etag` and
    /// the records that fail for good in `failures_key`.
    async fn deliver_rows(
        &self,
        manifest: &Manifest,
        manifest_key: &str,
        etag: String,
        failures_key: &str,
    ) -> Result<DeliveryOutcome, DeliverError> {
        let started = Instant::now();
        let started_at = Utc::now();
        let store = self.ports.store;
        let reading = PartReading::from_manifest(&manifest.format)
            .map_err(|e| DeliverError::ManifestCorrupt { key: manifest_key.into(), problem: e.to_string() })?;
        // A `check` table's rows say what happened to them (`_sluice_op`): the kind's API says
        // whether it takes the column as it is or only upserts (the column is then not sent, and
        // a delete fails its record into the failures file instead).
        let op_column = manifest.columns.iter().position(|c| c.name == crate::manifest::OP_COLUMN);
        let mut mapping = self.spec.mapping.clone();
        let upsert_only = matches!(self.api.operations(), Operations::UpsertOnly { .. });
        if upsert_only && op_column.is_some() && mapping.properties.is_none() {
            mapping.drop.push(crate::manifest::OP_COLUMN.into());
        }
        let refuse_deletes = if upsert_only { op_column } else { None };
        let mapper = Mapper::new(&mapping, &manifest.columns)
            .map_err(|problem| DeliverError::Mapping { integration: self.spec.name.clone(), problem: problem.0 })?
            .refusing_deletes(refuse_deletes);
        if let Some(required) = self.api.required_property() {
            if !mapper.has(required.property) {
                return Err(DeliverError::Mapping {
                    integration: self.spec.name.clone(),
                    problem: format!(
                        "no property {:?} to match {} on; {}",
                        required.property, required.matches, required.hint
                    ),
                });
            }
        }

        let id = DeliveryId { integration: self.spec.name.clone(), manifest_key: manifest_key.into(), etag };
        let rows = manifest.totals.rows;
        let mut record = match self.claim(&id, rows).await? {
            Ok(mine) => mine,
            Err(done) => return Ok(DeliveryOutcome::Duplicate(Box::new(done))),
        };
        if record.progress.batch_size == 0 {
            record.progress.batch_size = self.spec.batch_size as u64;
        }
        if record.progress.settled_rows > 0 || !record.progress.ahead.is_empty() {
            info!(integration = %self.spec.name, manifest = %manifest_key, settled = record.progress.settled_rows,
                  attempt = record.attempts, "resuming a delivery");
        }
        let mut summary = DeliverySummary {
            version: DELIVERY_VERSION,
            integration: self.spec.name.clone(),
            kind: self.spec.kind_name().into(),
            export: manifest.export.clone(),
            table: manifest.table.clone(),
            run_id: manifest.run_id.clone(),
            manifest_key: manifest_key.into(),
            rows,
            delivered: 0,
            failed: 0,
            failures_key: None,
            done: false,
            requests: 0,
            retries: 0,
            started_at,
            finished_at: started_at,
            duration_ms: 0,
            error: None,
        };

        // Idempotency keys: the same for the same records of the same manifest version, every time.
        let key_prefix =
            format!("sluice-{}", short_hash(&format!("{}\n{}\n{}", id.integration, id.manifest_key, id.etag)));
        let stop = self.pump(manifest, &reading, &mapper, &mut record, failures_key, &key_prefix).await;
        (summary.delivered, summary.failed) = record.progress.totals();
        summary.requests = self.requests.load(Ordering::Relaxed);
        summary.retries = self.retries.load(Ordering::Relaxed);

        if let Err(stop) = stop {
            let reason = stop.reason();
            let at_deadline = !stop.alarming();
            record.error = Some(reason.clone());
            record.updated_at = Utc::now();
            if let Err(e) = self.ports.ledger.save(&record, &self.opts.owner, None).await {
                warn!(integration = %self.spec.name, error = %e, "saving the progress of a stopped delivery failed; its batches are sent again");
            }
            summary.error = Some(reason.clone());
            summary.finished_at = Utc::now();
            summary.duration_ms = started.elapsed().as_millis() as u64;
            if stop.alarming() {
                self.publish("IntegrationFailed", &summary).await;
            }
            return Err(DeliverError::Stopped { reason, summary: Box::new(summary), at_deadline });
        }

        // Every row is settled: gather the failures, then mark the delivery done.
        if summary.failed > 0 {
            self.merge_failures(failures_key).await?;
            summary.failures_key = Some(failures_key.to_string());
        }
        record.state = DeliveryState::Done;
        record.failures_key = summary.failures_key.clone();
        record.error = None;
        record.updated_at = Utc::now();
        self.ports.ledger.save(&record, &self.opts.owner, None).await.map_err(|e| self.ledger_err(e))?;
        if summary.failed > 0 {
            if let Err(e) = store.delete_prefix(&layout::failure_pieces(failures_key)).await {
                warn!(integration = %self.spec.name, error = %e, "removing the failure pieces failed; they are only leftovers");
            }
        }
        summary.done = true;
        summary.finished_at = Utc::now();
        summary.duration_ms = started.elapsed().as_millis() as u64;
        let detail_type = if summary.failed == 0 { "IntegrationSucceeded" } else { "IntegrationFailed" };
        if summary.failed > 0 {
            summary.error = Some(format!("{} of {} records failed; see {failures_key}", summary.failed, rows));
        }
        self.publish(detail_type, &summary).await;
        info!(integration = %self.spec.name, manifest = %manifest_key, delivered = summary.delivered,
              failed = summary.failed, requests = summary.requests, retries = summary.retries, "delivery done");
        Ok(DeliveryOutcome::Done(Box::new(summary)))
    }

    async fn publish(&self, detail_type: &str, summary: &DeliverySummary) {
        let event = RunEvent { detail_type: detail_type.into(), detail: EventDetail::Integration(summary.clone()) };
        if let Err(e) = self.ports.events.publish(&event).await {
            warn!(integration = %self.spec.name, error = %e, "publishing the delivery event failed");
        }
    }

    fn past_deadline(&self) -> bool {
        self.opts.stop_by.is_some_and(|t| Instant::now() >= t)
    }
}

/// The integration's API token from where its `token` says: an environment variable, or a
/// Secrets Manager secret holding the token or JSON with a `token` field. Errors name the
/// location, never a value.
pub async fn resolve_token(
    spec: &IntegrationSpec,
    secrets: &dyn crate::ports::Secrets,
) -> Result<Option<String>, String> {
    let token = match &spec.token {
        None => return Ok(None),
        Some(spec::TokenSource::Env(var)) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => {
                return Err(format!(
                    "token: environment variable {var} is not set; export it, or use token = \"secretsmanager:…\""
                ))
            }
        },
        Some(spec::TokenSource::SecretsManager(id)) => {
            let raw = secrets.secret_string(id).await.map_err(|e| format!("token: {}", error_chain(e.as_ref())))?;
            match serde_json::from_str::<Value>(&raw) {
                Ok(Value::Object(o)) => match o.get("token").and_then(Value::as_str) {
                    Some(t) => t.trim().to_string(),
                    None => return Err(format!("token: secret {id:?} is JSON without a \"token\" field; store the token alone or as {{\"token\": \"…\"}}")),
                },
                _ => raw.trim().to_string(),
            }
        }
    };
    if token.is_empty() || token.contains(['\r', '\n']) {
        return Err("token: the stored token is empty or spans lines".into());
    }
    Ok(Some(token))
}

/// Checkpoints are written at most this often (and after every batch with failures): a killed
/// invocation resends at most this long's batches, under the same idempotency keys.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(s.as_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_settled_out_of_order_join_the_prefix_when_the_gap_closes() {
        let mut p = DeliveryProgress { batch_size: 10, ..Default::default() };
        p.ahead.push(SettledBatch { seq: 1, delivered: 9, failed: 1 });
        settle(&mut p, 25);
        assert_eq!((p.settled_rows, p.ahead.len()), (0, 1));
        p.ahead.push(SettledBatch { seq: 2, delivered: 5, failed: 0 });
        p.ahead.push(SettledBatch { seq: 0, delivered: 10, failed: 0 });
        settle(&mut p, 25);
        assert_eq!((p.settled_rows, p.delivered, p.failed, p.ahead.len()), (25, 24, 1, 0));
    }

    #[test]
    fn the_failures_file_sits_beside_the_manifest() {
        let folder = RunFolder::of_manifest("e/t/r1/manifest.json").unwrap();
        assert_eq!(folder.failures("hub"), "e/t/r1/failures/hub.jsonl");
        assert_eq!(layout::failure_pieces("e/t/r1/failures/hub.jsonl"), "e/t/r1/failures/hub.pieces/");
    }
}
