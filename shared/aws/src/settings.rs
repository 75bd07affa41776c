//! What both functions read at cold start: the config file (packaged, or `s3://bucket/key`) and
//! the server-side encryption setting for the objects they write.

use std::path::Path;

use sluice_core::spec::{Config, ConfigError, Kinds};
use sluice_core::BoxError;

use crate::Encryption;

#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading the config from {location}")]
    Fetch {
        location: String,
        #[source]
        source: BoxError,
    },
}

/// Reads and validates the config at `location`: a file path or `s3://bucket/key`.
pub async fn load_config(s3: &aws_sdk_s3::Client, location: &str, kinds: Kinds) -> Result<Config, ConfigLoadError> {
    let Some(rest) = location.strip_prefix("s3://") else {
        return Ok(Config::load(Path::new(location), kinds)?);
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let fetch = |source: BoxError| ConfigLoadError::Fetch { location: location.to_string(), source };
    let out = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| fetch(Box::new(e)))?;
    let bytes = out.body.collect().await.map_err(|e| fetch(Box::new(e)))?.into_bytes();
    let text = String::from_utf8(bytes.to_vec()).map_err(|e| fetch(Box::new(e)))?;
    // Relative paths in an S3-held config resolve against /tmp, the one writable folder.
    Ok(Config::parse(Path::new("/tmp/sluice.toml"), &text, kinds)?)
}

/// `SLUICE_SSE`: `aws:kms` (with `SLUICE_KMS_KEY_ID`), `AES256`, or unset for the bucket's default.
pub fn encryption_from_env() -> Result<Option<Encryption>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("SLUICE_SSE").as_deref() {
        None => Ok(None),
        Some("AES256") => Ok(Some(Encryption::S3)),
        Some("aws:kms") => Ok(Some(Encryption::Kms { key_id: var("SLUICE_KMS_KEY_ID") })),
        Some(other) => Err(format!("{other:?} is not AES256 or aws:kms")),
    }
}

/// An invocation's deadline on this process's monotonic clock, from the runtime API's
/// `Lambda-Runtime-Deadline-Ms`: epoch milliseconds on AWS. Local emulators (`cargo lambda
/// watch`) send the function timeout in milliseconds instead; a value too small to be a date
/// since 1973 is read that way, so deadlines behave the same in local tests.
pub fn invocation_deadline(deadline_ms: u64) -> Option<std::time::Instant> {
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
    const EPOCH_MS_1973: u64 = 100_000_000_000;
    if deadline_ms < EPOCH_MS_1973 {
        return Some(Instant::now() + Duration::from_millis(deadline_ms));
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.checked_sub(now_ms)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    #[test]
    fn deadlines_read_as_epoch_milliseconds_or_as_an_emulators_timeout() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let d = invocation_deadline(now_ms + 30_000).unwrap();
        let left = d.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30), "{left:?}");
        let d = invocation_deadline(600_000).unwrap();
        assert!(d.saturating_duration_since(Instant::now()) > Duration::from_secs(599));
        assert!(invocation_deadline(now_ms - 1_000).is_none(), "a deadline already past");
    }
}

/// A function setting that is missing or wrong: which variable, and what is wrong with it.
#[derive(Debug)]
pub struct SettingError {
    pub name: &'static str,
    pub problem: String,
}

/// The environment variable `name`, unless unset or empty.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A variable the function cannot start without.
pub fn required_var(name: &'static str) -> Result<String, SettingError> {
    env_var(name).ok_or(SettingError { name, problem: "missing; set it in the function's environment".into() })
}

/// A duration such as `15s`, or `default` when unset.
pub fn duration_var(name: &'static str, default: std::time::Duration) -> Result<std::time::Duration, SettingError> {
    match env_var(name) {
        None => Ok(default),
        Some(v) => sluice_core::spec::parse_duration(&v)
            .ok_or(SettingError { name, problem: format!("{v:?} is not a duration like 15s") }),
    }
}

/// The settings every Sluice function reads from its environment (no secrets: those come from
/// Secrets Manager).
pub struct FunctionSettings {
    /// `SLUICE_CONFIG`: a file packaged with the function, or `s3://bucket/key`.
    pub config: String,
    /// `SLUICE_HISTORY_TABLE`: the DynamoDB history table (runs, watermarks, deliveries).
    pub history_table: String,
    /// `SLUICE_EVENT_BUS`: where events go (default `default`).
    pub event_bus: String,
    /// `SLUICE_SSE`: `aws:kms` (with `SLUICE_KMS_KEY_ID`), `AES256`, or unset for the bucket default.
    pub encryption: Option<Encryption>,
    /// `SLUICE_DEADLINE_MARGIN`: time kept back from the invocation's deadline, e.g. `15s`.
    pub deadline_margin: std::time::Duration,
    /// `SLUICE_SECRET_HOSTS`: hosts a token or credential may be sent to besides the vendors'
    /// own (comma-separated, exact or `*.domain`); set by the stack, never by the config.
    pub secret_hosts: sluice_core::trust::SecretHosts,
    /// `SLUICE_RECORD_TTL_DAYS`: run and delivery records expire this many days after their
    /// last write (the stack sets its retention, so a record outlives no file it names);
    /// unset keeps them.
    pub record_ttl: Option<std::time::Duration>,
}

impl FunctionSettings {
    pub fn from_env(default_margin: std::time::Duration) -> Result<FunctionSettings, SettingError> {
        Ok(FunctionSettings {
            config: required_var("SLUICE_CONFIG")?,
            history_table: required_var("SLUICE_HISTORY_TABLE")?,
            event_bus: env_var("SLUICE_EVENT_BUS").unwrap_or_else(|| "default".into()),
            encryption: encryption_from_env().map_err(|problem| SettingError { name: "SLUICE_SSE", problem })?,
            deadline_margin: duration_var("SLUICE_DEADLINE_MARGIN", default_margin)?,
            secret_hosts: sluice_core::trust::SecretHosts::parse(&env_var("SLUICE_SECRET_HOSTS").unwrap_or_default()),
            record_ttl: match env_var("SLUICE_RECORD_TTL_DAYS") {
                None => None,
                Some(v) => match v.parse::<u64>() {
                    Ok(days) if days > 0 => Some(std::time::Duration::from_secs(days * 86_400)),
                    _ => {
                        return Err(SettingError {
                            name: "SLUICE_RECORD_TTL_DAYS",
                            problem: format!("{v:?} is not a whole number of days above 0"),
                        })
                    }
                },
            },
        })
    }
}
