//! `kind = "snowflake"`: a Snowflake connection's keys, validated, and how it opens. It holds
//! no secret: `credentials` says where the secret is.

use async_trait::async_trait;
use serde::Deserialize;
use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::ports::Secrets;
use sluice_core::spec::{parse_duration, Opened, Section, SourceKind, SourceSettings, Validator};
use sluice_core::value::TableName;
use sluice_core::BoxError;

use crate::SnowflakeSource;

/// The Snowflake kind, as the binaries list it.
pub static SNOWFLAKE: SnowflakeKind = SnowflakeKind;

pub struct SnowflakeKind;

/// The keys a Snowflake source takes.
const KEYS: &[&str] = &[
    "account",
    "user",
    "role",
    "warehouse",
    "database",
    "schema",
    "auth",
    "credentials",
    "endpoint",
    "query_timeout",
    "stage",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnowflake {
    account: Option<String>,
    user: Option<String>,
    role: Option<String>,
    warehouse: Option<String>,
    database: Option<String>,
    schema: Option<String>,
    auth: Option<String>,
    credentials: Option<String>,
    endpoint: Option<String>,
    query_timeout: Option<String>,
    stage: Option<String>,
}

#[async_trait]
impl SourceKind for SnowflakeKind {
    fn name(&self) -> &'static str {
        "snowflake"
    }

    fn settings(&self, section: &Section<'_>, v: &mut Validator) -> Option<Arc<dyn SourceSettings>> {
        let raw: RawSnowflake = section.parse("snowflake", KEYS, "", v)?;
        validate(v, section.key, raw).map(|s| Arc::new(s) as Arc<dyn SourceSettings>)
    }

    async fn open(
        &self,
        settings: &dyn SourceSettings,
        secrets: &dyn Secrets,
        session: bool,
    ) -> Result<Opened, BoxError> {
        let spec =
            settings.as_any().downcast_ref::<SnowflakeSpec>().ok_or("the settings are not a Snowflake source's")?;
        let source = SnowflakeSource::connect(spec, secrets).await?;
        let session = match session {
            true => Some(serde_json::to_value(source.session_info().await?)?),
            false => None,
        };
        Ok(Opened { source: Arc::new(source), session })
    }
}

impl SourceSettings for SnowflakeSpec {
    fn kind(&self) -> &'static str {
        "snowflake"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn credential_endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    fn reads_secrets_manager(&self) -> bool {
        matches!(self.credentials, Credentials::SecretsManager { .. })
    }

    /// Unload is `COPY INTO @stage`: it needs the stage.
    fn unload_refusal(&self, source: &str) -> Option<(String, String)> {
        self.stage.is_none().then(|| {
            (
                "unload needs a stage".into(),
                format!("set stage = \"@db.schema.stage\" on [sources.{source}] (see docs/snowflake.md)"),
            )
        })
    }
}

/// A named Snowflake connection. It holds no secret: `credentials` says where the secret is.
#[derive(Debug, Clone, PartialEq)]
pub struct SnowflakeSpec {
    /// The account identifier (`orgname-account` or `locator.region`).
    pub account: String,
    pub user: String,
    pub role: Option<String>,
    pub warehouse: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
    pub auth: SnowflakeAuth,
    pub credentials: Credentials,
    /// A base URL instead of `https://<account>.snowflakecomputing.com` (private links, tests).
    pub endpoint: Option<String>,
    /// Longest a query may run before it is cancelled.
    pub query_timeout: Duration,
    /// The stage `mode = "unload"` tables are copied into: `@db.schema.stage`, whose URL is the
    /// export's destination (see docs/snowflake.md).
    pub stage: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnowflakeAuth {
    /// A PKCS#8 private key (encrypted or not) whose public key is set on the user: the
    /// recommended way for unattended runs.
    KeyPair,
    OAuth,
    Password,
}

impl SnowflakeAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            SnowflakeAuth::KeyPair => "key_pair",
            SnowflakeAuth::OAuth => "oauth",
            SnowflakeAuth::Password => "password",
        }
    }
}

/// Where a source's secret lives. Never in the config file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Environment variables `<PREFIX>_PRIVATE_KEY` (or `_PRIVATE_KEY_FILE`),
    /// `<PREFIX>_PRIVATE_KEY_PASSPHRASE`, `<PREFIX>_TOKEN`, `<PREFIX>_PASSWORD`.
    Env { prefix: String },
    /// An AWS Secrets Manager secret (name or ARN) holding JSON with `private_key`,
    /// `private_key_passphrase`, `token` or `password`.
    SecretsManager { id: String },
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Env { prefix } => write!(f, "env:{prefix}"),
            Credentials::SecretsManager { id } => write!(f, "secretsmanager:{id}"),
        }
    }
}

fn validate(v: &mut Validator, key: &str, raw: RawSnowflake) -> Option<SnowflakeSpec> {
    let before = v.count();
    let mut required = |name: &str, value: Option<String>, hint: &str| match value {
        Some(value) if !value.trim().is_empty() => value,
        _ => {
            v.problem(format!("{key}.{name}"), "missing", hint);
            String::new()
        }
    };
    let account = required("account", raw.account, "give the account identifier, e.g. \"myorg-myaccount\"");
    let user = required("user", raw.user, "give the Snowflake user Sluice logs in as");
    let auth = match raw.auth.as_deref() {
        None | Some("key_pair") => SnowflakeAuth::KeyPair,
        Some("oauth") => SnowflakeAuth::OAuth,
        Some("password") => SnowflakeAuth::Password,
        Some(other) => {
            v.problem(
                format!("{key}.auth"),
                format!("unknown auth {other:?}"),
                "use key_pair (recommended), oauth or password",
            );
            SnowflakeAuth::KeyPair
        }
    };
    let credentials = match raw.credentials.as_deref() {
        None | Some("env") => Credentials::Env { prefix: "SNOWFLAKE".into() },
        Some(c) => match c.split_once(':') {
            Some(("env", prefix))
                if !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Credentials::Env { prefix: prefix.to_string() }
            }
            Some(("secretsmanager", id)) if !id.is_empty() => Credentials::SecretsManager { id: id.to_string() },
            _ => {
                // The value may be a pasted secret: never echo it back.
                v.problem(
                    format!("{key}.credentials"),
                    "not a credentials location",
                    "use \"env\", \"env:PREFIX\" or \"secretsmanager:<secret name or ARN>\"; secrets never go in the config file",
                );
                Credentials::Env { prefix: "SNOWFLAKE".into() }
            }
        },
    };
    let endpoint = raw.endpoint.filter(|e| !e.is_empty());
    if let Some(e) = &endpoint {
        let ok = (e.starts_with("https://") || e.starts_with("http://"))
            && !e.contains('@')
            && !matches!(e.splitn(4, '/').nth(3), Some(path) if !path.is_empty());
        if !ok {
            // Not echoed: a URL with user:password@ would put the password in the output.
            v.problem(
                format!("{key}.endpoint"),
                "not a base URL",
                "give a base URL without path or credentials, e.g. https://myaccount.privatelink.snowflakecomputing.com",
            );
        } else if !sluice_core::trust::secure_transport(e) {
            v.problem(
                format!("{key}.endpoint"),
                "plain http, and the credentials would travel in clear text",
                "use https:// (plain http is allowed only to a loopback address, for tests)",
            );
        }
    }
    let query_timeout = match raw.query_timeout.as_deref() {
        None => Duration::from_secs(3600),
        Some(t) => match parse_duration(t) {
            Some(d) if !d.is_zero() => d,
            _ => {
                v.problem(
                    format!("{key}.query_timeout"),
                    format!("invalid duration {t:?}"),
                    "write e.g. \"30m\" or \"2h\"",
                );
                Duration::from_secs(3600)
            }
        },
    };
    let stage = raw.stage.filter(|s| !s.is_empty());
    if let Some(s) = &stage {
        let name = s.strip_prefix('@').unwrap_or("");
        if TableName::parse(name).is_none() || name.contains('/') {
            v.problem(
                format!("{key}.stage"),
                format!("invalid stage {s:?}"),
                "name a stage as @stage, @schema.stage or @database.schema.stage (no path: Sluice adds it)",
            );
        }
    }
    let optional = |v: Option<String>| v.filter(|v| !v.is_empty());
    (v.count() == before).then(|| SnowflakeSpec {
        account,
        user,
        role: optional(raw.role),
        warehouse: optional(raw.warehouse),
        database: optional(raw.database),
        schema: optional(raw.schema),
        auth,
        credentials,
        endpoint,
        query_timeout,
        stage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::spec::{Config, ConfigError, Kinds, Problem, TableMode};
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        const KINDS: Kinds = Kinds { sources: &[&crate::config::SNOWFLAKE], destinations: &[&sluice_local::FOLDER] };
        Config::parse(Path::new("/cfg/sluice.toml"), text, KINDS)
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    const SNOWFLAKE: &str = r#"
version = 1
[sources.wh]
kind = "snowflake"
account = "acme-main"
user = "SLUICE"
credentials = "secretsmanager:sluice/snowflake"
stage = "@DB.PUBLIC.EXPORTS"
[[export]]
name = "contacts"
source = "wh"
destination = "exports"
  [[export.table]]
  name = "CONTACTS"
  mode = "unload"
  incremental = { strategy = "full" }
"#;

    #[test]
    fn a_snowflake_source_validates_and_unload_needs_what_copy_into_can_write() {
        let c = parse(SNOWFLAKE).unwrap();
        let sf = c.sources["wh"].settings_as::<SnowflakeSpec>().expect("snowflake settings");
        assert_eq!(sf.auth, SnowflakeAuth::KeyPair);
        assert_eq!(sf.credentials, Credentials::SecretsManager { id: "sluice/snowflake".into() });
        assert_eq!(c.exports[0].tables[0].mode, TableMode::Unload);

        let always = SNOWFLAKE
            .replace("destination = \"exports\"", "destination = \"exports\"\nformat = { quote_style = \"always\" }");
        assert_eq!(problems(&always)[0].key, "export.contacts.table.CONTACTS.mode");
        let no_stage = SNOWFLAKE.replace("stage = \"@DB.PUBLIC.EXPORTS\"\n", "");
        assert!(problems(&no_stage)[0].problem.contains("needs a stage"));
        let pasted =
            SNOWFLAKE.replace("credentials = \"secretsmanager:sluice/snowflake\"", "credentials = \"hunter2\"");
        assert!(!format!("{:?}", problems(&pasted)).contains("hunter2"));
        let endpoint = SNOWFLAKE.replace("stage =", "endpoint = \"https://u:hunter2@host\"\nstage =");
        assert!(!format!("{:?}", problems(&endpoint)).contains("hunter2"));
    }

    #[test]
    fn a_key_snowflake_does_not_take_is_named_with_what_it_takes() {
        let p = problems(&SNOWFLAKE.replace("stage =", "path = \"x.db\"\nstage ="));
        assert_eq!(p[0].key, "sources.wh.path");
        assert!(p[0].hint.contains("account") && p[0].hint.contains("stage"), "{p:?}");
    }
}
