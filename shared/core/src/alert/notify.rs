//! Alerts posted to a Slack-compatible incoming webhook: `{"text": …}` by POST. The webhook's
//! URL is the secret (whoever holds it can post to the channel), so it is read from where the
//! config says (an environment variable or Secrets Manager) and never logged: errors name the
//! host only.

use async_trait::async_trait;
use serde_json::json;
use std::time::Duration;

use super::AlertEvent;
use crate::integrate::api::{HttpClient, HttpRequest};
use crate::ports::{AlertState, Secrets};
use crate::trust::{host_of, secure_transport, SecretHosts, TokenSource};

/// How long a post may take: an alert must not hold up the run or delivery that raised it.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
pub trait Notify: Send + Sync {
    /// Posts the alert to the webhook whose URL is at `source`. The error names no URL.
    async fn notify(&self, source: &TokenSource, event: &AlertEvent) -> Result<(), String>;
}

/// Posts over the `HttpClient` port.
pub struct Webhook<'a> {
    pub http: &'a dyn HttpClient,
    pub secrets: &'a dyn Secrets,
    /// In AWS, the hosts a secret may go to (a webhook URL is one); `None` on one machine,
    /// where only HTTPS (or HTTP to loopback) is required.
    pub hosts: Option<&'a SecretHosts>,
}

/// The message's text: one line saying what, then why, then where to look.
pub fn text(event: &AlertEvent) -> String {
    let head = match event.status {
        AlertState::Resolved => format!(":white_check_mark: Resolved: {}", event.what),
        _ => format!(":rotating_light: {}", event.what),
    };
    let mut out = format!("{head}\n{}", event.why);
    if let Some(m) = &event.manifest {
        out.push_str(&format!("\nManifest: {m}"));
    }
    out.push_str(&format!(
        "\n(sluice alert {} of export {}, since {})",
        event.key,
        event.export,
        event.since.to_rfc3339()
    ));
    out
}

impl Webhook<'_> {
    async fn url(&self, source: &TokenSource) -> Result<String, String> {
        let url = match source {
            TokenSource::Env(var) => std::env::var(var).map_err(|_| {
                format!("webhook: environment variable {var} is not set; export it with the webhook's URL")
            })?,
            TokenSource::SecretsManager(id) => self
                .secrets
                .secret_string(id)
                .await
                .map_err(|e| format!("webhook: {}", crate::error::error_chain(e.as_ref())))?,
        };
        let url = url.trim().to_string();
        if !secure_transport(&url) {
            return Err(
                "webhook: the stored URL is not https:// (a webhook's URL is a secret and travels over TLS only)"
                    .into(),
            );
        }
        if let Some(hosts) = self.hosts.filter(|h| !h.allows(&url)) {
            return Err(hosts.refusal("the alert webhook", &url));
        }
        Ok(url)
    }
}

#[async_trait]
impl Notify for Webhook<'_> {
    async fn notify(&self, source: &TokenSource, event: &AlertEvent) -> Result<(), String> {
        let url = self.url(source).await?;
        let host = host_of(&url).unwrap_or_default();
        let body = json!({ "text": text(event) }).to_string().into_bytes();
        let request = HttpRequest {
            method: "POST".into(),
            url,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        };
        match self.http.send(request, POST_TIMEOUT).await {
            Ok(r) if (200..300).contains(&r.status) => Ok(()),
            Ok(r) => Err(format!("webhook at {host} answered {}", r.status)),
            // The transport's message may hold the URL: say only what failed, and where.
            Err(_) => Err(format!("webhook at {host} could not be reached")),
        }
    }
}
