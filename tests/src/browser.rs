//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromedriver`,
//! which scripts/setup.sh installs): the console's pages as a person uses them. The driver runs
//! on a free loopback port and is stopped, with its browser, when the `Browser` is dropped.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::moto::free_port;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    driver: Child,
    endpoint: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// One request to chromedriver, which keeps connections open: the answer is read by its
/// Content-Length.
fn http_request(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\n\r\n{body}", body.len())?;
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut buf = vec![0; length];
    reader.read_exact(&mut buf)?;
    Ok(format!("{head}{}", String::from_utf8_lossy(&buf)))
}

fn body_of(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("chromedriver answered {response:?}: {e}"))
}

impl Browser {
    pub fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run scripts/setup.sh (it installs chromium and chromium-driver)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            match http_request(&endpoint, "GET", "/status", &[], "") {
                Ok(r) if body_of(&r)["value"]["ready"] == true => break,
                _ if started.elapsed() > Duration::from_secs(20) => panic!("chromedriver did not start on {endpoint}"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--no-first-run",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let r = http_request(&endpoint, "POST", "/session", &[("Content-Type", "application/json")], &caps.to_string())
            .expect("a session");
        let v = body_of(&r);
        let session = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        Browser { driver, endpoint, session, _profile: profile }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let text = if method == "GET" { String::new() } else { body.to_string() };
        let r = http_request(&self.endpoint, method, &path, &[("Content-Type", "application/json")], &text)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let v = body_of(&r);
        if v["value"].get("error").is_some() {
            panic!("chromedriver {method} {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", json!({})).as_str().unwrap_or_default().to_string()
    }

    fn element(&self, css: &str) -> String {
        let v = self.call("POST", "/element", json!({"using": "css selector", "value": css}));
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("an element id").to_string()
    }

    /// The button whose text is `label` (the first, in page order).
    pub fn click_button(&self, label: &str) {
        let xpath = format!("//button[normalize-space(.)='{label}'] | //a[normalize-space(.)='{label}']");
        let found = self.call("POST", "/elements", json!({"using": "xpath", "value": xpath}));
        if found.as_array().is_none_or(Vec::is_empty) {
            panic!("no button or link {label:?} on {}:\n{}", self.url(), self.text());
        }
        let v = found[0].clone();
        let id =
            v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("an element id").to_string();
        self.navigating(|| {
            self.call("POST", &format!("/element/{id}/click"), json!({}));
        });
    }

    fn script(&self, js: &str) -> Value {
        self.call("POST", "/execute/sync", json!({ "script": js, "args": [] }))
    }

    /// Does `act` (a click that loads another page) and waits until the new page has loaded:
    /// the old document is marked first, so its lingering is not taken for the new one.
    fn navigating(&self, act: impl FnOnce()) {
        self.script("window.__sluice_old_page = true;");
        act();
        let started = Instant::now();
        while self.script("return window.__sluice_old_page === undefined && document.readyState === 'complete';")
            != true
        {
            assert!(started.elapsed() < Duration::from_secs(20), "the page did not load after the click");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replaces a field's text, typed as a person would.
    pub fn fill(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/clear"), json!({}));
        self.call("POST", &format!("/element/{id}/value"), json!({ "text": text }));
        let now = self.call("GET", &format!("/element/{id}/property/value"), json!({}));
        assert_eq!(now.as_str(), Some(text), "the field {css} did not take the text");
    }

    /// The page's text once it contains `needle` (a click's navigation may still be loading),
    /// or, after 10 s, whatever it is.
    pub fn wait_text(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let t = self.text();
            if t.contains(needle) || started.elapsed() > Duration::from_secs(10) {
                return t;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.script("return document.body.innerText;").as_str().unwrap_or_default().to_string()
    }

    /// A PNG of the window.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let b64 = self.call("GET", "/screenshot", json!({}));
        let png =
            base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default()).expect("base64 PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = http_request(&self.endpoint, "DELETE", &path, &[], "");
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
