//! Export specs: the TOML config file, parsed strictly (unknown keys are errors) and validated
//! into typed values before anything is built. Every problem names the file, the key and what to
//! do, and all problems of a file are reported at once.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::format::{FileFormat, QuoteStyle};
use crate::integrate::raw::RawIntegration;
use crate::integrate::spec::IntegrationSpec;

/// The config file's schema version this build reads.
pub const CONFIG_VERSION: u32 = 1;
/// Where the history lives when the config does not say: beside the config file.
pub const DEFAULT_HISTORY: &str = ".sluice/history.db";

pub(crate) mod export;
mod format;
mod table;
pub(crate) mod validate;

pub use self::export::*;
pub(crate) use self::validate::Validator;
pub use self::validate::{is_valid_name, parse_duration, parse_size, ConfigError, Problem};
pub use crate::format::DEFAULT_MAX_FILE_SIZE;
pub use crate::layout::path_segment;
pub use crate::value::{TableName, UpperBound};

use self::format::RawFormat;
use self::table::RawTable;

// ---------------------------------------------------------------------------------------------
// Validated types
// ---------------------------------------------------------------------------------------------

/// A validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// The folder relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    /// The history location as written (a path, resolved against `base_dir`).
    pub history: PathBuf,
    pub sources: BTreeMap<String, SourceSpec>,
    pub exports: Vec<ExportSpec>,
    /// `[integrations.<name>]`, sorted by name.
    pub integrations: Vec<IntegrationSpec>,
    /// Allowed but worth knowing (e.g. a format that cannot tell NULL from empty).
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// An SQLite database file (resolved path).
    Sqlite {
        path: PathBuf,
    },
    Snowflake(Box<SnowflakeSpec>),
}

impl SourceSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Sqlite { .. } => "sqlite",
            SourceSpec::Snowflake(_) => "snowflake",
        }
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

// ---------------------------------------------------------------------------------------------
// Raw (file) types
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: Option<u32>,
    history: Option<String>,
    #[serde(default)]
    sources: BTreeMap<String, RawSource>,
    #[serde(default, rename = "export")]
    exports: Vec<RawExport>,
    #[serde(default)]
    integrations: BTreeMap<String, RawIntegration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: String,
    path: Option<String>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExport {
    name: String,
    source: Option<String>,
    destination: Option<String>,
    schedule: Option<String>,
    state: Option<String>,
    format: Option<RawFormat>,
    #[serde(default, rename = "table")]
    tables: Vec<RawTable>,
}

// ---------------------------------------------------------------------------------------------
// Loading and validation
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(path, &text)
    }

    /// Validates config text as if read from `path` (relative paths resolve against its folder).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), source: Box::new(e) })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
        let mut v = Validator::default();
        let config = v.config(raw, path, &base_dir);
        if v.problems.is_empty() {
            Ok(Config { warnings: v.warnings, ..config })
        } else {
            Err(ConfigError::Invalid { path: path.to_path_buf(), problems: v.problems })
        }
    }

    /// Validates one export's definition (the keys of an `[[export]]` section, as TOML) against
    /// this config's sources, as if it were written in the file: how a definition kept in the
    /// state store (the catalog) becomes a runnable export.
    pub fn parse_export(&self, body: &str) -> Result<ExportSpec, ConfigError> {
        let raw: RawExport =
            toml::from_str(body).map_err(|e| ConfigError::Parse { path: self.path.clone(), source: Box::new(e) })?;
        let mut v = Validator::default();
        let declared: BTreeSet<String> = self.sources.keys().cloned().collect();
        let spec = v.export("export", raw, &declared, &self.base_dir);
        if let Some(spec) = &spec {
            v.unload_needs(spec, &self.sources);
        }
        match spec {
            Some(spec) if v.problems.is_empty() => Ok(spec),
            _ => Err(ConfigError::Invalid { path: self.path.clone(), problems: v.problems }),
        }
    }

    pub fn export(&self, name: &str) -> Result<&ExportSpec, ConfigError> {
        self.exports.iter().find(|e| e.name == name).ok_or_else(|| ConfigError::UnknownExport {
            path: self.path.clone(),
            name: name.to_string(),
            known: self.exports.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    pub fn integration(&self, name: &str) -> Result<&IntegrationSpec, ConfigError> {
        self.integrations.iter().find(|i| i.name == name).ok_or_else(|| ConfigError::UnknownIntegration {
            path: self.path.clone(),
            name: name.to_string(),
            known: match self.integrations.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ") {
                k if k.is_empty() => "none (add an [integrations.<name>] section, see docs/integrations.md)".into(),
                k => k,
            },
        })
    }

    /// The integrations that deliver `export`'s manifests.
    pub fn integrations_of<'a>(&'a self, export: &'a str) -> impl Iterator<Item = &'a IntegrationSpec> + 'a {
        self.integrations.iter().filter(move |i| i.export == export)
    }

    /// The history location with relative paths resolved.
    pub fn history_path(&self) -> PathBuf {
        resolve(&self.base_dir, &self.history.to_string_lossy())
    }
}

fn resolve(base: &Path, raw: &str) -> PathBuf {
    let p = PathBuf::from(raw);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

impl Validator {
    fn config(&mut self, raw: RawConfig, path: &Path, base_dir: &Path) -> Config {
        match raw.version {
            Some(CONFIG_VERSION) => {}
            Some(other) => self.problem(
                "version",
                format!("version {other} is not supported"),
                format!("this build reads version = {CONFIG_VERSION}"),
            ),
            None => self.problem("version", "missing", format!("add `version = {CONFIG_VERSION}` at the top")),
        }

        let mut sources = BTreeMap::new();
        // Declared names, valid or not: an export naming a source whose definition has a problem
        // gets that one problem, not a second "no source named" one.
        let declared: BTreeSet<String> = raw.sources.keys().cloned().collect();
        for (name, src) in raw.sources {
            let key = format!("sources.{name}");
            if !is_valid_name(&name) {
                self.problem(&key, "invalid source name", "use 1-64 characters of a-z, 0-9 and _");
            }
            if let Some(spec) = self.source(&key, src, base_dir) {
                sources.insert(name, spec);
            }
        }

        if raw.exports.is_empty() {
            // Allowed: exports may all be managed in the state store (`sluice exports`).
            self.warning(
                "export",
                "no exports defined in the file",
                "add an [[export]] section (see docs/configuration.md), or manage exports with `sluice exports create` or `sluice apply`",
            );
        }
        let mut names = BTreeSet::new();
        let mut exports = Vec::new();
        let declared_exports: Vec<String> = raw.exports.iter().map(|e| e.name.clone()).collect();
        for (i, e) in raw.exports.into_iter().enumerate() {
            let key = format!("export[{i}]");
            if !names.insert(e.name.clone()) {
                self.problem(
                    format!("{key}.name"),
                    format!("duplicate export name {:?}", e.name),
                    "export names must be unique in the file",
                );
            }
            if let Some(spec) = self.export(&key, e, &declared, base_dir) {
                self.unload_needs(&spec, &sources);
                exports.push(spec);
            }
        }

        let integrations = self.integrations(raw.integrations, &exports, &declared_exports);

        Config {
            path: path.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            history: PathBuf::from(raw.history.unwrap_or_else(|| DEFAULT_HISTORY.to_string())),
            sources,
            exports,
            integrations,
            warnings: Vec::new(),
        }
    }

    /// `mode = "unload"` is Snowflake's `COPY INTO @stage`: it needs a Snowflake source with a
    /// stage, and a CSV format (the one file format both Sluice and `COPY INTO` describe).
    fn unload_needs(&mut self, export: &ExportSpec, sources: &BTreeMap<String, SourceSpec>) {
        for t in export.tables.iter().filter(|t| t.mode == TableMode::Unload) {
            let key = format!("export.{}.table.{}.mode", export.name, t.name);
            match sources.get(&export.source) {
                Some(SourceSpec::Snowflake(sf)) if sf.stage.is_none() => self.problem(
                    &key,
                    "unload needs a stage",
                    format!("set stage = \"@db.schema.stage\" on [sources.{}] (see docs/snowflake.md)", export.source),
                ),
                Some(SourceSpec::Snowflake(_)) | None => {}
                Some(other) => self.problem(
                    &key,
                    format!("a {} source cannot unload", other.kind()),
                    "use mode = \"stream\" (the default); unload is for Snowflake sources",
                ),
            }
            match &export.format {
                FileFormat::Csv(f) if f.quote_style == QuoteStyle::Always => self.problem(
                    &key,
                    "Snowflake's unload cannot quote every value",
                    "use format.quote_style = \"needed\" or mode = \"stream\"",
                ),
                FileFormat::Csv(_) => {}
                FileFormat::JsonLines(_) => {
                    self.problem(&key, "unload writes CSV only", "use format.kind = \"csv\" or mode = \"stream\"")
                }
            }
        }
    }

    fn source(&mut self, key: &str, raw: RawSource, base_dir: &Path) -> Option<SourceSpec> {
        match raw.kind.as_str() {
            "sqlite" => {
                let snowflake_keys = [
                    ("account", raw.account.is_some()),
                    ("user", raw.user.is_some()),
                    ("role", raw.role.is_some()),
                    ("warehouse", raw.warehouse.is_some()),
                    ("database", raw.database.is_some()),
                    ("schema", raw.schema.is_some()),
                    ("auth", raw.auth.is_some()),
                    ("credentials", raw.credentials.is_some()),
                    ("endpoint", raw.endpoint.is_some()),
                    ("query_timeout", raw.query_timeout.is_some()),
                    ("stage", raw.stage.is_some()),
                ];
                for (k, _) in snowflake_keys.iter().filter(|(_, set)| *set) {
                    self.problem(format!("{key}.{k}"), "not used by kind = \"sqlite\"", "remove it");
                }
                match raw.path {
                    Some(p) if !p.is_empty() => Some(SourceSpec::Sqlite { path: resolve(base_dir, &p) }),
                    _ => {
                        self.problem(format!("{key}.path"), "missing", "give the SQLite database file");
                        None
                    }
                }
            }
            "snowflake" => self.snowflake(key, raw).map(|s| SourceSpec::Snowflake(Box::new(s))),
            other => {
                self.problem(
                    format!("{key}.kind"),
                    format!("unknown source kind {other:?}"),
                    "use kind = \"sqlite\" or kind = \"snowflake\"",
                );
                None
            }
        }
    }

    fn snowflake(&mut self, key: &str, raw: RawSource) -> Option<SnowflakeSpec> {
        let before = self.problems.len();
        if raw.path.is_some() {
            self.problem(format!("{key}.path"), "not used by kind = \"snowflake\"", "remove it");
        }
        let mut required = |name: &str, v: Option<String>, hint: &str| match v {
            Some(v) if !v.trim().is_empty() => v,
            _ => {
                self.problem(format!("{key}.{name}"), "missing", hint);
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
                self.problem(
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
                    self.problem(
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
                self.problem(
                    format!("{key}.endpoint"),
                    "not a base URL",
                    "give a base URL without path or credentials, e.g. https://myaccount.privatelink.snowflakecomputing.com",
                );
            } else if !crate::trust::secure_transport(e) {
                self.problem(
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
                    self.problem(
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
                self.problem(
                    format!("{key}.stage"),
                    format!("invalid stage {s:?}"),
                    "name a stage as @stage, @schema.stage or @database.schema.stage (no path: Sluice adds it)",
                );
            }
        }
        let optional = |v: Option<String>| v.filter(|v| !v.is_empty());
        (self.problems.len() == before).then(|| SnowflakeSpec {
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

    fn export(&mut self, key: &str, raw: RawExport, sources: &BTreeSet<String>, base_dir: &Path) -> Option<ExportSpec> {
        let before = self.problems.len();
        if !is_valid_name(&raw.name) {
            self.problem(
                format!("{key}.name"),
                format!("invalid export name {:?}", raw.name),
                "use 1-64 characters of a-z, 0-9 and _",
            );
        }
        let key = format!("export.{}", raw.name);
        let source = match raw.source {
            Some(s) if sources.contains(&s) => s,
            Some(s) => {
                let known = sources.iter().cloned().collect::<Vec<_>>().join(", ");
                self.problem(
                    format!("{key}.source"),
                    format!("no source named {s:?}"),
                    format!("define [sources.{s}] or use one of: {known}"),
                );
                s
            }
            None => {
                self.problem(format!("{key}.source"), "missing", "name a source defined under [sources]");
                String::new()
            }
        };
        let destination = match raw.destination.as_deref() {
            None | Some("") => {
                self.problem(format!("{key}.destination"), "missing", "give a local folder or s3://bucket/prefix");
                Destination::Local(PathBuf::new())
            }
            Some(d) => match d.strip_prefix("s3://") {
                Some(rest) => {
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    if bucket.is_empty() {
                        self.problem(
                            format!("{key}.destination"),
                            "s3 destination without a bucket",
                            "write s3://bucket/prefix",
                        );
                    }
                    Destination::S3 { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() }
                }
                None => Destination::Local(resolve(base_dir, d)),
            },
        };
        // A warning, not a problem: the local CLI does not act on schedules, and `sluice
        // schedules` refuses the export until it is fixed.
        let schedule = raw.schedule.as_deref().map(str::trim).map(str::to_string);
        if let Some(schedule) = &schedule {
            if let Err(why) = crate::schedule::check(schedule) {
                self.warning(
                    format!("{key}.schedule"),
                    why.0,
                    "write an EventBridge schedule: rate(15 minutes), rate(1 hour) or cron(0 6 * * ? *)",
                );
            }
        }
        let state = match raw.state.as_deref() {
            None | Some("active") => ExportState::Active,
            Some("draft") => ExportState::Draft,
            Some("paused") => ExportState::Paused,
            Some(other) => {
                self.problem(format!("{key}.state"), format!("unknown state {other:?}"), "use draft, active or paused");
                ExportState::Draft
            }
        };
        let format = self.format(&format!("{key}.format"), raw.format.unwrap_or_default());

        if raw.tables.is_empty() {
            self.problem(format!("{key}.table"), "no tables", "add at least one [[export.table]] with a name");
        }
        let mut tables = Vec::new();
        let mut seen = BTreeSet::new();
        for t in raw.tables {
            let tkey = format!("{key}.table.{}", t.name);
            if !seen.insert(path_segment(&t.name)) {
                self.problem(
                    &tkey,
                    "table listed twice (names are compared case-insensitively)",
                    "list each table once per export",
                );
            }
            if let Some(spec) = self.table(&tkey, t) {
                tables.push(spec);
            }
        }

        (self.problems.len() == before).then_some(ExportSpec {
            name: raw.name,
            source,
            destination,
            schedule,
            state,
            format: format?,
            tables,
        })
    }
}

impl crate::trust::SecretHosts {
    /// Each source whose credentials would go to a host the list does not allow.
    pub fn check_sources(&self, config: &Config) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, source) in &config.sources {
            if let SourceSpec::Snowflake(s) = source {
                if let Some(endpoint) = s.endpoint.as_deref().filter(|e| !self.allows(e)) {
                    problems.push(self.refusal(&format!("source {name:?}"), endpoint));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Compression;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/cfg/sluice.toml"), text)
    }

    const MINIMAL: &str = r#"
version = 1
[sources.db]
kind = "sqlite"
path = "sample.db"
[[export]]
name = "contacts"
source = "db"
destination = "out"
  [[export.table]]
  name = "contacts"
  incremental = { strategy = "timestamp", column = "updated_at", lag = "5m" }
"#;

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
destination = "s3://b/exports"
  [[export.table]]
  name = "CONTACTS"
  mode = "unload"
  incremental = { strategy = "full" }
"#;

    #[test]
    fn a_snowflake_source_validates_and_unload_needs_what_copy_into_can_write() {
        let c = parse(SNOWFLAKE).unwrap();
        let SourceSpec::Snowflake(sf) = &c.sources["wh"] else { panic!("snowflake") };
        assert_eq!(sf.auth, SnowflakeAuth::KeyPair);
        assert_eq!(sf.credentials, Credentials::SecretsManager { id: "sluice/snowflake".into() });
        assert_eq!(c.exports[0].tables[0].mode, TableMode::Unload);

        let always = SNOWFLAKE.replace(
            "destination = \"s3://b/exports\"",
            "destination = \"s3://b/exports\"\nformat = { quote_style = \"always\" }",
        );
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
    fn minimal_config_gets_the_reference_defaults() {
        let c = parse(MINIMAL).unwrap();
        let e = &c.exports[0];
        assert_eq!(e.destination, Destination::Local(PathBuf::from("/cfg/out")));
        assert_eq!(c.history_path(), PathBuf::from("/cfg/.sluice/history.db"));
        let FileFormat::Csv(f) = &e.format else { panic!() };
        assert_eq!(f.delimiter, b'|');
        assert!(f.header && f.empty_field_as_null);
        assert_eq!(f.quote, Some(b'"'));
        assert_eq!(f.compression, Compression::Gzip { level: 6 });
        assert_eq!(f.max_file_size, DEFAULT_MAX_FILE_SIZE);
        let Incremental::Timestamp(t) = &e.tables[0].incremental else { panic!() };
        assert_eq!(t.upper_bound, UpperBound::Now { lag: Duration::from_secs(300) });
    }

    #[test]
    fn unknown_key_is_an_error_naming_the_key_and_line() {
        let err =
            parse(&MINIMAL.replace("destination = \"out\"", "destination = \"out\"\ndestinaton = 1")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("destinaton") && msg.contains("line"), "{msg}");
    }

    #[test]
    fn duplicate_and_invalid_names_are_all_reported() {
        let text = format!("{MINIMAL}\n[[export]]\nname = \"contacts\"\nsource = \"db\"\ndestination = \"o\"\n[[export.table]]\nname=\"t\"\nincremental={{strategy=\"full\"}}\n[[export]]\nname = \"Bad-Name\"\nsource = \"db\"\ndestination = \"o\"\n[[export.table]]\nname=\"t\"\nincremental={{strategy=\"full\"}}\n");
        let p = problems(&text);
        assert!(p.iter().any(|p| p.problem.contains("duplicate export name")), "{p:?}");
        assert!(p.iter().any(|p| p.problem.contains("invalid export name")), "{p:?}");
    }

    #[test]
    fn empty_table_list_is_an_error_with_a_hint() {
        let text = MINIMAL.split("  [[export.table]]").next().unwrap();
        let p = problems(text);
        assert_eq!(p[0].key, "export.contacts.table");
        assert!(p[0].hint.contains("[[export.table]]"));
    }

    #[test]
    fn the_check_strategy_needs_a_key_and_takes_columns_or_all() {
        let with = |inc: &str| MINIMAL.replace("strategy = \"timestamp\", column = \"updated_at\", lag = \"5m\"", inc);
        let p = problems(&with("strategy = \"check\""));
        assert!(p.iter().any(|p| p.key.ends_with("incremental.key") && p.problem == "missing"), "{p:?}");
        let p = problems(&with("strategy = \"check\", key = [\"id\"], column = \"updated_at\", columns = 3"));
        assert!(p.iter().any(|p| p.key.ends_with(".column")), "{p:?}");
        assert!(p.iter().any(|p| p.key.ends_with(".columns") && p.problem.contains("invalid value 3")), "{p:?}");
        let p = problems(&with("strategy = \"timestamp\", column = \"updated_at\", deletes = true"));
        assert!(p.iter().any(|p| p.key.ends_with(".deletes") && p.hint.contains("check")), "{p:?}");
        let c = parse(&with("strategy = \"check\", key = [\"id\"], columns = [\"email\", \"stage\"], deletes = true"))
            .unwrap();
        let Incremental::Check(check) = &c.exports[0].tables[0].incremental else { panic!("check") };
        assert_eq!(check.key, ["id"]);
        assert_eq!(check.columns.as_deref(), Some(&["email".to_string(), "stage".to_string()][..]));
        assert!(check.deletes);
        let c = parse(&with("strategy = \"check\", key = [\"id\"], columns = \"all\"")).unwrap();
        assert!(
            matches!(&c.exports[0].tables[0].incremental, Incremental::Check(c) if c.columns.is_none() && !c.deletes)
        );
        let p = problems(&with("strategy = \"check\", key = [\"id\", \"id\"]"));
        assert!(p.iter().any(|p| p.key.ends_with(".key")), "{p:?}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let p = problems(
            &MINIMAL
                .replace("lag = \"5m\"", "lag = \"5 minutes\"")
                .replace("[[export]]", "[[export]]\nformat = { delimiter = \"||\", compression = \"lz4\" }"),
        );
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"export.contacts.format.delimiter"), "{keys:?}");
        assert!(keys.contains(&"export.contacts.format.compression"), "{keys:?}");
        assert!(keys.contains(&"export.contacts.table.contacts.incremental.lag"), "{keys:?}");
    }

    #[test]
    fn unknown_source_lists_known_ones() {
        let p = problems(&MINIMAL.replace("source = \"db\"", "source = \"nope\""));
        assert!(p[0].hint.contains("db"), "{p:?}");
    }

    #[test]
    fn a_source_with_a_bad_kind_is_one_problem_not_two() {
        let p = problems(&MINIMAL.replace("kind = \"sqlite\"", "kind = \"postgres\""));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "sources.db.kind");
    }

    #[test]
    fn ambiguous_null_is_a_warning() {
        let c = parse(&MINIMAL.replace("[[export]]", "[[export]]\nformat = { empty_field_as_null = false }")).unwrap();
        assert!(c.warnings.iter().any(|w| w.key.ends_with("format.null")), "{:?}", c.warnings);
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("500KB"), Some(500_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), None);
    }

    #[test]
    fn table_names_split_into_quoted_parts() {
        assert_eq!(TableName::parse("ANALYTICS.CONTACTS").unwrap().parts, ["ANALYTICS", "CONTACTS"]);
        assert!(TableName::parse("a..b").is_none());
        assert_eq!(path_segment("ANALYTICS.Contacts List"), "analytics.contacts_list");
    }
}
