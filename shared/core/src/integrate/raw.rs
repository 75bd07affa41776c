//! The `[integrations.<name>]` keys every kind takes, as the file holds them (a kind's own keys
//! are its `kinds/<kind>/spec.rs`'s, read from `rest`), and what every kind's validation shares:
//! the rate syntax, plain URLs, the headers that carry credentials.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::spec::validate::parse_duration;

/// `requests` per `per`, over any window of that length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawIntegration {
    pub(crate) kind: String,
    pub(crate) export: Option<String>,
    pub(crate) tables: Option<Vec<String>>,
    pub(crate) token: Option<String>,
    pub(crate) batch_size: Option<i64>,
    pub(crate) rate_limit: Option<String>,
    pub(crate) daily_limit: Option<i64>,
    pub(crate) concurrency: Option<i64>,
    pub(crate) max_in_flight: Option<i64>,
    pub(crate) timeout: Option<String>,
    pub(crate) max_attempts: Option<i64>,
    pub(crate) properties: Option<BTreeMap<String, RawProperty>>,
    pub(crate) drop: Option<Vec<String>>,
    pub(crate) nulls: Option<String>,
    /// The kind's own keys, and any key no one takes: the kind reads the first and refuses the rest.
    #[serde(flatten)]
    pub(crate) rest: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawProperty {
    Column(String),
    Full(RawPropertyTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPropertyTable {
    pub(crate) column: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) value: Option<toml::Value>,
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
pub(crate) fn is_plain_url(url: &str) -> bool {
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

/// What a kind needs of the common keys by default (a kind's API's own limits).
#[derive(Debug, Clone, PartialEq)]
pub struct KindDefaults {
    /// Whether `token` must be set: what to tell the user when it is not.
    pub needs_token: Option<&'static str>,
    /// The most records one request takes.
    pub max_batch: usize,
    /// The rate limit when `rate_limit` is not set.
    pub rate_limit: Option<RateLimit>,
    /// The daily request limit when `daily_limit` is not set.
    pub daily_limit: Option<u64>,
    /// Whether NULLs are left out when `nulls` is not set.
    pub omit_nulls: bool,
}

impl Default for KindDefaults {
    fn default() -> Self {
        KindDefaults { needs_token: None, max_batch: 10_000, rate_limit: None, daily_limit: None, omit_nulls: false }
    }
}
