//! The export function's wiring: settings from the environment, read once at cold start, and
//! one request turned into one call of `sluice_core::run`. Everything it decides lives in
//! `sluice-core`; everything it talks to lives in `sluice-aws`, and sources are opened by
//! `sluice-connect`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_aws::{DynamoHistory, EventBridgeSink, S3Store, SecretsManager};
use sluice_connect::S3Location;
use sluice_core::alert::{Watch, Watched, Webhook};
use sluice_core::catalog::{CatalogError, Exports};
use sluice_core::cursor::{move_cursor, MoveError, MoveRequest, Target};
use sluice_core::orchestrate::Skip;
use sluice_core::ports::Source;
use sluice_core::request::{ExportRequest, MoveCursor, RequestError};
use sluice_core::run::{ExportRunSummary, Ports, Quiet, RunOptions, Runner};
use sluice_core::spec::{Config, ConfigError, ExportSpec};
use sluice_core::verify::{Scope, Verifier};

/// Time kept back from the Lambda deadline to remove a stopped run's parts, record it and
/// publish its event.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(15);
/// A function run holds its export's lease this long between renewals (the 15-minute Lambda
/// maximum plus slack: a crashed invocation's lease frees itself soon after).
pub const LEASE_TTL: Duration = Duration::from_secs(20 * 60);

/// What can go wrong, by kind: the kind becomes the Lambda error type, so alarms and retries
/// can tell a bad request (never retried usefully) from a failed run.
#[derive(Debug, thiserror::Error)]
pub enum FnError {
    #[error("setting {name}: {problem}")]
    Setting { name: &'static str, problem: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config file could not be fetched or is not valid.
    #[error(transparent)]
    ConfigLoad(#[from] sluice_aws::ConfigLoadError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("export {export:?} writes to {destination}; the function writes to S3 only: set destination = \"s3://bucket/prefix\"")]
    Destination { export: String, destination: String },
    #[error("export {export:?}: opening source {source_name:?} failed: {source}")]
    Source {
        export: String,
        source_name: String,
        #[source]
        source: sluice_core::BoxError,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Run(#[from] sluice_core::Error),
    #[error("{0}")]
    RunFailed(String),
    /// A cursor move refused or failed (the message says why and what to do).
    #[error(transparent)]
    Move(#[from] sluice_core::cursor::MoveError),
    #[error("export {export:?}: verifying failed: {source}")]
    Verify { export: String, source: sluice_core::BoxError },
}

impl FnError {
    /// The Lambda error type: what kind of failure, for alarms and for deciding on retries.
    pub fn error_type(&self) -> &'static str {
        match self {
            FnError::Request(_)
            | FnError::Config(ConfigError::UnknownExport { .. })
            | FnError::Catalog(CatalogError::WrongState { .. }) => "Sluice.InvalidRequest",
            FnError::Catalog(CatalogError::Store(_)) => "Sluice.RunFailed",
            FnError::Catalog(_) => "Sluice.Configuration",
            FnError::Setting { .. } | FnError::Config(_) | FnError::ConfigLoad(_) | FnError::Destination { .. } => {
                "Sluice.Configuration"
            }
            FnError::Source { .. } => "Sluice.SourceUnavailable",
            FnError::Run(e) if e.is_lease_held() => "Sluice.AlreadyRunning",
            FnError::Run(_) | FnError::RunFailed(_) => "Sluice.RunFailed",
            FnError::Move(sluice_core::cursor::MoveError::Refused(_)) => "Sluice.InvalidRequest",
            FnError::Move(sluice_core::cursor::MoveError::Busy { .. }) => "Sluice.AlreadyRunning",
            FnError::Move(_) | FnError::Verify { .. } => "Sluice.RunFailed",
        }
    }
}

/// Settings from the environment: those every function reads ([`sluice_aws::FunctionSettings`]).
pub type Settings = sluice_aws::FunctionSettings;

/// The export function's settings, with its deadline margin by default.
pub fn settings_from_env() -> Result<Settings, FnError> {
    Ok(Settings::from_env(DEFAULT_DEADLINE_MARGIN)?)
}

impl From<sluice_aws::SettingError> for FnError {
    fn from(e: sluice_aws::SettingError) -> FnError {
        FnError::Setting { name: e.name, problem: e.problem }
    }
}

/// What an invocation did: a run (its summary), or nothing, and why.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Ran(ExportRunSummary),
    Skipped {
        skipped: String,
    },
    /// A cursor moved by hand.
    Moved {
        moved: sluice_core::cursor::Moved,
    },
    /// A verification's report: whether every chain verified, and what was found.
    Verified {
        verified: bool,
        report: sluice_core::verify::Report,
    },
    /// The freshness check: how many exports it looked at, and the alerts it opened or
    /// resolved.
    Checked {
        checked: usize,
        alerts: Vec<sluice_core::alert::AlertEvent>,
    },
}

/// Everything built once per cold start.
pub struct App {
    pub settings: Settings,
    pub config: Config,
    s3: aws_sdk_s3::Client,
    history: DynamoHistory,
    events: EventBridgeSink,
    secrets: SecretsManager,
    /// Posts alerts to an export's webhook (its URL a secret the stack lets this function read).
    http: sluice_http::ReqwestClient,
    /// Open sources (a Snowflake session) by name, kept across invocations of a warm function;
    /// a failed run drops its source so the next one logs in afresh.
    sources: tokio::sync::Mutex<HashMap<String, Arc<dyn Source>>>,
    host: String,
    /// The runtime's shutdown signal (SIGTERM), when the binary watches it: a run under way
    /// stops cleanly, recorded as interrupted, and releases its lease.
    interrupt: Option<sluice_core::stop::Interrupt>,
}

impl App {
    pub async fn init(settings: Settings) -> Result<App, FnError> {
        let sdk = sluice_aws::client_config().await;
        let s3 = sluice_aws::s3_client(&sdk);
        let config = sluice_aws::load_config(&s3, &settings.config, sluice_connect::KINDS).await?;
        // The config says where credentials go; the stack says where they may go.
        if let Some(problem) = settings.secret_hosts.check_sources(&config).into_iter().next() {
            return Err(FnError::Setting { name: "SLUICE_SECRET_HOSTS", problem });
        }
        for w in &config.warnings {
            tracing::warn!(key = %w.key, "{}", w);
        }
        let history = DynamoHistory::new(aws_sdk_dynamodb::Client::new(&sdk), &settings.history_table)
            .with_record_ttl(settings.record_ttl);
        let events = EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), &settings.event_bus);
        let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk));
        let host = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| "lambda".into());
        let http = sluice_http::ReqwestClient::new().map_err(|problem| FnError::Setting { name: "HTTP", problem })?;
        Ok(App {
            settings,
            config,
            s3,
            history,
            events,
            secrets,
            http,
            sources: Default::default(),
            host,
            interrupt: None,
        })
    }

    /// Runs started after this stop cleanly when `interrupt` fires (the runtime's SIGTERM).
    pub fn interruptible(self, interrupt: sluice_core::stop::Interrupt) -> App {
        App { interrupt: Some(interrupt), ..self }
    }

    async fn source(&self, export: &str, name: &str) -> Result<Arc<dyn Source>, FnError> {
        let mut open = self.sources.lock().await;
        if let Some(s) = open.get(name) {
            return Ok(s.clone());
        }
        let spec = self.config.sources.get(name).ok_or_else(|| FnError::Setting {
            name: "SLUICE_CONFIG",
            problem: format!("source {name:?} is not defined"),
        })?;
        let source = sluice_connect::open_source(spec, &self.secrets).await.map_err(|source| FnError::Source {
            export: export.to_string(),
            source_name: name.to_string(),
            source,
        })?;
        open.insert(name.to_string(), source.clone());
        Ok(source)
    }

    /// The export to run: the catalog's active version if it manages one of this name (read
    /// per invocation, so `sluice exports activate` takes effect at once), else the config's.
    /// An orchestration's invocation runs only while the orchestration and the export run.
    async fn export(&self, request: &ExportRequest) -> Result<Result<ExportSpec, Skip>, FnError> {
        let managed = Exports { catalog: &self.history, config: &self.config, who: String::new() };
        if let Some(orchestration) = &request.orchestration {
            return Ok(managed.scheduled(&request.export, orchestration).await?);
        }
        match managed.active(&request.export).await? {
            Some(spec) => Ok(Ok(spec)),
            None => Ok(Ok(self.config.export(&request.export)?.clone())),
        }
    }

    /// Moves a table's cursor, as `sluice state rewind|set` does.
    async fn move_cursor(&self, export: &ExportSpec, store: &S3Store, m: &MoveCursor) -> Result<Outcome, FnError> {
        let to = match (&m.to_run, &m.to) {
            (Some(run), None) => Target::Run(run.clone()),
            (None, Some(v)) => Target::Value(v.clone()),
            _ => {
                return Err(MoveError::Refused(
                    "move_cursor takes one of \"to_run\" (a run id) or \"to\" (a value)".into(),
                )
                .into())
            }
        };
        let req = MoveRequest {
            export,
            table: &m.table,
            to,
            forward: m.skip,
            by: m.by.clone().unwrap_or_else(|| "the export function's caller".into()),
            reason: m.reason.clone(),
            host: self.host.clone(),
        };
        let moved = move_cursor(&self.history, store, &req).await?;
        tracing::info!(export = %export.name, table = %moved.table, from = %moved.from, to = %moved.to, by = %req.by, "cursor moved");
        Ok(Outcome::Moved { moved })
    }

    /// Alerts through the stack's bus, and the export's webhook where the stack allows its host.
    fn watch<'a>(&'a self, webhook: &'a Webhook<'a>) -> Watch<'a> {
        Watch { history: &self.history, alerts: &self.history, events: &self.events, notify: Some(webhook) }
    }

    fn webhook(&self) -> Webhook<'_> {
        Webhook { http: &self.http, secrets: &self.secrets, hosts: Some(&self.settings.secret_hosts) }
    }

    /// Alerts after a run (or a run that could not start); never the run's outcome.
    async fn alert_after_run(&self, target: &Watched, outcome: Result<&ExportRunSummary, String>) {
        let webhook = self.webhook();
        let watch = self.watch(&webhook);
        let result = match outcome {
            Ok(summary) => watch.after_run(target, summary).await,
            Err(why) => watch.after_run_error(target, &why, chrono::Utc::now()).await,
        };
        if let Err(e) = result {
            tracing::warn!(export = %target.export.name, error = %sluice_core::error::error_chain(&e), "alerts not checked");
        }
    }

    /// The freshness of every export that can run, on the stack's alerts schedule: an export
    /// whose schedule stopped firing has no run to alert after.
    async fn check_alerts(&self) -> Result<Outcome, FnError> {
        let managed = Exports { catalog: &self.history, config: &self.config, who: String::new() };
        let (config, _, invalid) = managed.with_runnable().await?;
        for problem in invalid {
            tracing::warn!("{problem}; its freshness is not checked until it is fixed");
        }
        let targets = sluice_core::alert::targets(&self.history, &config)
            .await
            .map_err(|e| FnError::Catalog(CatalogError::Store(e)))?;
        let webhook = self.webhook();
        let watch = self.watch(&webhook);
        let now = chrono::Utc::now();
        let mut alerts = Vec::new();
        for target in &targets {
            // One export's unreadable records do not keep the others unchecked.
            match watch.check(target, now).await {
                Ok(announced) => alerts.extend(announced),
                Err(e) => {
                    tracing::warn!(export = %target.export.name, error = %sluice_core::error::error_chain(&e), "freshness not checked")
                }
            }
        }
        Ok(Outcome::Checked { checked: targets.len(), alerts })
    }

    /// The alert target of an export this function runs (the file's, if the catalog cannot
    /// be read: the run's alerts still go out).
    async fn target(&self, export: &ExportSpec) -> Watched {
        sluice_core::alert::watched(&self.history, export).await.unwrap_or_else(|_| Watched::of(export))
    }

    /// Runs the export an invocation asks for; `deadline` is the invocation's.
    pub async fn handle(&self, event: &serde_json::Value, deadline: Option<Instant>) -> Result<Outcome, FnError> {
        if sluice_core::request::is_alerts_check(event)? {
            return self.check_alerts().await;
        }
        let request = ExportRequest::from_event(event)?;
        let export = match self.export(&request).await? {
            Ok(spec) => spec,
            Err(Skip(reason)) => {
                // Not an error: a retry or a dead letter would not change the answer.
                tracing::info!(export = %request.export, "skipped: {reason}");
                return Ok(Outcome::Skipped { skipped: reason });
            }
        };
        let export = &export;
        let Some(S3Location { bucket, prefix }) = export.destination.settings_as::<S3Location>() else {
            return Err(FnError::Destination {
                export: export.name.clone(),
                destination: export.destination.to_string(),
            });
        };
        let store = S3Store::new(self.s3.clone(), bucket, prefix, self.settings.encryption.clone());
        // Requests that do not read the source.
        if let Some(m) = &request.move_cursor {
            return self.move_cursor(export, &store, m).await;
        }
        if let Some(v) = &request.verify {
            if let Some(t) = v.table.as_ref().filter(|t| !export.tables.iter().any(|x| &x.name == *t)) {
                let has: Vec<&str> = export.tables.iter().map(|t| t.name.as_str()).collect();
                let why = format!("export {:?} has no table {t:?}; it has: {}", export.name, has.join(", "));
                return Err(FnError::Request(RequestError::Malformed(why)));
            }
            let scope = Scope { export: Some(export.name.clone()), table: v.table.clone(), since: v.since.clone() };
            let verifier = Verifier { store: &store, history: Some(&self.history) };
            let report = verifier
                .verify(&scope)
                .await
                .map_err(|source| FnError::Verify { export: export.name.clone(), source })?;
            return Ok(Outcome::Verified { verified: report.violations() == 0, report });
        }
        let target = self.target(export).await;
        let source = match self.source(&export.name, &export.source).await {
            Ok(source) => source,
            Err(e) => {
                self.alert_after_run(&target, Err(sluice_core::error::error_chain(&e))).await;
                return Err(e);
            }
        };
        let opts = RunOptions {
            full_refresh: request.full_refresh,
            tables: request.tables,
            host: self.host.clone(),
            pid: std::process::id(),
            lease_ttl: LEASE_TTL,
            stop_by: deadline.map(|d| d.checked_sub(self.settings.deadline_margin).unwrap_or(d)),
            interrupt: self.interrupt.clone(),
            backfill: request.backfill.clone(),
        };
        let ports = Ports { source: source.as_ref(), store: &store, history: &self.history, events: &self.events };
        let summary = Runner::new(ports, &Quiet).run(export, &opts).await;
        if !matches!(&summary, Ok(s) if s.succeeded) {
            self.sources.lock().await.remove(&export.source);
        }
        match &summary {
            Ok(s) => self.alert_after_run(&target, Ok(s)).await,
            // Busy, or a backfill refused for what it asked: not a failed run.
            Err(e) if e.is_lease_held() || matches!(e, sluice_core::Error::Backfill { .. }) => {}
            Err(e) => self.alert_after_run(&target, Err(sluice_core::error::error_chain(e))).await,
        }
        let summary = summary?;
        // Metrics ride on a log line (Embedded Metric Format): no extra API call.
        println!("{}", sluice_aws::emf_line(&summary));
        if summary.succeeded {
            Ok(Outcome::Ran(summary))
        } else {
            let tables: Vec<String> =
                summary.tables.iter().filter_map(|t| t.error.as_ref().map(|e| format!("{}: {e}", t.table))).collect();
            Err(FnError::RunFailed(format!(
                "export {:?} run {} failed: {}",
                summary.export,
                summary.run_id,
                tables.join("; ")
            )))
        }
    }
}
