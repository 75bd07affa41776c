//! The source's secret, fetched at start-up from where the config says (environment variables or
//! a secret store) and turned into the connector's `AuthConfig`. Secrets never appear in errors,
//! logs or `Debug` output: errors name the variable or secret, not its value.

use crate::config::{Credentials, SnowflakeAuth, SnowflakeSpec};
use serde::Deserialize;
use sluice_core::ports::Secrets;
use snowflake_connector_rs::{AuthConfig, KeyPairConfig, PasswordConfig};

use crate::error::SnowflakeError;

/// The fields a secret (or the environment) may hold. Unknown fields are ignored: a secret often
/// carries more (the account, the user) for other tools.
#[derive(Default, Deserialize)]
struct SecretFields {
    private_key: Option<String>,
    private_key_passphrase: Option<String>,
    token: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<redacted>" } else { "<unset>" };
        f.debug_struct("SecretFields")
            .field("private_key", &set(&self.private_key))
            .field("private_key_passphrase", &set(&self.private_key_passphrase))
            .field("token", &set(&self.token))
            .field("password", &set(&self.password))
            .finish()
    }
}

/// Reads the source's secret and builds the connector's authentication from it.
pub async fn auth_config(spec: &SnowflakeSpec, secrets: &dyn Secrets) -> Result<AuthConfig, SnowflakeError> {
    let (fields, place) = match &spec.credentials {
        Credentials::Env { prefix } => (from_env(prefix, &|k| std::env::var(k).ok())?, Place::Env(prefix)),
        Credentials::SecretsManager { id } => {
            let text = secrets
                .secret_string(id)
                .await
                .map_err(|e| SnowflakeError::Credentials(format!("reading secret {id:?} failed: {e}")))?;
            let fields: SecretFields = serde_json::from_str(&text).map_err(|e| {
                // serde's message can quote the input: keep only where it broke.
                SnowflakeError::Credentials(format!(
                    "secret {id:?} is not a JSON object (line {}, column {}); store JSON like {{\"private_key\": \"-----BEGIN PRIVATE KEY-----...\"}}",
                    e.line(),
                    e.column()
                ))
            })?;
            (fields, Place::Secret(id))
        }
    };
    build(spec.auth, fields, place)
}

/// Where the fields came from, to say where a missing one should be.
#[derive(Clone, Copy)]
enum Place<'a> {
    Env(&'a str),
    Secret(&'a str),
}

fn from_env(prefix: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<SecretFields, SnowflakeError> {
    let get = |name: &str| var(&format!("{prefix}_{name}")).filter(|v| !v.is_empty());
    let private_key = match (get("PRIVATE_KEY"), get("PRIVATE_KEY_FILE")) {
        (Some(pem), _) => Some(pem),
        (None, Some(path)) => Some(std::fs::read_to_string(&path).map_err(|e| {
            SnowflakeError::Credentials(format!("cannot read {prefix}_PRIVATE_KEY_FILE {path:?}: {e}"))
        })?),
        (None, None) => None,
    };
    Ok(SecretFields {
        private_key,
        private_key_passphrase: get("PRIVATE_KEY_PASSPHRASE"),
        token: get("TOKEN"),
        password: get("PASSWORD"),
    })
}

fn build(auth: SnowflakeAuth, f: SecretFields, place: Place<'_>) -> Result<AuthConfig, SnowflakeError> {
    let missing = |what: &str, env: &str| {
        SnowflakeError::Credentials(match place {
            Place::Env(prefix) => format!(
                "auth = \"{}\" needs the {what}: set {}",
                auth.as_str(),
                env.split(" or ").map(|e| format!("{prefix}{e}")).collect::<Vec<_>>().join(" or ")
            ),
            Place::Secret(id) => {
                format!("auth = \"{}\" needs the field \"{what}\" in secret {id:?}", auth.as_str())
            }
        })
    };
    let place = match place {
        Place::Env(prefix) => format!("{prefix}_PRIVATE_KEY"),
        Place::Secret(id) => format!("secret {id:?}"),
    };
    match auth {
        SnowflakeAuth::KeyPair => {
            let pem = f.private_key.ok_or_else(|| missing("private_key", "_PRIVATE_KEY or _PRIVATE_KEY_FILE"))?;
            if !pem.contains("-----BEGIN") {
                return Err(SnowflakeError::Credentials(format!(
                    "the private key in {place} is not PEM: give a PKCS#8 key (-----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----)"
                )));
            }
            Ok(AuthConfig::key_pair(match f.private_key_passphrase {
                Some(pass) => KeyPairConfig::from_encrypted_pem(pem, pass.into_bytes()),
                None => KeyPairConfig::from_pem(pem),
            }))
        }
        SnowflakeAuth::OAuth => Ok(AuthConfig::oauth(f.token.ok_or_else(|| missing("token", "_TOKEN"))?)),
        SnowflakeAuth::Password => {
            Ok(AuthConfig::password(PasswordConfig::new(f.password.ok_or_else(|| missing("password", "_PASSWORD"))?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn env_names_follow_the_prefix_and_a_key_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.p8");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n").unwrap();
        let vars: HashMap<String, String> = [
            ("WH_PRIVATE_KEY_FILE".to_string(), key.display().to_string()),
            ("WH_PASSWORD".to_string(), "pw".to_string()),
        ]
        .into();
        let f = from_env("WH", &|k| vars.get(k).cloned()).unwrap();
        assert!(f.private_key.unwrap().starts_with("-----BEGIN PRIVATE KEY"));
        assert_eq!(f.password.as_deref(), Some("pw"));
        assert!(f.token.is_none());
    }

    #[test]
    fn a_missing_secret_says_where_it_was_looked_for_and_debug_redacts() {
        let f = SecretFields { password: Some("hunter2".into()), ..Default::default() };
        assert!(!format!("{f:?}").contains("hunter2"));
        let err = build(SnowflakeAuth::KeyPair, f, Place::Env("SNOWFLAKE")).unwrap_err().to_string();
        assert!(err.contains("SNOWFLAKE_PRIVATE_KEY or SNOWFLAKE_PRIVATE_KEY_FILE"), "{err}");
        assert!(!err.contains("hunter2"));
        let err = build(SnowflakeAuth::OAuth, SecretFields::default(), Place::Secret("s")).unwrap_err().to_string();
        assert!(err.contains("\"token\" in secret \"s\""), "{err}");
        let not_pem = SecretFields { private_key: Some("hunter2".into()), ..Default::default() };
        let err = build(SnowflakeAuth::KeyPair, not_pem, Place::Secret("s")).unwrap_err().to_string();
        assert!(err.contains("not PEM") && !err.contains("hunter2"), "{err}");
    }
}
