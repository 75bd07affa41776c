//! What an integration needs from an API, in two halves: the `HttpClient` port (the adapter that
//! sends bytes, `sluice-http`) and the `Api` of each kind, pure logic that builds a batch's
//! request and reads its answer. Adding a kind is adding an `Api` (see docs/integrations.md).

use crate::error::Invalid;
use async_trait::async_trait;
use std::time::Duration;

pub use super::mapping::Properties;
use super::raw::SECRET_HEADERS;

#[derive(Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Without header values that are credentials, and without the body (rows): a request can end
/// up in a log line or an error, and neither may carry a token or data.
impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = SECRET_HEADERS.iter().any(|s| k.eq_ignore_ascii_case(s));
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body for a message or a failures file: text, cut to 2 KiB.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut cut: String = text.chars().take(2048).collect();
        if cut.len() < text.len() {
            cut.push('…');
        }
        cut
    }

    /// `Retry-After` in seconds or as an HTTP date.
    pub fn retry_after(&self) -> Option<Duration> {
        let v = self.header("retry-after")?.trim();
        if let Ok(secs) = v.parse::<f64>() {
            return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)));
        }
        let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok().or(Some(Duration::ZERO))
    }
}

/// A request that got no answer: every one of these is retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Failed(String),
}

/// Sends one request. Redirects are not followed: a moved endpoint is a config problem.
#[async_trait]
pub trait HttpClient: Send + Sync {
    async fn send(&self, request: HttpRequest, timeout: Duration) -> Result<HttpResponse, TransportError>;
}

/// One record on its way: its index among the manifest's rows and its properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub index: u64,
    pub properties: Properties,
}

/// A request's worth of records, with a key that is the same every time these records are sent
/// (an `Idempotency-Key`, so a resent batch is recognised by an API that honours it).
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    pub key: String,
    pub records: &'a [Outgoing],
}

/// What an answer means for a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Accepted, except these records (position in the batch, the API's reason).
    Accepted { rejected: Vec<(usize, String)> },
    /// Refused as a whole for its content: split it to find the bad records.
    Rejected { status: u16, message: String },
    /// Try again after a while (429, 5xx): the server's wait if it gave one.
    Retry { status: u16, wait: Option<Duration>, message: String },
    /// Stop delivering: credentials, a wrong endpoint, an exhausted daily quota.
    Fatal { status: u16, message: String },
}

pub trait Api: Send + Sync {
    /// Why a record cannot be sent to this API at all (e.g. HubSpot without an email).
    fn check(&self, _record: &Outgoing) -> Result<(), Invalid> {
        Ok(())
    }
    fn request(&self, batch: &Batch, token: Option<&str>) -> HttpRequest;
    fn answer(&self, batch: &Batch, response: &HttpResponse) -> Answer;
    /// What the API does with a `check` table's rows, which say what happened to them
    /// (`_sluice_op`): take the column as it is, or only upsert.
    fn operations(&self) -> Operations {
        Operations::AsColumn
    }
    /// A property every mapping must send (what an upsert matches records on), what it
    /// matches (`"contacts"`) and what to do when it is missing.
    fn required_property(&self) -> Option<Required<'_>> {
        None
    }
}

/// A property an API needs in every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Required<'a> {
    pub property: &'a str,
    /// What it matches, in the API's words (`contacts`).
    pub matches: &'static str,
    /// What to do when the mapping does not send it.
    pub hint: &'static str,
}

/// How an API takes the rows of a `check` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operations {
    /// The `_sluice_op` column is sent like any other.
    AsColumn,
    /// The API upserts: the column is not sent (unless the mapping names it), and a delete,
    /// which an upsert would turn into a record of empty values, fails its record with this
    /// message instead (it lands in the failures file for the team to act on).
    UpsertOnly { delete_refused: &'static str },
}

/// The status classes every kind shares.
pub fn by_status(response: &HttpResponse) -> Option<Answer> {
    let status = response.status;
    let message = || format!("HTTP {status}: {}", response.excerpt());
    match status {
        200..=299 => None,
        408 | 425 | 429 | 500..=599 => Some(Answer::Retry { status, wait: response.retry_after(), message: message() }),
        401 | 403 => Some(Answer::Fatal { status, message: format!("{}; check the integration's token", message()) }),
        404 | 405 | 415 => {
            Some(Answer::Fatal { status, message: format!("{}; check the integration's URL and method", message()) })
        }
        300..=399 => Some(Answer::Fatal {
            status,
            message: format!(
                "HTTP {status}: redirected to {}; give the final URL",
                response.header("location").unwrap_or("an unnamed location")
            ),
        }),
        _ => Some(Answer::Rejected { status, message: message() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrate::kinds::hubspot::{HubspotContacts, HubspotSpec};
    use crate::integrate::kinds::webhook::{Webhook, WebhookSpec};
    use crate::integrate::raw::RECORDS_PLACEHOLDER;
    use serde_json::{json, Value};

    fn records(n: u64) -> Vec<Outgoing> {
        (0..n)
            .map(|i| Outgoing {
                index: 10 + i,
                properties: Properties::from_json(json!({"email": format!("c{i}@example.com"), "score": i})),
            })
            .collect()
    }

    fn response(status: u16, body: Value) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("retry-after".into(), "3".into())],
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    #[test]
    fn a_webhook_body_template_wraps_the_records_and_the_token_is_a_bearer_header() {
        let w = Webhook(WebhookSpec {
            url: "http://h/x".into(),
            method: "PUT".into(),
            headers: vec![("X-Team".into(), "data".into())],
            body: Some(json!({"source": "sluice", "items": RECORDS_PLACEHOLDER})),
        });
        let recs = records(2);
        let req = w.request(&Batch { key: "k-1".into(), records: &recs }, Some("t0k"));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["items"][1]["email"], "c1@example.com");
        assert_eq!(body["source"], "sluice");
        assert_eq!(req.method, "PUT");
        assert!(req.headers.contains(&("authorization".into(), "Bearer t0k".into())));
        assert!(req.headers.contains(&("idempotency-key".into(), "k-1".into())));
    }

    #[test]
    fn statuses_map_to_retry_split_or_stop() {
        let w = Webhook(WebhookSpec { url: "http://h".into(), method: "POST".into(), headers: vec![], body: None });
        let recs = records(3);
        let b = Batch { key: "k".into(), records: &recs };
        assert!(
            matches!(w.answer(&b, &response(429, json!({}))), Answer::Retry { wait: Some(d), .. } if d == Duration::from_secs(3))
        );
        assert!(matches!(w.answer(&b, &response(503, json!({}))), Answer::Retry { .. }));
        assert!(matches!(w.answer(&b, &response(400, json!({}))), Answer::Rejected { status: 400, .. }));
        assert!(matches!(w.answer(&b, &response(401, json!({}))), Answer::Fatal { status: 401, .. }));
        assert_eq!(
            w.answer(&b, &response(200, json!({"errors": [{"index": 1, "message": "bad email"}, {"index": 9}]}))),
            Answer::Accepted { rejected: vec![(1, "bad email".into())] }
        );
    }

    #[test]
    fn hubspot_matches_a_207s_errors_to_inputs_by_trace_id() {
        let h = HubspotContacts(HubspotSpec { endpoint: "http://h".into(), id_property: "email".into() });
        let recs = records(3);
        let b = Batch { key: "k".into(), records: &recs };
        let req = h.request(&b, Some("t"));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(req.url, "http://h/crm/v3/objects/contacts/batch/upsert");
        assert_eq!(
            body["inputs"][2],
            json!({"idProperty": "email", "id": "c2@example.com", "objectWriteTraceId": "12", "properties": {"email": "c2@example.com", "score": "2"}})
        );
        let answer = h.answer(
            &b,
            &response(
                207,
                json!({"status": "COMPLETE", "numErrors": 1,
                       "results": [{"id": "1", "objectWriteTraceId": "10"}, {"id": "3", "objectWriteTraceId": "12"}],
                       "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "Email is invalid", "context": {"objectWriteTraceId": ["11"]}}]}),
            ),
        );
        assert_eq!(answer, Answer::Accepted { rejected: vec![(1, "VALIDATION_ERROR: Email is invalid".into())] });
        let daily = h.answer(&b, &response(429, json!({"policyName": "DAILY"})));
        assert!(matches!(daily, Answer::Fatal { .. }));
        assert!(h.check(&Outgoing { index: 0, properties: Properties::default() }).is_err());
    }

    #[test]
    fn a_request_prints_no_credential_and_no_row() {
        let req = HttpRequest {
            method: "POST".into(),
            url: "https://h/x".into(),
            headers: vec![
                ("Authorization".into(), "Bearer s3cret".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: b"{\"email\":\"ada@example.com\"}".to_vec(),
        };
        let shown = format!("{req:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("ada@example.com"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("application/json"), "{shown}");
    }
}
