//! Integration specs: the `[integrations.<name>]` sections of the config file. An integration
//! reads the manifests of one export and delivers the rows to one external API. Parsed as
//! strictly as exports (unknown keys are errors) and validated with them, so `sluice validate`
//! reports every problem of a file at once.

use std::collections::BTreeMap;
use std::time::Duration;

pub use super::kinds::hubspot::{HubspotSpec, HUBSPOT_ENDPOINT, HUBSPOT_MAX_BATCH};
pub use super::kinds::webhook::WebhookSpec;
pub use super::kinds::IntegrationKind;
pub use super::mapping::{Mapping, Nulls, Property, PropertySource, ValueType};
pub use super::raw::{parse_rate, RateLimit, RECORDS_PLACEHOLDER};
use super::raw::{RawIntegration, RawProperty};
use crate::spec::export::ExportSpec;
use crate::spec::validate::{is_valid_name, parse_duration, Validator};

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
        self.kind.name()
    }

    /// Whether a manifest of `export`'s table `table` is this integration's to deliver.
    pub fn wants(&self, export: &str, table: &str) -> bool {
        self.export == export && self.tables.as_ref().is_none_or(|t| t.iter().any(|n| n == table))
    }
}

pub use crate::trust::TokenSource;

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

        let kind = IntegrationKind::parse(self, key, &raw);
        let defaults = IntegrationKind::defaults_of(&raw.kind);

        let token = match raw.token.as_deref() {
            None => {
                if let Some(hint) = defaults.needs_token {
                    self.problem(format!("{key}.token"), "missing", hint);
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
        let max_batch = defaults.max_batch as i64;
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
            None => defaults.rate_limit,
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
            None => defaults.daily_limit,
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
        let mapping = self.mapping(key, raw.properties, raw.drop, raw.nulls.as_deref(), defaults.omit_nulls);

        if self.problems.len() != before {
            return None;
        }
        Some(IntegrationSpec {
            name,
            export,
            tables: raw.tables,
            kind: kind?,
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

    fn mapping(
        &mut self,
        key: &str,
        raw: Option<BTreeMap<String, RawProperty>>,
        drop: Option<Vec<String>>,
        nulls: Option<&str>,
        omit_nulls: bool,
    ) -> Mapping {
        let nulls = match nulls {
            None if omit_nulls => Nulls::Omit,
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
        let url = spec.token.as_ref().map(|_| spec.kind.url())?;
        (!self.allows(url)).then(|| self.refusal(&format!("integration {:?}", spec.name), url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrate::raw::is_plain_url;

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
