//! The webhook's requests and how its answers are read.

use serde_json::Value;

use super::spec::WebhookSpec;
use crate::integrate::api::{by_status, Answer, Api, Batch, HttpRequest, HttpResponse, Outgoing};
use crate::integrate::raw::RECORDS_PLACEHOLDER;

/// Any JSON API: the records as an array (or inside the body template), a bearer token, an
/// `Idempotency-Key`. Per-record errors: a 2xx answer whose JSON has `"errors": [{"index": i,
/// "message": …}]` (index into the batch's records) fails those records alone.
pub struct Webhook(pub WebhookSpec);

/// The batch's records as a JSON array, serialized straight from the records (no copy).
struct Records<'a>(&'a [Outgoing]);

impl serde::Serialize for Records<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|r| &r.properties))
    }
}

/// A body template with the records where its placeholder is.
struct Templated<'a> {
    template: &'a Value,
    records: &'a Records<'a>,
}

impl serde::Serialize for Templated<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let at = |v| Templated { template: v, records: self.records };
        match self.template {
            Value::String(p) if p == RECORDS_PLACEHOLDER => self.records.serialize(s),
            Value::Array(a) => s.collect_seq(a.iter().map(at)),
            Value::Object(o) => s.collect_map(o.iter().map(|(k, v)| (k, at(v)))),
            other => other.serialize(s),
        }
    }
}

impl Api for Webhook {
    fn request(&self, batch: &Batch, token: Option<&str>) -> HttpRequest {
        let records = Records(batch.records);
        let body = match &self.0.body {
            Some(template) => serde_json::to_vec(&Templated { template, records: &records }),
            None => serde_json::to_vec(&records),
        };
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("idempotency-key".to_string(), batch.key.clone()),
        ];
        headers.extend(self.0.headers.iter().cloned());
        if let Some(t) = token {
            headers.push(("authorization".into(), format!("Bearer {t}")));
        }
        HttpRequest { method: self.0.method.clone(), url: self.0.url.clone(), headers, body: body.unwrap_or_default() }
    }

    fn answer(&self, batch: &Batch, response: &HttpResponse) -> Answer {
        if let Some(a) = by_status(response) {
            return a;
        }
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let rejected = body
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| {
                        let i = e.get("index")?.as_u64()? as usize;
                        let why = e
                            .get("message")
                            .or_else(|| e.get("error"))
                            .map(|m| m.as_str().map(str::to_string).unwrap_or_else(|| m.to_string()))
                            .unwrap_or_else(|| e.to_string());
                        (i < batch.records.len()).then_some((i, why))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Answer::Accepted { rejected }
    }
}
