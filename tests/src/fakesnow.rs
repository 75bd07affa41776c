//! fakesnow behind the project's adapter (`tests/fakesnow/adapter.py`) as the Snowflake
//! stand-in: started once per test process on a free loopback port from the venv
//! `scripts/setup.sh` installs, with a users file so logins are checked, and stopped when the
//! process exits. Tests use their own database names, so they share one server safely.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::moto::{http_request, repo_root};

/// The password of the `SLUICE` user the adapter accepts.
pub const PASSWORD: &str = "sluice-test-password";
/// The OAuth access token the adapter accepts for `SLUICE`.
pub const OAUTH_TOKEN: &str = "sluice-test-oauth-token";
/// The passphrase of the encrypted private key.
pub const PASSPHRASE: &str = "sluice-test-passphrase";
/// Rows per result chunk: small, so the connector's chunked path runs in every larger test.
pub const CHUNK_ROWS: usize = 1000;

pub struct FakeSnow {
    pub endpoint: String,
    /// Holds the users file and the keys.
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Drop for FakeSnow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The users file and key pairs: `key.p8` (registered), `key_encrypted.p8` (the same key,
/// encrypted with `PASSPHRASE`) and `other.p8` (a key no user has).
const KEYGEN: &str = r#"
import json, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
d, password, passphrase, token = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4]
def pkcs8(key, enc):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
open(f"{d}/key.p8", "wb").write(pkcs8(key, serialization.NoEncryption()))
open(f"{d}/key_encrypted.p8", "wb").write(pkcs8(key, serialization.BestAvailableEncryption(passphrase)))
open(f"{d}/other.p8", "wb").write(pkcs8(other, serialization.NoEncryption()))
public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
json.dump({"SLUICE": {"password": password, "token": token, "public_key": public.decode()}}, open(f"{d}/users.json", "w"))
"#;

impl FakeSnow {
    fn start() -> FakeSnow {
        let python = repo_root().join(".tools/venv/bin/python");
        assert!(python.exists(), "{} is missing: run scripts/setup.sh (scripts/test.sh does)", python.display());
        let dir = tempfile::tempdir().expect("a temp dir");
        let keygen = Command::new(&python)
            .args(["-c", KEYGEN])
            .arg(dir.path())
            .args([PASSWORD, PASSPHRASE, OAUTH_TOKEN])
            .status()
            .expect("python runs");
        assert!(keygen.success(), "generating the test keys failed");
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        // As for moto: a watchdog shell stops the server once this test process is gone.
        let script = format!(
            "\"$0\" \"$1\" --port {port} --chunk-rows {CHUNK_ROWS} --users \"$2\" & m=$!; \
             while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; kill $m",
            pid = std::process::id()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&python)
            .arg(repo_root().join("tests/fakesnow/adapter.py"))
            .arg(dir.path().join("users.json"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the fakesnow adapter starts");
        let fs = FakeSnow { endpoint: format!("http://127.0.0.1:{port}"), dir, child };
        let started = Instant::now();
        while fs.request("GET", "/adapter/statements", "").map(|r| !r.starts_with("HTTP/1.1 200")).unwrap_or(true) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the fakesnow adapter did not answer on {}",
                fs.endpoint
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        fs
    }

    /// The one server of this test process.
    pub fn shared() -> &'static FakeSnow {
        static FS: OnceLock<FakeSnow> = OnceLock::new();
        FS.get_or_init(FakeSnow::start)
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn request(&self, method: &str, path: &str, body: &str) -> std::io::Result<String> {
        http_request(&self.endpoint, method, path, &[("Content-Type", "application/json")], body)
    }

    /// Sets the `DETAILED_OUTPUT` result the next `COPY INTO @stage` gets: `[(name, size, rows)]`.
    pub fn set_unload_result(&self, files: &[(&str, u64, u64)]) {
        let files: Vec<serde_json::Value> =
            files.iter().map(|(n, s, r)| serde_json::json!({"name": n, "size": s, "rows": r})).collect();
        let r = self.request("POST", "/adapter/unload", &serde_json::json!({ "files": files }).to_string()).unwrap();
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }

    fn post_json(&self, path: &str, body: &serde_json::Value, token: Option<&str>) -> serde_json::Value {
        let auth = token.map(|t| format!("Snowflake Token=\"{t}\""));
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend(auth.as_deref().map(|a| ("Authorization", a)));
        let out = http_request(&self.endpoint, "POST", path, &headers, &body.to_string()).unwrap();
        let json = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Runs setup SQL over Snowflake's HTTP API as the test user, for tests without the Rust
    /// connector at hand. Panics with Snowflake's message on a failed statement.
    pub fn sql(&self, statements: &[&str]) {
        let login = serde_json::json!({ "data": { "LOGIN_NAME": "SLUICE", "PASSWORD": PASSWORD } });
        let answer = self.post_json("/session/v1/login-request", &login, None);
        let token = answer["data"]["token"].as_str().unwrap_or_else(|| panic!("login: {answer}")).to_string();
        for s in statements {
            let answer =
                self.post_json("/queries/v1/query-request", &serde_json::json!({ "sqlText": s }), Some(&token));
            assert_eq!(answer["success"], true, "{s}: {answer}");
        }
    }

    /// A database of its own (`<PREFIX>_…` with schema PUBLIC), with `statements` run in it:
    /// unqualified names land in that schema.
    pub fn database(&self, prefix: &str, statements: &[&str]) -> String {
        let db = crate::moto::unique_name(prefix).replace('-', "_").to_uppercase();
        self.sql(&[&format!("CREATE DATABASE {db}"), &format!("CREATE SCHEMA {db}.PUBLIC")]);
        self.sql_in(&db, statements);
        db
    }

    /// Runs `statements` in one session whose schema is `db`.PUBLIC.
    pub fn sql_in(&self, db: &str, statements: &[&str]) {
        let use_schema = format!("USE SCHEMA {db}.PUBLIC");
        let all: Vec<&str> = std::iter::once(use_schema.as_str()).chain(statements.iter().copied()).collect();
        self.sql(&all);
    }

    /// Makes the next `COPY INTO @stage` fail with Snowflake's `code` and `message`.
    pub fn fail_unload(&self, code: &str, message: &str) {
        let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
        let r = self.request("POST", "/adapter/unload", &body).unwrap();
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }

    /// Holds the next query whose SQL contains `matching` for `seconds` before running it.
    pub fn delay(&self, matching: &str, seconds: f64) {
        let body = serde_json::json!({ "match": matching, "seconds": seconds }).to_string();
        let r = self.request("POST", "/adapter/delay", &body).unwrap();
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }

    /// What the adapter recorded: `{"sqlText", "bindings"}` per statement, `{"abort"}` per cancel.
    fn record(&self) -> Vec<serde_json::Value> {
        let r = self.request("GET", "/adapter/statements", "").unwrap();
        let body = r.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let list: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        list.as_array().cloned().unwrap_or_default()
    }

    /// How many abort requests (statements cancelled by a client) the adapter received.
    pub fn aborts(&self) -> usize {
        self.record().iter().filter(|s| s.get("abort").is_some()).count()
    }

    /// The SQL texts the adapter received, oldest first.
    pub fn statements(&self) -> Vec<String> {
        self.record().iter().filter_map(|s| s["sqlText"].as_str().map(str::to_string)).collect()
    }
}
