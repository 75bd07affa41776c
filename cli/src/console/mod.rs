//! `sluice console`: the exports as web pages, served by the CLI over the same stores and
//! permissions as the commands (the history file on one machine; DynamoDB and EventBridge with
//! the user's AWS credentials). Server-rendered HTML, no script, no assets from anywhere else.
//!
//! Local web security: a request whose `Host` is not the console's own is refused (a web page
//! elsewhere cannot reach it through DNS rebinding); every change is a POST carrying the
//! console's CSRF token, and one with a foreign `Origin` or `Sec-Fetch-Site` is refused; no
//! response allows another origin (no CORS headers); pages may not be framed. Listening
//! beyond loopback needs an access token (`SLUICE_CONSOLE_TOKEN`), asked of every request.
//!
//! Changes are the `control::Action`s of the control API, each needing one permission;
//! `--grant` says which this console may make, and a refusal names the permission needed.

mod html;
mod pages;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sluice_core::control::{Action, Grant};

use crate::app::App;
use crate::exit;

#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Where to listen. Beyond loopback (127.0.0.1, ::1) the console needs an access token in
    /// SLUICE_CONSOLE_TOKEN, which every request must carry.
    #[arg(long, default_value = "127.0.0.1:8750", value_name = "ADDRESS:PORT")]
    pub listen: String,
    /// What it may change: `configure` (create, edit, activate, discard, delete), `operate`
    /// (pause, resume, orchestrations, run now, replay), or `all`. Reads need neither.
    #[arg(long, value_parser = ["all", "configure", "operate"], default_value = "all")]
    pub grant: String,
    /// Also accept requests for this host name (the name a proxy in front of it uses).
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    pub allow_hosts: Vec<String>,
}

/// The environment variable holding the access token.
pub const TOKEN_VAR: &str = "SLUICE_CONSOLE_TOKEN";
/// The largest form body taken (an export's definition is a few KiB).
const MAX_BODY: usize = 1 << 20;
const COOKIE: &str = "sluice_console";

pub struct Console {
    pub app: App,
    grants: Vec<Grant>,
    /// Accepted `Host` values.
    hosts: Vec<String>,
    /// Every form that changes something carries it.
    csrf: String,
    token: Option<String>,
    who: String,
}

/// A response under construction.
pub struct Page {
    status: StatusCode,
    body: String,
    content_type: &'static str,
    location: Option<String>,
    cookie: Option<String>,
}

impl Page {
    pub fn html(body: String) -> Page {
        Page { status: StatusCode::OK, body, content_type: "text/html; charset=utf-8", location: None, cookie: None }
    }

    pub fn status(mut self, status: StatusCode) -> Page {
        self.status = status;
        self
    }

    /// A redirect after a change (303: the browser then GETs, so a reload repeats nothing).
    pub fn see_other(to: String) -> Page {
        Page { location: Some(to), ..Page::html(String::new()).status(StatusCode::SEE_OTHER) }
    }
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

pub async fn console(app: App, args: &ConsoleArgs) -> Result<u8> {
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        anyhow!(crate::commands::Usage(format!("--listen {:?}: give ADDRESS:PORT, as in 127.0.0.1:8750", args.listen)))
    })?;
    let token = std::env::var(TOKEN_VAR).ok().filter(|t| !t.trim().is_empty());
    if !is_loopback(&addr) && token.as_ref().is_none_or(|t| t.len() < 16) {
        bail!(crate::commands::Usage(format!(
            "listening on {addr} lets other machines reach the console: set {TOKEN_VAR} to a secret of at least 16 characters first (every request must then carry it), or listen on 127.0.0.1"
        )));
    }
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr} (is it in use?)"))?;
    let bound = listener.local_addr()?;
    let port = bound.port();
    // The names it is reached by: its address (for an unspecified one, the loopback of its
    // family), and localhost.
    let ip = match bound.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        other => other,
    };
    let mut hosts =
        vec![if ip.is_ipv6() { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }, format!("localhost:{port}")];
    hosts.extend(args.allow_hosts.iter().map(|h| h.to_ascii_lowercase()));
    let grants = match args.grant.as_str() {
        "configure" => vec![Grant::Configure],
        "operate" => vec![Grant::Operate],
        _ => vec![Grant::Configure, Grant::Operate],
    };
    let who = crate::exports::local_user(&app.host);
    let console = Arc::new(Console { app, grants, hosts, csrf: uuid::Uuid::new_v4().simple().to_string(), token, who });
    // The first line says where it is (scripts and tests read it); with a token, the link
    // carries it once, as notebook servers do: opening it sets the cookie.
    let link = match &console.token {
        Some(t) => format!("http://{}/?token={t}", console.hosts[0]),
        None => format!("http://{}/", console.hosts[0]),
    };
    println!("console: {link} (Ctrl-C stops it)");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let console = console.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let console = console.clone();
                        async move { Ok::<_, std::convert::Infallible>(console.respond(req).await) }
                    });
                    // A client that opens connections and sends nothing does not hold them.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(std::time::Duration::from_secs(30))
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    Ok(exit::OK)
}

/// A form body or query string, decoded.
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(s: &str) -> Form {
        Form(
            s.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Console {
    pub fn grants_text(&self) -> String {
        self.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(" and ")
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    pub fn who(&self) -> &str {
        &self.who
    }

    /// Why this console may not make `action`, naming the permission it needs.
    pub fn refusal(&self, action: &Action) -> Option<String> {
        let needed = action.needs().filter(|g| !self.grants.contains(g))?;
        Some(format!(
            "{} needs the {} permission, and this console was started with --grant {}: ask someone who holds it \
             (in AWS, the stack's {}), or start the console with --grant {}",
            capitalized(action.name()),
            needed.as_str(),
            self.grants_text().replace(" and ", ","),
            needed.policy(),
            needed.as_str()
        ))
    }

    async fn respond(self: &Arc<Self>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let page = match self.guard(&req) {
            Err(refused) => refused,
            Ok(cookie) => {
                let mut page = self.route(req).await.unwrap_or_else(|e| {
                    Page::html(html::page(
                        "Error",
                        &self.grants_text(),
                        &format!(
                            "<div class=\"box refused\"><b>Error</b><pre>{}</pre></div>",
                            html::esc(&format!("{e:#}"))
                        ),
                    ))
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                });
                page.cookie = page.cookie.or(cookie);
                page
            }
        };
        let mut res = Response::new(Full::new(Bytes::from(page.body)));
        *res.status_mut() = page.status;
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(page.content_type));
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on its
        // own forms, and the origin check could not tell them from a stranger's.
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        h.insert("cache-control", HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(&format!("app;dur={:.1}", started.elapsed().as_secs_f64() * 1000.0)) {
            h.insert("server-timing", v);
        }
        if let Some(to) = page.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(LOCATION, to);
        }
        if let Some(c) = page.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert("set-cookie", c);
        }
        res
    }

    /// The checks before any page: the Host, then the access token. Returns the cookie to set
    /// when the token came in the query (the link the console printed).
    fn guard(&self, req: &Request<hyper::body::Incoming>) -> Result<Option<String>, Page> {
        let host = req.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
        if !self.hosts.contains(&host) {
            return Err(plain(
                StatusCode::MISDIRECTED_REQUEST,
                &format!(
                    "this console answers requests for {} only (Host {host:?} refused: a page elsewhere may be trying to reach it); \
                     behind a proxy, start it with --allow-host NAME",
                    self.hosts.join(", ")
                ),
            ));
        }
        let Some(token) = &self.token else { return Ok(None) };
        let bearer =
            req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let cookie = req
            .headers()
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(&format!("{COOKIE}=")).map(str::to_string));
        let query = req.uri().query().map(Form::parse);
        let valid = |t: &str| constant_time_eq(t.as_bytes(), token.as_bytes());
        // A token in the link sets the cookie, then the page is loaded again without it (so it
        // stays out of the address bar and the history).
        if let Some(t) = query.as_ref().and_then(|q| q.get("token")).filter(|t| valid(t)) {
            let mut page = Page::see_other(req.uri().path().to_string());
            page.cookie = Some(format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/"));
            return Err(page);
        }
        if ![bearer.map(str::to_string), cookie].into_iter().flatten().any(|g| valid(&g)) {
            return Err(plain(
                StatusCode::UNAUTHORIZED,
                &format!("this console needs its access token ({TOKEN_VAR} where it runs): open the link it printed, or send Authorization: Bearer <token>"),
            ));
        }
        Ok(None)
    }

    async fn route(self: &Arc<Self>, req: Request<hyper::body::Incoming>) -> Result<Page> {
        let method = req.method().clone();
        let path: Vec<String> = req.uri().path().split('/').filter(|p| !p.is_empty()).map(decode).collect();
        let query = Form::parse(req.uri().query().unwrap_or_default());
        if method == Method::POST {
            // Same-origin forms only: the CSRF token, and the browser's word on where it came from.
            let host = req.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
            let origin = req.headers().get("origin").and_then(|v| v.to_str().ok()).map(str::to_string);
            let site = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return Ok(plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the form is larger than the console takes (1 MiB)",
                    ))
                }
            };
            let form = Form::parse(&String::from_utf8_lossy(&body));
            let foreign_origin =
                origin.is_some_and(|o| o != format!("http://{host}") && o != format!("https://{host}"));
            let foreign_site = site.is_some_and(|s| s != "same-origin" && s != "none");
            if foreign_origin
                || foreign_site
                || form.get("csrf").is_none_or(|t| !constant_time_eq(t.as_bytes(), self.csrf.as_bytes()))
            {
                return Ok(plain(
                    StatusCode::FORBIDDEN,
                    "refused: a change must come from this console's own pages (the form's token or its origin did not match); reload the page and try again",
                ));
            }
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            return pages::post(self, &p, &form).await;
        }
        if method != Method::GET && method != Method::HEAD {
            return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "the console takes GET and POST only"));
        }
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        match p.as_slice() {
            ["style.css"] => {
                Ok(Page { content_type: "text/css; charset=utf-8", ..Page::html(html::STYLE.to_string()) })
            }
            _ => pages::get(self, &p, &query).await,
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Page {
    Page { content_type: "text/plain; charset=utf-8", ..Page::html(format!("{text}\n")).status(status) }
}

/// A sentence's first word: "Activate", from an action's name.
pub(super) fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Compares secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_decoded() {
        let f = Form::parse("a=1&definition=name+%3D+%22crm%22%0A&empty=&bad=%zz");
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("definition"), Some("name = \"crm\"\n"));
        assert_eq!(f.get("empty"), Some(""));
        assert_eq!(f.get("bad"), Some("%zz"));
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }
}
