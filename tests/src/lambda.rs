//! A function binary under `cargo lambda watch` (the real tool's local Lambda runtime API, on a
//! free port), invoked with `cargo lambda invoke`. The binary is the one the workspace build
//! made: the watch runs with `--only-lambda-apis`, so it serves the Runtime API and the invoke
//! endpoint without building the function again in a target folder of its own (which cost a
//! second full build of the dependencies). Most function tests use the test kit's own Runtime
//! API (`runtime.rs`); this one keeps the real tool in the loop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Each watch logs (its own lines and the function's) to `$TMPDIR/sluice-watch-<port>.log`.
use std::time::{Duration, Instant};

use crate::moto::repo_root;

fn cargo_lambda() -> PathBuf {
    let bin = repo_root().join(".tools/venv/bin/cargo-lambda");
    assert!(bin.exists(), "{} is missing: run scripts/setup.sh", bin.display());
    bin
}

/// The function name `cargo lambda watch --only-lambda-apis` routes a bare runtime to.
const FUNCTION: &str = "_";

/// `cargo lambda watch` serving one function binary on a free port, stopped (with the function)
/// on drop.
pub struct Watch {
    child: Child,
    function: Child,
    port: u16,
}

impl Watch {
    /// Serves `binary` (a path, e.g. `env!("CARGO_BIN_EXE_sluice-control")`) of the package in
    /// `functions/<package>` with `env` set.
    pub fn start(package: &str, binary: impl AsRef<Path>, env: &[(&str, String)]) -> Watch {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log_path = std::env::temp_dir().join(format!("sluice-watch-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(cargo_lambda());
        cmd.args(["lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .current_dir(repo_root().join("functions").join(package))
            .stdout(log.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
            .stderr(log.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("cargo lambda watch starts");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "cargo lambda watch did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // The variables the watch says the function must be given.
        let mut function = Command::new(binary.as_ref());
        function
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("watch-{port}"))
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/watch")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
            .stderr(log);
        for (k, v) in env {
            function.env(k, v);
        }
        let function = function.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", binary.as_ref().display()));
        Watch { child, function, port }
    }

    /// Invokes the function; returns (succeeded, output).
    pub fn invoke(&self, data: &str) -> (bool, serde_json::Value) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), data).unwrap();
        let out = Command::new(cargo_lambda())
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1", "--invoke-port", &self.port.to_string()])
            .arg("--data-file")
            .arg(file.path())
            .args(["--output-format", "json", FUNCTION])
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
        let _ = self.function.kill();
        let _ = self.function.wait();
        unsafe { kill(-(self.child.id() as i32), 9) };
        let _ = self.child.wait();
    }
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
