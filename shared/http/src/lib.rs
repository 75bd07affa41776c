//! The `HttpClient` port on reqwest (rustls, the same build the Snowflake connector uses). One
//! client per process keeps connections alive across batches; redirects are not followed (a
//! moved endpoint is a config problem to fix, not to chase with a bearer token).

use async_trait::async_trait;
use std::time::Duration;

use sluice_core::integrate::api::{HttpClient, HttpRequest, HttpResponse, TransportError};

pub struct ReqwestClient {
    client: reqwest::Client,
}

impl ReqwestClient {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(ReqwestClient { client })
    }
}

/// The error and its causes, without the URL's query (which may carry a key).
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.without_url_ref().to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let kind = if self.is_connect() {
            "cannot connect"
        } else if self.is_body() || self.is_decode() {
            "the answer broke off"
        } else if self.is_request() {
            "the request failed"
        } else {
            "HTTP error"
        };
        match self.url() {
            Some(u) => format!("{kind} ({}://{}{})", u.scheme(), u.host_str().unwrap_or(""), u.path()),
            None => kind.to_string(),
        }
    }
}

/// How much of an answer's body is read (1 MiB): enough for any per-record error list.
pub const MAX_BODY: usize = 1 << 20;

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, request: HttpRequest, timeout: Duration) -> Result<HttpResponse, TransportError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| TransportError::Failed(format!("invalid method {:?}", request.method)))?;
        let mut builder = self.client.request(method, &request.url).timeout(timeout).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let fail = |e: reqwest::Error| {
            if e.is_timeout() {
                TransportError::Timeout(timeout)
            } else {
                TransportError::Failed(describe(&e))
            }
        };
        let mut response = builder.send().await.map_err(fail)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        // An answer is a status and a short document; what a misbehaving server sends past
        // MAX_BODY is not read, so it cannot fill the function's memory.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fail)? {
            let room = MAX_BODY - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_BODY {
                break;
            }
        }
        Ok(HttpResponse { status, headers, body })
    }
}
