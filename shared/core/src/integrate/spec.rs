//! Integration specs: the `[integrations.<name>]` sections of the config file. An integration
//! reads the manifests of one export and delivers the rows to one external API. Parsed as
//! strictly as exports (unknown keys are errors) and validated with them, so `sluice validate`
//! reports every problem of a file at once.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::spec::export::ExportSpec;
use crate::spec::validate::{is_valid_name, parse_duration, Validator};

/// HubSpot's API base; a test or a proxy may replace it with `endpoint`.
pub const HUBSPOT_ENDPOINT: &str = "https://api.hubapi.com";
/// HubSpot's batch endpoints take at most 100 inputs.
pub const HUBSPOT_MAX_BATCH: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationSpec {
    pub name: String,
    /// The export whose manifests it delivers.
    pub export: String,
    /// Only these tables (as named in the export); every table of the export when `None`.
    pub tables: Option<Vec<String>>,
    pub kind: IntegrationKind,
    /// Where the API token comes from; never the token itself.
    pub token: Option<TokenSource>,
    /// Records per request.
    pub batch_size: usize,
    /// The API's limit for the whole account: every process delivering the integration shares
    /// it, through send slots in the ledger.
    pub rate_limit: Option<RateLimit>,
    /// Requests per UTC day the API allows (HubSpot's daily quota), counted in the ledger
    /// across every process: the delivery stops before the API would refuse.
    pub daily_limit: Option<u64>,
    /// How many invocations may deliver at once (the SQS event source's maximum concurrency).
    /// The rate limit holds whatever it is; more invocations only deliver more manifests at once.
    pub concurrency: u32,
    /// Requests in flight at once within one invocation.
    pub max_in_flight: usize,
    /// One request's timeout; a request past it is retried.
    pub timeout: Duration,
    /// Tries per request on 429, 5xx, timeouts and connection errors.
    pub max_attempts: u32,
    pub mapping: Mapping,
}

impl IntegrationSpec {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            IntegrationKind::Webhook(_) => "webhook",
            IntegrationKind::HubspotContacts(_) => "hubspot_contacts",
        }
    }

    /// Whether a manifest of `export`'s table `table` is this integration's to deliver.
    pub fn wants(&self, export: &str, table: &str) -> bool {
        self.export == export && self.tables.as_ref().is_none_or(|t| t.iter().any(|n| n == table))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum IntegrationKind {
    Webhook(WebhookSpec),
    HubspotContacts(HubspotSpec),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    /// The body around the records: a JSON document with the string `"{{records}}"` in it once.
    /// `None` sends the array of records alone.
    pub body: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HubspotSpec {
    pub endpoint: String,
    /// The unique property contacts are matched on (`email`, or a custom unique property).
    pub id_property: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable holding the token.
    Env(String),
    /// A Secrets Manager secret: the token itself, or JSON with a `token` field.
    SecretsManager(String),
}

/// `requests` per `per`, over any window of that length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// The properties sent, in order; `None` sends every column under its own name.
    pub properties: Option<Vec<Property>>,
    /// Columns left out when every column is sent.
    pub drop: Vec<String>,
    pub nulls: Nulls,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    pub source: PropertySource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PropertySource {
    Column { column: String, kind: ValueType },
    Constant(serde_json::Value),
}

/// How a column's text becomes a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// From the column's declared type: numbers for numeric types, booleans for BOOLEAN, else text.
    Auto,
    String,
    Number,
    Bool,
    /// An ISO 8601 UTC timestamp with milliseconds (`2024-01-01T00:41:38.000Z`).
    Datetime,
    /// `YYYY-MM-DD`.
    Date,
}

/// What a NULL becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    /// JSON `null`.
    Keep,
    /// The property is left out (HubSpot's default: a null would clear the contact's value).
    Omit,
}

// ---------------------------------------------------------------------------------------------
// Raw (file) types
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIntegration {
    kind: String,
    export: Option<String>,
    tables: Option<Vec<String>>,
    url: Option<String>,
    method: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    body: Option<String>,
    endpoint: Option<String>,
    id_property: Option<String>,
    token: Option<String>,
    batch_size: Option<i64>,
    rate_limit: Option<String>,
    daily_limit: Option<i64>,
    concurrency: Option<i64>,
    max_in_flight: Option<i64>,
    timeout: Option<String>,
    max_attempts: Option<i64>,
    properties: Option<BTreeMap<String, RawProperty>>,
    drop: Option<Vec<String>>,
    nulls: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawProperty {
    Column(String),
    Full(RawPropertyTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPropertyTable {
    column: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<toml::Value>,
}

/// Parses `10/s`, `100/10s`, `600/min`, `600/1m`.
pub fn parse_rate(raw: &str) -> Option<RateLimit> {
    let (n, per) = raw.trim().split_once('/')?;
    let requests: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
    let per = per.trim();
    let per = match per {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => parse_duration(other).filter(|d| !d.is_zero())?,
    };
    Some(RateLimit { requests, per })
}

/// An http(s) URL with a host and no credentials in it.
fn is_plain_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            !authority.is_empty() && !authority.contains('@') && !url.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Headers that carry credentials: those go in `token`, from the environment or a secret.
pub(crate) const SECRET_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"];

/// The placeholder a webhook body template holds where the records go.
pub const RECORDS_PLACEHOLDER: &str = "{{records}}";

impl Validator {
    pub(crate) fn integrations(
        &mut self,
        raw: BTreeMap<String, RawIntegration>,
        exports: &[ExportSpec],
        declared_exports: &[String],
    ) -> Vec<IntegrationSpec> {
        let mut out = Vec::new();
        for (name, r) in raw {
            let key = format!("integrations.{name}");
            if !is_valid_name(&name) {
                self.problem(&key, "invalid integration name", "use 1-64 characters of a-z, 0-9 and _");
            }
            if let Some(spec) = self.integration(&key, name, r, exports, declared_exports) {
                out.push(spec);
            }
        }
        out
    }

    fn integration(
        &mut self,
        key: &str,
        name: String,
        raw: RawIntegration,
        exports: &[ExportSpec],
        declared_exports: &[String],
    ) -> Option<IntegrationSpec> {
        let before = self.problems.len();
        let export = match raw.export.clone() {
            Some(e) if declared_exports.contains(&e) => e,
            Some(e) => {
                self.problem(
                    format!("{key}.export"),
                    format!("no export named {e:?}"),
                    format!("use one of: {}", declared_exports.join(", ")),
                );
                e
            }
            None => {
                self.problem(
                    format!("{key}.export"),
                    "missing",
                    "name the export whose rows this integration delivers",
                );
                String::new()
            }
        };
        if let (Some(tables), Some(spec)) = (&raw.tables, exports.iter().find(|e| e.name == export)) {
            if tables.is_empty() {
                self.problem(format!("{key}.tables"), "empty list", "list tables, or remove the key for all of them");
            }
            for t in tables.iter().filter(|t| !spec.tables.iter().any(|s| &s.name == *t)) {
                let known: Vec<&str> = spec.tables.iter().map(|s| s.name.as_str()).collect();
                self.problem(
                    format!("{key}.tables"),
                    format!("export {export:?} has no table {t:?}"),
                    format!("use the table's name as the export lists it: {}", known.join(", ")),
                );
            }
        }

        let (kind, hubspot) = match raw.kind.as_str() {
            "webhook" => (self.webhook(key, &raw), false),
            "hubspot_contacts" => (self.hubspot(key, &raw), true),
            other => {
                self.problem(
                    format!("{key}.kind"),
                    format!("unknown integration kind {other:?}"),
                    "use \"webhook\" or \"hubspot_contacts\" (see docs/integrations.md to add one)",
                );
                (None, false)
            }
        };

        let token = match raw.token.as_deref() {
            None => {
                if hubspot {
                    self.problem(
                        format!("{key}.token"),
                        "missing",
                        "HubSpot needs a private app token: token = \"secretsmanager:<secret>\" or \"env:<VARIABLE>\"",
                    );
                }
                None
            }
            Some(t) => match t.split_once(':') {
                Some(("env", var)) if !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    Some(TokenSource::Env(var.to_string()))
                }
                Some(("secretsmanager", id)) if !id.is_empty() => Some(TokenSource::SecretsManager(id.to_string())),
                _ => {
                    // It may be a pasted token: never echo it.
                    self.problem(
                        format!("{key}.token"),
                        "not a token location",
                        "use \"env:<VARIABLE>\" or \"secretsmanager:<secret name or ARN>\"; tokens never go in the config file",
                    );
                    None
                }
            },
        };

        let int = |v: &mut Validator, k: &str, raw: Option<i64>, default: i64, max: i64| match raw {
            None => default,
            Some(n) if (1..=max).contains(&n) => n,
            Some(n) => {
                v.problem(format!("{key}.{k}"), format!("{n} is out of range"), format!("use 1 to {max}"));
                default
            }
        };
        let max_batch = if hubspot { HUBSPOT_MAX_BATCH as i64 } else { 10_000 };
        let batch_size = int(self, "batch_size", raw.batch_size, 100, max_batch) as usize;
        let concurrency = int(self, "concurrency", raw.concurrency, 1, 1000) as u32;
        let max_in_flight = int(self, "max_in_flight", raw.max_in_flight, 4, 64) as usize;
        let max_attempts = int(self, "max_attempts", raw.max_attempts, 6, 20) as u32;
        let timeout = match raw.timeout.as_deref() {
            None => Duration::from_secs(30),
            Some(t) => match parse_duration(t).filter(|d| !d.is_zero()) {
                Some(d) => d,
                None => {
                    self.problem(format!("{key}.timeout"), format!("invalid duration {t:?}"), "write e.g. \"10s\"");
                    Duration::from_secs(30)
                }
            },
        };
        let rate_limit = match raw.rate_limit.as_deref() {
            // HubSpot's smallest private-app allowance: 100 requests per 10 seconds.
            None if hubspot => Some(RateLimit { requests: 100, per: Duration::from_secs(10) }),
            None => None,
            Some(r) => {
                let parsed = parse_rate(r);
                if parsed.is_none() {
                    self.problem(
                        format!("{key}.rate_limit"),
                        format!("invalid rate {r:?}"),
                        "write requests per period: \"10/s\", \"100/10s\", \"600/min\"",
                    );
                }
                parsed
            }
        };
        let daily_limit = match raw.daily_limit {
            // HubSpot's smallest daily allowance (private apps on the Free and Starter tiers).
            None if hubspot => Some(250_000),
            None => None,
            Some(n) if (1..=1_000_000_000).contains(&n) => Some(n as u64),
            Some(n) => {
                self.problem(
                    format!("{key}.daily_limit"),
                    format!("{n} is out of range"),
                    "use 1 to 1000000000 requests per UTC day, or leave it out for no daily limit",
                );
                None
            }
        };
        let mapping = self.mapping(key, raw.properties, raw.drop, raw.nulls.as_deref(), hubspot);

        (self.problems.len() == before).then(|| IntegrationSpec {
            name,
            export,
            tables: raw.tables,
            kind: kind.expect("no problems means the kind parsed"),
            token,
            batch_size,
            rate_limit,
            daily_limit,
            concurrency,
            max_in_flight,
            timeout,
            max_attempts,
            mapping,
        })
    }

    fn not_for(&mut self, key: &str, kind: &str, keys: &[(&str, bool)]) {
        for (k, _) in keys.iter().filter(|(_, set)| *set) {
            self.problem(format!("{key}.{k}"), format!("not used by kind = \"{kind}\""), "remove it");
        }
    }

    fn webhook(&mut self, key: &str, raw: &RawIntegration) -> Option<IntegrationKind> {
        let before = self.problems.len();
        self.not_for(
            key,
            "webhook",
            &[("endpoint", raw.endpoint.is_some()), ("id_property", raw.id_property.is_some())],
        );
        let url = raw.url.clone().unwrap_or_default();
        if url.is_empty() {
            self.problem(format!("{key}.url"), "missing", "give the URL records are sent to");
        } else if !is_plain_url(&url) {
            // Not echoed: a URL with user:password@ would print the password.
            self.problem(
                format!("{key}.url"),
                "not an http(s) URL without credentials",
                "write https://host/path; put the token in token = \"secretsmanager:…\"",
            );
        } else if raw.token.is_some() && !crate::trust::secure_transport(&url) {
            self.problem(
                format!("{key}.url"),
                "plain http, and the token would travel in clear text",
                "use https:// (plain http is allowed only to a loopback address, for tests)",
            );
        }
        let method = raw.method.clone().unwrap_or_else(|| "POST".into()).to_ascii_uppercase();
        if !matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
            self.problem(format!("{key}.method"), format!("unsupported method {method:?}"), "use POST, PUT or PATCH");
        }
        let mut headers = Vec::new();
        for (name, value) in raw.headers.clone().unwrap_or_default() {
            let lower = name.to_ascii_lowercase();
            if SECRET_HEADERS.contains(&lower.as_str()) {
                self.problem(
                    format!("{key}.headers.{name}"),
                    "credentials do not go in the config file",
                    "set token = \"secretsmanager:…\" or \"env:…\"; it is sent as Authorization: Bearer",
                );
            } else if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
                self.problem(
                    format!("{key}.headers"),
                    format!("invalid header name {name:?}"),
                    "use letters, digits and -",
                );
            } else if value.contains(['\r', '\n']) {
                self.problem(format!("{key}.headers.{name}"), "line break in value", "write the value on one line");
            } else {
                headers.push((name, value));
            }
        }
        let body = raw.body.as_deref().and_then(|b| self.body_template(key, b));
        (self.problems.len() == before).then_some(IntegrationKind::Webhook(WebhookSpec { url, method, headers, body }))
    }

    fn body_template(&mut self, key: &str, raw: &str) -> Option<serde_json::Value> {
        let value: serde_json::Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                self.problem(
                    format!("{key}.body"),
                    format!("not JSON: {e}"),
                    "write a JSON document with \"{{records}}\" where the records go, e.g. '{\"items\": \"{{records}}\"}'",
                );
                return None;
            }
        };
        fn count(v: &serde_json::Value) -> usize {
            match v {
                serde_json::Value::String(s) => usize::from(s == RECORDS_PLACEHOLDER),
                serde_json::Value::Array(a) => a.iter().map(count).sum(),
                serde_json::Value::Object(o) => o.values().map(count).sum(),
                _ => 0,
            }
        }
        match count(&value) {
            1 => Some(value),
            n => {
                self.problem(
                    format!("{key}.body"),
                    format!("the template holds \"{{{{records}}}}\" {n} times"),
                    "put the string \"{{records}}\" exactly once, as a JSON value, where the array of records goes",
                );
                None
            }
        }
    }

    fn hubspot(&mut self, key: &str, raw: &RawIntegration) -> Option<IntegrationKind> {
        let before = self.problems.len();
        self.not_for(
            key,
            "hubspot_contacts",
            &[
                ("url", raw.url.is_some()),
                ("method", raw.method.is_some()),
                ("headers", raw.headers.is_some()),
                ("body", raw.body.is_some()),
            ],
        );
        let endpoint = raw.endpoint.clone().unwrap_or_else(|| HUBSPOT_ENDPOINT.into());
        if !is_plain_url(&endpoint) {
            self.problem(
                format!("{key}.endpoint"),
                "not an http(s) base URL",
                "remove it to use https://api.hubapi.com",
            );
        } else if !crate::trust::secure_transport(&endpoint) {
            self.problem(
                format!("{key}.endpoint"),
                "plain http, and the token would travel in clear text",
                "use https:// (plain http is allowed only to a loopback address, for tests)",
            );
        }
        let id_property = raw.id_property.clone().unwrap_or_else(|| "email".into());
        if id_property.is_empty() {
            self.problem(format!("{key}.id_property"), "empty", "use email, or a unique custom property");
        }
        if let Some(props) = &raw.properties {
            if !props.contains_key(&id_property) {
                self.problem(
                    format!("{key}.properties"),
                    format!("no property {id_property:?} to match contacts on"),
                    format!("map a column to {id_property} (e.g. {id_property} = \"EMAIL\") or set id_property"),
                );
            }
        }
        (self.problems.len() == before).then(|| {
            IntegrationKind::HubspotContacts(HubspotSpec {
                endpoint: endpoint.trim_end_matches('/').into(),
                id_property,
            })
        })
    }

    fn mapping(
        &mut self,
        key: &str,
        raw: Option<BTreeMap<String, RawProperty>>,
        drop: Option<Vec<String>>,
        nulls: Option<&str>,
        hubspot: bool,
    ) -> Mapping {
        let nulls = match nulls {
            None if hubspot => Nulls::Omit,
            None | Some("keep") => Nulls::Keep,
            Some("omit") => Nulls::Omit,
            Some(other) => {
                self.problem(format!("{key}.nulls"), format!("unknown value {other:?}"), "use \"keep\" or \"omit\"");
                Nulls::Keep
            }
        };
        if raw.is_some() && drop.is_some() {
            self.problem(
                format!("{key}.drop"),
                "drop applies when every column is sent",
                "remove drop: with properties, only the listed properties are sent",
            );
        }
        let properties = raw.map(|props| {
            let mut out = Vec::new();
            for (name, p) in props {
                let pkey = format!("{key}.properties.{name}");
                let source = match p {
                    RawProperty::Column(c) if !c.is_empty() => {
                        Some(PropertySource::Column { column: c, kind: ValueType::Auto })
                    }
                    RawProperty::Column(_) => {
                        self.problem(&pkey, "empty column name", "name the column this property comes from");
                        None
                    }
                    RawProperty::Full(t) => match (t.column, t.value) {
                        (Some(c), None) if !c.is_empty() => {
                            let kind = match t.kind.as_deref() {
                                None | Some("auto") => ValueType::Auto,
                                Some("string") => ValueType::String,
                                Some("number") => ValueType::Number,
                                Some("bool") => ValueType::Bool,
                                Some("datetime") => ValueType::Datetime,
                                Some("date") => ValueType::Date,
                                Some(other) => {
                                    self.problem(
                                        format!("{pkey}.type"),
                                        format!("unknown type {other:?}"),
                                        "use auto, string, number, bool, datetime or date",
                                    );
                                    ValueType::Auto
                                }
                            };
                            Some(PropertySource::Column { column: c, kind })
                        }
                        (None, Some(v)) if t.kind.is_none() => match serde_json::to_value(&v) {
                            Ok(v) => Some(PropertySource::Constant(v)),
                            Err(e) => {
                                self.problem(
                                    &pkey,
                                    format!("constant cannot be sent as JSON: {e}"),
                                    "use a string, number or bool",
                                );
                                None
                            }
                        },
                        _ => {
                            self.problem(
                                &pkey,
                                "give either column (with an optional type) or value",
                                "e.g. { column = \"SCORE\", type = \"number\" } or { value = \"sluice\" }",
                            );
                            None
                        }
                    },
                };
                if let Some(source) = source {
                    out.push(Property { name, source });
                }
            }
            if out.is_empty() && self.problems.is_empty() {
                self.problem(
                    format!("{key}.properties"),
                    "no properties",
                    "map at least one column, or remove the table to send every column",
                );
            }
            out
        });
        Mapping { properties, drop: drop.unwrap_or_default(), nulls }
    }
}

impl crate::trust::SecretHosts {
    /// Where `spec` sends its token, if anywhere the list does not allow: a message naming the
    /// integration, the host and the setting to change.
    pub fn check_integration(&self, spec: &IntegrationSpec) -> Option<String> {
        let url = match &spec.kind {
            IntegrationKind::Webhook(w) if spec.token.is_some() => &w.url,
            IntegrationKind::HubspotContacts(h) => &h.endpoint,
            _ => return None,
        };
        (!self.allows(url)).then(|| self.refusal(&format!("integration {:?}", spec.name), url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_requests_per_period() {
        assert_eq!(parse_rate("10/s"), Some(RateLimit { requests: 10, per: Duration::from_secs(1) }));
        assert_eq!(parse_rate("100/10s"), Some(RateLimit { requests: 100, per: Duration::from_secs(10) }));
        assert_eq!(parse_rate("600/min"), Some(RateLimit { requests: 600, per: Duration::from_secs(60) }));
        assert_eq!(parse_rate(" 5 / 2m "), Some(RateLimit { requests: 5, per: Duration::from_secs(120) }));
        for bad in ["", "10", "0/s", "10/0s", "x/s", "10/fortnight"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }

    #[test]
    fn urls_with_credentials_or_without_host_are_refused() {
        assert!(is_plain_url("https://hooks.example.com/x?y=1"));
        assert!(is_plain_url("http://127.0.0.1:8080"));
        assert!(!is_plain_url("https://user:pw@hooks.example.com/"));
        assert!(!is_plain_url("ftp://x"));
        assert!(!is_plain_url("https:///path"));
    }
}
