//! What both functions read at cold start: the config file (packaged, or `s3://bucket/key`) and
//! the server-side encryption setting for the objects they write.

use std::path::Path;

use sluice_core::spec::{Config, ConfigError};
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
pub async fn load_config(s3: &aws_sdk_s3::Client, location: &str) -> Result<Config, ConfigLoadError> {
    let Some(rest) = location.strip_prefix("s3://") else {
        return Ok(Config::load(Path::new(location))?);
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let fetch = |source: BoxError| ConfigLoadError::Fetch { location: location.to_string(), source };
    let out = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| fetch(Box::new(e)))?;
    let bytes = out.body.collect().await.map_err(|e| fetch(Box::new(e)))?.into_bytes();
    let text = String::from_utf8(bytes.to_vec()).map_err(|e| fetch(Box::new(e)))?;
    // Relative paths in an S3-held config resolve against /tmp, the one writable folder.
    Ok(Config::parse(Path::new("/tmp/sluice.toml"), &text)?)
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
