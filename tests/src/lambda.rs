//! A function binary under `cargo lambda watch` (a local Lambda runtime API on a free port),
//! invoked with `cargo lambda invoke`: the real binaries, built and run as Lambda runs them.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Each watch logs (its build, and the function's own log lines) to
/// `$TMPDIR/sluice-watch-<port>.log`.
use std::time::{Duration, Instant};

use crate::moto::repo_root;

fn cargo_lambda() -> PathBuf {
    let bin = repo_root().join(".tools/venv/bin/cargo-lambda");
    assert!(bin.exists(), "{} is missing: run scripts/setup.sh", bin.display());
    bin
}

/// `cargo lambda watch` serving one function package on a free port, stopped (with the
/// function) on drop.
pub struct Watch {
    child: Child,
    port: u16,
    binary: String,
}

impl Watch {
    /// Serves the package in `functions/<package>` (binary `binary`) with `env` set.
    pub fn start(package: &str, binary: &str, env: &[(&str, String)]) -> Watch {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(std::env::temp_dir().join(format!("sluice-watch-{port}.log"))).unwrap();
        let mut cmd = Command::new(cargo_lambda());
        cmd.args(["lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
            .current_dir(repo_root().join("functions").join(package))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    repo_root().join(".tools/venv/bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdout(log.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
            .stderr(log);
        // Its own target folder: it builds the function with the package's feature set, which
        // differs from the workspace's, and sharing one folder would rebuild both each time.
        let target =
            std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
        cmd.env("CARGO_TARGET_DIR", target.join("cargo-lambda"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("cargo lambda watch starts");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "cargo lambda watch did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Watch { child, port, binary: binary.to_string() }
    }

    /// Invokes the function; returns (succeeded, output).
    pub fn invoke(&self, data: &str) -> (bool, serde_json::Value) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), data).unwrap();
        let out = Command::new(cargo_lambda())
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1", "--invoke-port", &self.port.to_string()])
            .arg("--data-file")
            .arg(file.path())
            .args(["--output-format", "json", &self.binary])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        let json_start = text.find('{').unwrap_or(0);
        let value = serde_json::from_str(text[json_start..].trim()).unwrap_or(serde_json::Value::String(text.clone()));
        (out.status.success(), value)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        unsafe { kill(-(self.child.id() as i32), 9) };
        let _ = self.child.wait();
    }
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
