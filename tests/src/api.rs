//! A destination API for tests and benchmarks: an HTTP server on a free loopback port, in its
//! own thread and runtime, that records every request and answers as a test scripts it: 429
//! with `Retry-After`, 500, a slow answer past the client's timeout, a per-record 400 inside a
//! batch, a whole-batch 400, or success. It follows two shapes: a generic webhook (records are
//! applied once per `Idempotency-Key`, as an API honouring the header does) and HubSpot's batch
//! upsert of contacts (matched on `idProperty`, per-record errors in a 207 keyed by
//! `objectWriteTraceId`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Webhook,
    Hubspot,
}

/// A scripted answer for the next request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 with `Retry-After` in seconds (fractions allowed), applying nothing.
    TooMany(f64),
    /// This status, applying nothing.
    Status(u16),
    /// Apply the records, then answer only after this long.
    Slow(Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Since the server started.
    pub at: Duration,
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub status: u16,
}

#[derive(Default)]
struct State {
    /// Keep only counts and times (for benchmarks: millions of records would not fit).
    lean: bool,
    /// Records received in successful requests, and one request body as a sample.
    records: u64,
    sample: Option<Value>,
    script: VecDeque<Fault>,
    /// Per request: probability of a 429, a 500 and a slow answer, from a seeded generator.
    random: Option<(u64, f64, f64, f64, Duration)>,
    always: Option<u16>,
    /// Only requests bearing this token are served; others get 401 (a rotated credential).
    token: Option<String>,
    /// Records with this property value are refused one by one.
    reject_records: Vec<(String, String)>,
    /// A batch holding a record with this property value is refused whole (400).
    reject_batches: Vec<(String, String)>,
    requests: Vec<Recorded>,
    /// Webhook: answers by idempotency key, so a resent batch is not applied again.
    answered: HashMap<String, (u16, Value)>,
    /// Every application of a record (webhook: each record; HubSpot: each input).
    applied: Vec<Value>,
    /// HubSpot: contacts by id.
    contacts: BTreeMap<String, Value>,
}

pub struct FakeApi {
    pub url: String,
    pub shape: Shape,
    state: Arc<Mutex<State>>,
    started: Instant,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn matches(record: &Value, rules: &[(String, String)]) -> Option<String> {
    rules.iter().find_map(|(p, v)| {
        let got = record.get(p).map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()));
        (got.as_deref() == Some(v.as_str())).then(|| format!("{p} {v:?} is not accepted"))
    })
}

impl FakeApi {
    pub fn start(shape: Shape) -> FakeApi {
        Self::start_with(shape, false, 0)
    }

    /// A server that keeps only counts, arrival times and one sample body, on `port` (0: any
    /// free one), answering `GET /_stats` with them: the benchmark's API.
    pub fn start_lean(shape: Shape, port: u16) -> FakeApi {
        Self::start_with(shape, true, port)
    }

    fn start_with(shape: Shape, lean: bool, port: u16) -> FakeApi {
        let state = Arc::new(Mutex::new(State { lean, ..State::default() }));
        let started = Instant::now();
        let st = state.clone();
        let (addr, shutdown) = crate::serve::serve(port, 2, move |req| handle(shape, st.clone(), started, req));
        FakeApi { url: format!("http://{addr}"), shape, state, started, _shutdown: shutdown }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The next requests get these answers, in order; then success.
    pub fn script(&self, faults: Vec<Fault>) {
        self.with(|s| s.script.extend(faults));
    }

    /// Every request, from now on, draws a 429, a 500 or a slow answer with these odds.
    pub fn random_faults(&self, seed: u64, p429: f64, p500: f64, p_slow: f64, slow: Duration) {
        self.with(|s| s.random = Some((seed.max(1), p429, p500, p_slow, slow)));
    }

    /// Every request gets this status (e.g. 401), or normal answers again with `None`.
    pub fn always(&self, status: Option<u16>) {
        self.with(|s| s.always = status);
    }

    /// From now on, only `Authorization: Bearer <token>` is accepted; others get 401.
    pub fn require_token(&self, token: &str) {
        self.with(|s| s.token = Some(token.to_string()));
    }

    pub fn reject_records_where(&self, property: &str, value: &str) {
        self.with(|s| s.reject_records.push((property.into(), value.into())));
    }

    /// Takes every record again (the API was fixed).
    pub fn accept_all(&self) {
        self.with(|s| {
            s.reject_records.clear();
            s.reject_batches.clear();
        });
    }

    pub fn reject_batches_containing(&self, property: &str, value: &str) {
        self.with(|s| s.reject_batches.push((property.into(), value.into())));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.requests.clone())
    }

    /// Every application of a record, in order: a record applied twice appears twice.
    pub fn applied(&self) -> Vec<Value> {
        self.with(|s| s.applied.clone())
    }

    /// HubSpot: the contacts as they stand, by id.
    pub fn contacts(&self) -> BTreeMap<String, Value> {
        self.with(|s| s.contacts.clone())
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

fn answer(status: u16, body: &Value, headers: &[(&str, String)]) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status).header("content-type", "application/json");
    for (n, v) in headers {
        r = r.header(*n, v);
    }
    r.body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default()))).expect("a valid response")
}

/// A xorshift step: the fault mix is random but the same for a seed.
fn next_random(seed: &mut u64) -> f64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed % 1_000_000) as f64 / 1_000_000.0
}

async fn handle(
    shape: Shape,
    state: Arc<Mutex<State>>,
    started: Instant,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let at = started.elapsed();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if path == "/_stats" {
        let s = state.lock().unwrap_or_else(|p| p.into_inner());
        let times: Vec<f64> = s.requests.iter().map(|r| r.at.as_secs_f64() * 1000.0).collect();
        let statuses: Vec<u16> = s.requests.iter().map(|r| r.status).collect();
        let stats = json!({"requests": s.requests.len(), "records": s.records, "times_ms": times, "statuses": statuses, "sample": s.sample});
        return answer(200, &stats, &[]);
    }

    let (status, reply, extra, delay) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let key = headers.get("idempotency-key").cloned();
        let unauthorized =
            s.token.as_ref().is_some_and(|t| headers.get("authorization") != Some(&format!("Bearer {t}")));
        let fault = if unauthorized {
            Some(Fault::Status(401))
        } else if let Some(st) = s.always {
            Some(Fault::Status(st))
        } else if let Some(f) = s.script.pop_front() {
            Some(f)
        } else if let Some((mut seed, p429, p500, p_slow, slow)) = s.random {
            let r = next_random(&mut seed);
            s.random = Some((seed, p429, p500, p_slow, slow));
            if r < p429 {
                Some(Fault::TooMany(0.05))
            } else if r < p429 + p500 {
                Some(Fault::Status(500))
            } else if r < p429 + p500 + p_slow {
                Some(Fault::Slow(slow))
            } else {
                None
            }
        } else {
            None
        };
        let replay = key.as_ref().and_then(|k| s.answered.get(k).cloned());
        let (status, reply, extra, delay): (u16, Value, Vec<(&str, String)>, Option<Duration>) = match (fault, replay) {
            (Some(Fault::TooMany(secs)), _) => (
                429,
                json!({"status": "error", "category": "RATE_LIMITS", "policyName": "TEN_SECONDLY_ROLLING"}),
                vec![("retry-after", format!("{secs}"))],
                None,
            ),
            (Some(Fault::Status(st)), _) => {
                (st, json!({"status": "error", "message": format!("scripted {st}")}), vec![], None)
            }
            // A batch already applied under this key: the stored answer, nothing applied again.
            (fault, Some((st, reply))) => {
                let delay = match fault {
                    Some(Fault::Slow(d)) => Some(d),
                    _ => None,
                };
                (st, reply, vec![], delay)
            }
            (fault, None) => {
                let delay = match fault {
                    Some(Fault::Slow(d)) => Some(d),
                    _ => None,
                };
                let (st, reply) = apply(shape, &mut s, &body);
                if let Some(k) = key {
                    if (200..300).contains(&st) {
                        s.answered.insert(k, (st, reply.clone()));
                    }
                }
                (st, reply, vec![], delay)
            }
        };
        if (200..300).contains(&status) {
            s.records += match &body {
                Value::Array(a) => a.len() as u64,
                Value::Object(o) => o.values().find_map(Value::as_array).map_or(0, |a| a.len() as u64),
                _ => 0,
            };
        }
        if s.lean {
            if s.sample.is_none() {
                s.sample = Some(body);
            }
            s.requests.push(Recorded { at, method, path, headers: BTreeMap::new(), body: Value::Null, status });
        } else {
            s.requests.push(Recorded { at, method, path, headers, body, status });
        }
        (status, reply, extra, delay)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    answer(status, &reply, &extra)
}

/// Applies a batch (unless refused whole) and says what the API answers.
fn apply(shape: Shape, s: &mut State, body: &Value) -> (u16, Value) {
    match shape {
        Shape::Webhook => {
            let records: Vec<Value> = match body {
                Value::Array(a) => a.clone(),
                Value::Object(o) => o.values().find_map(|v| v.as_array().cloned()).unwrap_or_default(),
                _ => Vec::new(),
            };
            if records.iter().any(|r| matches(r, &s.reject_batches).is_some()) {
                return (400, json!({"error": "the batch holds an invalid record"}));
            }
            let mut errors = Vec::new();
            for (i, r) in records.iter().enumerate() {
                match matches(r, &s.reject_records) {
                    Some(why) => errors.push(json!({"index": i, "message": why})),
                    None if s.lean => {}
                    None => s.applied.push(r.clone()),
                }
            }
            (200, json!({"accepted": records.len() - errors.len(), "errors": errors}))
        }
        Shape::Hubspot => {
            let inputs = body.get("inputs").and_then(Value::as_array).cloned().unwrap_or_default();
            if inputs.is_empty() || inputs.len() > 100 {
                return (
                    400,
                    json!({"status": "error", "category": "VALIDATION_ERROR", "message": "inputs must hold 1 to 100 items"}),
                );
            }
            let props = |i: &Value| i.get("properties").cloned().unwrap_or(Value::Null);
            if inputs.iter().any(|i| matches(&props(i), &s.reject_batches).is_some()) {
                return (
                    400,
                    json!({"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid", "errors": [{"message": "invalid", "code": "INVALID_OPTION"}]}),
                );
            }
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for i in &inputs {
                let trace = i.get("objectWriteTraceId").cloned().unwrap_or(Value::Null);
                match matches(&props(i), &s.reject_records) {
                    Some(why) => errors.push(json!({"status": "error", "category": "VALIDATION_ERROR", "message": why, "context": {"objectWriteTraceId": [trace]}})),
                    None => {
                        let id = i.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                        let merged = match s.contacts.remove(&id) {
                            Some(Value::Object(mut old)) => {
                                if let Some(Value::Object(new)) = i.get("properties") {
                                    old.extend(new.clone());
                                }
                                Value::Object(old)
                            }
                            _ => props(i),
                        };
                        s.contacts.insert(id.clone(), merged);
                        s.applied.push(i.clone());
                        results.push(json!({"id": id, "new": false, "objectWriteTraceId": trace}));
                    }
                }
            }
            let status = if errors.is_empty() { 200 } else { 207 };
            (status, json!({"status": "COMPLETE", "results": results, "numErrors": errors.len(), "errors": errors}))
        }
    }
}
