//! Where secrets may go. Whoever may write the config decides where a webhook's token, the
//! HubSpot token and the Snowflake credentials are sent, so the config alone must not be able to
//! send them anywhere: a secret travels over HTTPS only (plain HTTP only to a loopback address,
//! for tests), and the functions send one only to a host that an allow-list outside the config
//! names (`SLUICE_SECRET_HOSTS`, a stack parameter), besides the vendors' own domains.

/// Where a secret is read from, as a config names it (`env:<VARIABLE>` or
/// `secretsmanager:<secret name or ARN>`): an integration's token, an alert webhook's URL. The
/// config names the place, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable holding the secret.
    Env(String),
    /// A Secrets Manager secret: the secret itself, or (a token) JSON with a `token` field.
    SecretsManager(String),
}

/// Hosts a secret may always go to: the APIs Sluice talks to by default.
pub const VENDOR_HOSTS: &[&str] = &["api.hubapi.com", "*.snowflakecomputing.com"];

/// The host of an `http(s)://` URL, lower-cased, without port or IPv6 brackets.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    // Where an HTTP client's URL parser ends the authority too (`\` for http(s)), and no
    // user info: a host read differently here than by the client would pass the allow-list
    // while the request goes elsewhere, so such a URL has no host.
    let authority = rest.split(['/', '?', '#', '\\']).next()?;
    if authority.contains('@') || rest.contains('\\') {
        return None;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                authority
            }
        }),
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A loopback address: the machine itself (a test's stand-in).
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "::1"
        || host.split('.').next() == Some("127") && host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Whether a secret may travel to `url` over its scheme: HTTPS, or plain HTTP to loopback.
pub fn secure_transport(url: &str) -> bool {
    url.starts_with("https://") || (url.starts_with("http://") && host_of(url).is_some_and(|h| is_loopback(&h)))
}

/// The hosts a secret may be sent to, beyond the vendors' own and loopback.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecretHosts(Vec<String>);

impl SecretHosts {
    /// A comma-separated list of host names, each exact or `*.` and a domain.
    pub fn parse(list: &str) -> SecretHosts {
        SecretHosts(list.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect())
    }

    fn matches(pattern: &str, host: &str) -> bool {
        match pattern.strip_prefix("*.") {
            Some(domain) => host.strip_suffix(domain).is_some_and(|head| head.ends_with('.') && head.len() > 1),
            None => pattern == host,
        }
    }

    /// Whether a secret may go to `url`.
    pub fn allows(&self, url: &str) -> bool {
        let Some(host) = host_of(url) else { return false };
        is_loopback(&host)
            || VENDOR_HOSTS.iter().any(|p| Self::matches(p, &host))
            || self.0.iter().any(|p| Self::matches(p, &host))
    }

    /// The message refusing to send `what`'s credentials to `url`.
    pub(crate) fn refusal(&self, what: &str, url: &str) -> String {
        format!(
            "{what} would send its credentials to {}, which SLUICE_SECRET_HOSTS does not allow (it allows {}); \
             add the host to the stack's SecretHosts parameter if it is yours, or fix the config",
            host_of(url).unwrap_or_else(|| "an unknown host".into()),
            VENDOR_HOSTS.iter().map(|s| s.to_string()).chain(self.0.iter().cloned()).collect::<Vec<_>>().join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_a_client_would_read_differently_has_no_host() {
        assert_eq!(host_of("https://evil.example\\.snowflakecomputing.com/"), None);
        assert_eq!(host_of("https://api.hubapi.com@evil.example/"), None);
        assert!(!SecretHosts::default().allows("https://evil.example\\.snowflakecomputing.com/"));
    }

    #[test]
    fn hosts_are_read_from_urls() {
        assert_eq!(host_of("https://Hooks.Example.com:8443/x?y").as_deref(), Some("hooks.example.com"));
        assert_eq!(host_of("http://[::1]:8080/").as_deref(), Some("::1"));
        assert_eq!(host_of("http://127.0.0.1:9/in").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("ftp://x"), None);
    }

    #[test]
    fn secrets_travel_over_https_or_to_loopback_only() {
        assert!(secure_transport("https://hooks.example.com/in"));
        assert!(secure_transport("http://127.0.0.1:8080/in"));
        assert!(secure_transport("http://localhost/in"));
        assert!(!secure_transport("http://hooks.example.com/in"));
        assert!(!secure_transport("http://127.evil.com/in"));
    }

    #[test]
    fn the_allow_list_admits_vendors_loopback_and_what_it_names() {
        let hosts = SecretHosts::parse(" hooks.example.com, *.partner.io ,");
        assert!(hosts.allows("https://api.hubapi.com"));
        assert!(hosts.allows("https://acme.eu-west-1.privatelink.snowflakecomputing.com"));
        assert!(hosts.allows("https://hooks.example.com/in"));
        assert!(hosts.allows("https://eu.partner.io/x"));
        assert!(hosts.allows("http://127.0.0.1:9/in"));
        assert!(!hosts.allows("https://partner.io/x"), "a wildcard needs a subdomain");
        assert!(!hosts.allows("https://evilpartner.io/x"));
        assert!(!hosts.allows("https://snowflakecomputing.com.evil.net"));
        assert!(!SecretHosts::default().allows("https://hooks.example.com/in"));
    }
}
