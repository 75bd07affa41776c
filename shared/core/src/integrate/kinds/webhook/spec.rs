//! The webhook's keys (`url`, `method`, `headers`, `body`), validated.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::integrate::kinds::common::own_keys;
use crate::integrate::raw::{is_plain_url, RawIntegration, RECORDS_PLACEHOLDER, SECRET_HEADERS};
use crate::spec::validate::Validator;

/// The keys only a webhook takes.
const KEYS: &[&str] = &["url", "method", "headers", "body"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<String>,
    method: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    body: Option<String>,
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

pub(crate) fn parse(v: &mut Validator, key: &str, raw: &RawIntegration) -> Option<WebhookSpec> {
    let before = v.problems.len();
    let own: RawWebhook = own_keys(v, key, "webhook", raw, KEYS)?;
    let url = own.url.unwrap_or_default();
    if url.is_empty() {
        v.problem(format!("{key}.url"), "missing", "give the URL records are sent to");
    } else if !is_plain_url(&url) {
        // Not echoed: a URL with user:password@ would print the password.
        v.problem(
            format!("{key}.url"),
            "not an http(s) URL without credentials",
            "write https://host/path; put the token in token = \"secretsmanager:…\"",
        );
    } else if raw.token.is_some() && !crate::trust::secure_transport(&url) {
        v.problem(
            format!("{key}.url"),
            "plain http, and the token would travel in clear text",
            "use https:// (plain http is allowed only to a loopback address, for tests)",
        );
    }
    let method = own.method.unwrap_or_else(|| "POST".into()).to_ascii_uppercase();
    if !matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        v.problem(format!("{key}.method"), format!("unsupported method {method:?}"), "use POST, PUT or PATCH");
    }
    let mut headers = Vec::new();
    for (name, value) in own.headers.unwrap_or_default() {
        let lower = name.to_ascii_lowercase();
        if SECRET_HEADERS.contains(&lower.as_str()) {
            v.problem(
                format!("{key}.headers.{name}"),
                "credentials do not go in the config file",
                "set token = \"secretsmanager:…\" or \"env:…\"; it is sent as Authorization: Bearer",
            );
        } else if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
            v.problem(format!("{key}.headers"), format!("invalid header name {name:?}"), "use letters, digits and -");
        } else if value.contains(['\r', '\n']) {
            v.problem(format!("{key}.headers.{name}"), "line break in value", "write the value on one line");
        } else {
            headers.push((name, value));
        }
    }
    let body = own.body.as_deref().and_then(|b| body_template(v, key, b));
    (v.problems.len() == before).then_some(WebhookSpec { url, method, headers, body })
}

fn body_template(v: &mut Validator, key: &str, raw: &str) -> Option<serde_json::Value> {
    let value: serde_json::Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(e) => {
            v.problem(
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
            v.problem(
                format!("{key}.body"),
                format!("the template holds \"{{{{records}}}}\" {n} times"),
                "put the string \"{{records}}\" exactly once, as a JSON value, where the array of records goes",
            );
            None
        }
    }
}
