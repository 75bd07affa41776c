//! Wiring: builds the adapters a config names. The embedded ones (SQLite source, folder
//! destination, history file) are the default. With the `aws` feature, `s3://` destinations,
//! a DynamoDB history (`--history dynamodb://TABLE`) and EventBridge events (`--event-bus`) are
//! available too, configured from the standard AWS environment (profiles, `AWS_ENDPOINT_URL`).

use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;

use sluice_core::catalog::{Catalog, Exports, Lifecycle};
use sluice_core::integrate::api::HttpClient;
use sluice_core::orchestrate::{RecordOnly, RuleSpec, Scheduler};
use sluice_core::ports::{
    AlertStore, DeliveryLedger, EventSink, HistoryStore, NoSecrets, ObjectStore, Secrets, Source,
};
use sluice_core::spec::{Config, Destination, ExportSpec, SourceSpec};
use sluice_core::BoxError;
use sluice_local::{DirectoryStore, JsonlEventLog, SqliteHistory};

/// Where the history lives, as given by `--history` or the config.
pub const DYNAMODB_SCHEME: &str = "dynamodb://";

pub struct App {
    /// The config file's sources and integrations, with the exports that can run: the file's
    /// and the catalog's active or paused ones (the catalog's version wins on a shared name).
    pub config: Config,
    /// The config file as read, without catalog exports: what definitions are checked against.
    pub file_config: Config,
    /// Managed exports, in the same store as the history.
    pub catalog: Arc<dyn Catalog>,
    pub history: Arc<dyn HistoryStore>,
    /// The integrations' delivery ledger, beside the history.
    pub ledger: Arc<dyn DeliveryLedger>,
    /// Each export's alerts (open, resolved), beside the history.
    pub alerts: Arc<dyn AlertStore>,
    pub events: Box<dyn EventSink>,
    http: std::sync::OnceLock<sluice_http::ReqwestClient>,
    pub host: String,
    /// The DynamoDB table of `--history dynamodb://TABLE`.
    dynamodb_table: Option<String>,
    #[cfg(feature = "aws")]
    aws: Option<aws_config::SdkConfig>,
}

/// The settings that say where orchestrations' EventBridge rules go: the stack's outputs.
pub const RULE_PREFIX_VAR: &str = "SLUICE_RULE_PREFIX";
pub const EXPORT_FUNCTION_VAR: &str = "SLUICE_EXPORT_FUNCTION_ARN";

/// A scheduler the environment does not say enough about: fine until a rule must change.
struct Unconfigured(String);

#[async_trait::async_trait]
impl Scheduler for Unconfigured {
    async fn put(&self, _: &RuleSpec) -> Result<(), BoxError> {
        Err(self.0.clone().into())
    }
    async fn remove(&self, _: &str) -> Result<(), BoxError> {
        Err(self.0.clone().into())
    }
    fn rule_name(&self, _: &str, _: &str) -> Result<String, sluice_core::error::Invalid> {
        Err(self.0.clone().into())
    }
    fn ready(&self) -> Result<(), sluice_core::error::Invalid> {
        Err(self.0.clone().into())
    }
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // gethostname fills a NUL-terminated name; on failure the lease just says "localhost".
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".into()
    }
}

#[cfg(not(feature = "aws"))]
fn needs_aws(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} needs the AWS adapters, and this build of sluice does not include them: build it with `cargo build -p sluice-cli --features aws` (or use a local folder and history file)"
    )
}

impl App {
    pub async fn open(config: Config, history: Option<PathBuf>, event_bus: Option<String>) -> Result<App> {
        let host = hostname();
        let history_path = history.unwrap_or_else(|| config.history_path());
        let table = history_path.to_str().and_then(|h| h.strip_prefix(DYNAMODB_SCHEME)).map(str::to_string);
        let wants_aws = table.is_some()
            || event_bus.is_some()
            || config.exports.iter().any(writes_to_s3)
            || config.sources.values().any(|s| s.settings().reads_secrets_manager())
            // An alert webhook's URL kept in Secrets Manager.
            || config.exports.iter().any(|e| matches!(e.alerts.webhook, Some(sluice_core::trust::TokenSource::SecretsManager(_))));

        #[cfg(feature = "aws")]
        let aws = if wants_aws { Some(sluice_aws::client_config().await) } else { None };
        #[cfg(not(feature = "aws"))]
        let _ = wants_aws;

        // One store serves as both the history and the delivery ledger (one connection, one client).
        type Stores = (Arc<dyn HistoryStore>, Arc<dyn DeliveryLedger>, Arc<dyn Catalog>, Arc<dyn AlertStore>);
        let (history, ledger, catalog, alerts): Stores = match &table {
            Some(_t) => {
                #[cfg(feature = "aws")]
                {
                    let sdk = aws.as_ref().context("AWS configuration")?;
                    let store = Arc::new(sluice_aws::DynamoHistory::new(aws_sdk_dynamodb::Client::new(sdk), _t));
                    (store.clone(), store.clone(), store.clone(), store)
                }
                #[cfg(not(feature = "aws"))]
                return Err(needs_aws("a DynamoDB history"));
            }
            None => {
                let store = Arc::new(
                    SqliteHistory::open(&history_path, &host)
                        .with_context(|| format!("opening the history file {}", history_path.display()))?,
                );
                (store.clone(), store.clone(), store.clone(), store)
            }
        };
        let file_config = config.clone();
        let (config, shadowed, invalid) =
            Exports { catalog: catalog.as_ref(), config: &file_config, who: String::new() }
                .with_runnable()
                .await
                .map_err(|e| anyhow!(e).context("reading the managed exports (sluice exports list)"))?;
        for name in shadowed {
            tracing::warn!(export = %name, "the catalog's active version is used, not the config file's export of the same name");
        }
        for problem in invalid {
            tracing::warn!("{problem}; it is left out until it is fixed (sluice exports edit, then activate)");
        }
        #[cfg(feature = "aws")]
        let aws = match aws {
            None if config.exports.iter().any(writes_to_s3) => Some(sluice_aws::client_config().await),
            other => other,
        };
        let events: Box<dyn EventSink> = match (&event_bus, &table) {
            (Some(_bus), _) => {
                #[cfg(feature = "aws")]
                {
                    let sdk = aws.as_ref().context("AWS configuration")?;
                    Box::new(sluice_aws::EventBridgeSink::new(aws_sdk_eventbridge::Client::new(sdk), _bus))
                }
                #[cfg(not(feature = "aws"))]
                return Err(needs_aws("publishing to EventBridge"));
            }
            // A DynamoDB history without a bus: events go to a file in the working folder.
            (None, Some(_)) => Box::new(JsonlEventLog::new(PathBuf::from("sluice-events.jsonl"))),
            (None, None) => Box::new(JsonlEventLog::new(history_path.with_file_name("events.jsonl"))),
        };
        Ok(App {
            config,
            file_config,
            catalog,
            history,
            ledger,
            alerts,
            http: std::sync::OnceLock::new(),
            events,
            host,
            dynamodb_table: table,
            #[cfg(feature = "aws")]
            aws,
        })
    }

    /// Where orchestrations' rules go: EventBridge with a DynamoDB history (the stack's rule
    /// prefix and export function from the environment), records only with a history file.
    pub fn scheduler(&self) -> Result<Box<dyn Scheduler>> {
        if self.dynamodb_table.is_none() {
            return Ok(Box::new(RecordOnly));
        }
        let (prefix, target) = (std::env::var(RULE_PREFIX_VAR), std::env::var(EXPORT_FUNCTION_VAR));
        let (Ok(_prefix), Ok(_target)) = (prefix, target) else {
            return Ok(Box::new(Unconfigured(format!(
                "orchestrations in AWS need {RULE_PREFIX_VAR} and {EXPORT_FUNCTION_VAR}: set them to the stack's \
                 OrchestrationRulePrefix and ExportFunctionArn outputs"
            ))));
        };
        #[cfg(feature = "aws")]
        {
            let sdk = self.aws.as_ref().context("AWS configuration")?;
            Ok(Box::new(sluice_aws::EventBridgeScheduler::new(
                aws_sdk_eventbridge::Client::new(sdk),
                &_prefix,
                &_target,
            )))
        }
        #[cfg(not(feature = "aws"))]
        Err(needs_aws("EventBridge rules"))
    }

    /// The HTTP client integrations send with, built on first use.
    pub fn http(&self) -> Result<&dyn HttpClient> {
        if self.http.get().is_none() {
            let client = sluice_http::ReqwestClient::new().map_err(|e| anyhow!(e))?;
            let _ = self.http.set(client);
        }
        Ok(self.http.get().expect("set above"))
    }

    /// An export that can run, by name; a managed export that cannot (a draft, deleted) is
    /// named with its state and the command that changes it, not as unknown to the file.
    pub async fn export(&self, name: &str) -> Result<&ExportSpec> {
        if let Ok(e) = self.config.export(name) {
            return Ok(e);
        }
        let entry = self.catalog.entry(name).await.map_err(|e| anyhow!(e))?;
        let why = match entry.map(|e| e.state) {
            None => return Err(self.config.export(name).map_err(|e| anyhow!(e)).expect_err("not found above")),
            Some(Lifecycle::Draft) => format!(
                "managed export {name:?} is a draft and does not run: activate it with `sluice exports activate {name}`"
            ),
            Some(Lifecycle::Deleted) => format!(
                "managed export {name:?} was deleted: `sluice exports create --from FILE` makes a new draft under its name"
            ),
            // Active or paused but not runnable: its definition no longer validates (warned).
            Some(state) => format!(
                "managed export {name:?} is {} but its definition no longer validates against the file (see the warning above): \
                 fix it with `sluice exports edit {name}`, then activate it",
                state.as_str()
            ),
        };
        Err(anyhow!(crate::commands::Usage(why)))
    }

    /// The export's source spec.
    pub fn source_spec(&self, export: &ExportSpec) -> Result<&SourceSpec> {
        self.config.sources.get(&export.source).ok_or_else(|| {
            anyhow!("export {:?} names source {:?}, which the config does not define", export.name, export.source)
        })
    }

    /// Opens the export's source (for Snowflake: reads the credentials and logs in).
    pub async fn source(&self, export: &ExportSpec) -> Result<Arc<dyn Source>> {
        let spec = self.source_spec(export)?;
        sluice_connect::open_source(spec, self.secrets().as_ref())
            .await
            .map_err(|e| anyhow!(e).context(format!("export {:?}: opening source {:?}", export.name, export.source)))
    }

    /// Where source secrets come from: Secrets Manager with the `aws` feature.
    pub fn secrets(&self) -> Box<dyn Secrets> {
        #[cfg(feature = "aws")]
        if let Some(sdk) = &self.aws {
            return Box::new(sluice_aws::SecretsManager::new(aws_sdk_secretsmanager::Client::new(sdk)));
        }
        Box::new(NoSecrets(
            "this build of sluice reads no secret store: build it with `--features aws`, or use credentials = \"env\"",
        ))
    }

    /// The export's destination as a store, by the kind it is of.
    pub fn store(&self, export: &ExportSpec) -> Result<Box<dyn ObjectStore>> {
        #[cfg(feature = "aws")]
        let aws = self.aws.as_ref();
        #[cfg(not(feature = "aws"))]
        let aws = None;
        open_store(&export.destination, aws)
            .with_context(|| format!("export {:?} writes to {}", export.name, export.destination))
    }
}

/// The AWS settings a store in S3 is opened with (none in a build without AWS).
#[cfg(feature = "aws")]
pub type AwsConfig = aws_config::SdkConfig;
#[cfg(not(feature = "aws"))]
pub type AwsConfig = ();

/// A destination as a store, by the kind it is of.
pub fn open_store(destination: &Destination, _aws: Option<&AwsConfig>) -> Result<Box<dyn ObjectStore>> {
    if let Some(folder) = destination.settings_as::<sluice_local::Folder>() {
        return Ok(Box::new(DirectoryStore::new(folder.path.clone())));
    }
    if let Some(_s3) = destination.settings_as::<sluice_connect::S3Location>() {
        #[cfg(feature = "aws")]
        {
            let sdk = _aws.context("AWS configuration")?;
            let client = sluice_aws::s3_client(sdk);
            return Ok(Box::new(sluice_aws::S3Store::new(client, &_s3.bucket, &_s3.prefix, None)));
        }
        #[cfg(not(feature = "aws"))]
        return Err(needs_aws(&format!("{destination}: this")));
    }
    bail!("{destination}: this build cannot open it")
}

/// A destination named on the command line, opened with the standard AWS settings when it is
/// in S3.
pub async fn open_location(raw: &str) -> Result<Box<dyn ObjectStore>> {
    let cwd = std::env::current_dir().context("reading the working folder")?;
    let destination = sluice_core::spec::destination::from_location(raw, &cwd, sluice_connect::DESTINATION_KINDS)
        .map_err(|e| anyhow!(crate::commands::Usage(format!("--at {raw:?}: {e}"))))?;
    if let Some(folder) = destination.settings_as::<sluice_local::Folder>() {
        if !folder.path.is_dir() {
            return Err(anyhow!(crate::commands::Usage(format!(
                "--at {raw:?}: there is no folder {}",
                folder.path.display()
            ))));
        }
    }
    #[cfg(feature = "aws")]
    let aws = match destination.settings_as::<sluice_connect::S3Location>() {
        Some(_) => Some(sluice_aws::client_config().await),
        None => None,
    };
    #[cfg(not(feature = "aws"))]
    let aws = None;
    open_store(&destination, aws.as_ref())
}

/// Whether the export writes to S3, so the CLI needs AWS settings.
fn writes_to_s3(export: &ExportSpec) -> bool {
    export.destination.settings_as::<sluice_connect::S3Location>().is_some()
}
