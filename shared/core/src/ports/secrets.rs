//! The secret store port: where sources and integrations fetch their credentials.

use async_trait::async_trait;

use crate::error::BoxError;

/// A secret store (AWS Secrets Manager): sources fetch their credentials from it at start-up.
#[async_trait]
pub trait Secrets: Send + Sync {
    /// The secret's string value. Errors name the secret, never its value.
    async fn secret_string(&self, id: &str) -> Result<String, BoxError>;
}

/// For builds and places without a secret store: every lookup says how to get one.
pub struct NoSecrets(pub &'static str);

#[async_trait]
impl Secrets for NoSecrets {
    async fn secret_string(&self, id: &str) -> Result<String, BoxError> {
        Err(format!("cannot read secret {id:?}: {}", self.0).into())
    }
}
