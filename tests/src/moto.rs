//! moto's server as the AWS stand-in: started once per test process on a free loopback port
//! from the venv `scripts/setup.sh` installs, and stopped when the process exits. Each test uses
//! its own uuid-named bucket or table, so tests share one server safely.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Moto {
    pub endpoint: String,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repo's root, from this crate's folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// A plain HTTP request to the stand-in (its control API needs no signing).
pub fn http(endpoint: &str, method: &str, path: &str) -> std::io::Result<String> {
    http_request(endpoint, method, path, &[], "")
}

/// An HTTP/1.1 request to a local stand-in (moto, the fakesnow adapter): the whole response,
/// status line and headers included. `headers` are extra `Name: value` lines.
pub fn http_request(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<String> {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

impl Moto {
    fn start() -> Moto {
        let bin = repo_root().join(".tools/venv/bin/python");
        assert!(bin.exists(), "{} is missing: run scripts/setup.sh (scripts/test.sh does)", bin.display());
        // moto's server with DynamoDB's per-request atomicity (see tests/moto/server.py).
        let server = repo_root().join("tests/moto/server.py");
        let port = free_port();
        // The server lives in a static, which is never dropped: a watchdog shell stops it when
        // this test process is gone, so no server outlives the tests.
        let script = format!(
            "\"$0\" \"$1\" -H 127.0.0.1 -p {port} & m=$!; while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; kill $m",
            pid = std::process::id()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&bin)
            .arg(&server)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { endpoint: format!("http://127.0.0.1:{port}"), child };
        let started = Instant::now();
        while http(&moto.endpoint, "GET", "/moto-api/").map(|r| !r.starts_with("HTTP/1.1 200")).unwrap_or(true) {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not answer on {}", moto.endpoint);
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// The one server of this test process.
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(Moto::start)
    }
}

/// A unique lower-case name for a bucket, table or queue.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}
