//! Sluice's AWS adapters: an S3 object store with streaming multipart uploads, a DynamoDB
//! history store (with the integrations' delivery ledger), an EventBridge event sink and orchestrations' EventBridge rules, and Secrets Manager for source credentials. Clients are built by the caller (once per
//! process, from the standard AWS environment; see `client_config`).

mod dynamo_alerts;
mod dynamo_catalog;
mod dynamo_history;
mod dynamo_ledger;
mod error;
mod event_bridge;
mod metrics;
mod migrate;
mod s3_store;
mod scheduler;
mod secrets;
mod settings;

pub use dynamo_history::DynamoHistory;
pub use error::Error;
pub use event_bridge::{detail_within_limit, EventBridgeSink, EVENT_SOURCE, MAX_ENTRY_BYTES};
pub use metrics::{emf_line, undelivered_emf_line, NAMESPACE};
pub use migrate::Migration;
pub use s3_store::{Encryption, S3Store, MAX_IN_FLIGHT, MIN_PART_SIZE, PART_SIZE};
pub use scheduler::{EventBridgeScheduler, RuleError, MAX_RULE_NAME};
pub use secrets::SecretsManager;
pub use settings::{
    duration_var, encryption_from_env, env_var, invocation_deadline, load_config, required_var, ConfigLoadError,
    FunctionSettings, SettingError,
};

/// The shared AWS configuration from the standard environment (profiles, region, credentials,
/// `AWS_ENDPOINT_URL` for local stand-ins).
pub async fn client_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}

/// An S3 client; path-style addressing when an endpoint is overridden (stand-ins such as moto
/// serve buckets under the path, not as host names).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let path_style = config.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build())
}
