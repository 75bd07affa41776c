//! AWS Secrets Manager as the `Secrets` port: where a deployed function finds its source's
//! credentials. Errors name the secret and what to check, never a value.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use sluice_core::ports::Secrets;
use sluice_core::BoxError;

pub struct SecretsManager {
    client: Client,
}

impl SecretsManager {
    pub fn new(client: Client) -> Self {
        SecretsManager { client }
    }
}

#[async_trait]
impl Secrets for SecretsManager {
    async fn secret_string(&self, id: &str) -> Result<String, BoxError> {
        let out = self.client.get_secret_value().secret_id(id).send().await.map_err(|e| {
            let e = e.into_service_error();
            let hint = if e.is_resource_not_found_exception() {
                "not found: check the name or ARN and the region"
            } else {
                "check that the function's role may call secretsmanager:GetSecretValue on it (and kms:Decrypt on its key)"
            };
            format!("Secrets Manager secret {id:?}: {hint} ({})", e.meta().code().unwrap_or("error"))
        })?;
        out.secret_string.ok_or_else(|| {
            format!("Secrets Manager secret {id:?} holds binary data: store the credentials as a JSON string").into()
        })
    }
}
