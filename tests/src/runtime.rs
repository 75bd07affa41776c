//! A Lambda Runtime API served by the test kit, running a function binary the workspace build
//! already made: the binary is started as Lambda starts it (`AWS_LAMBDA_RUNTIME_API` and the
//! function's variables), polls `GET /runtime/invocation/next` for each event, and answers on
//! `/response` or `/error`; a start-up failure is posted to `/runtime/init/error`. The same
//! protocol `cargo lambda watch` serves (one test keeps that real tool, see `lambda.rs`), without
//! building the function again in a target folder of its own.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// How long an invocation may take, as the deadline the function is given: ten minutes, as
/// `cargo lambda watch` gives.
pub const TIMEOUT: Duration = Duration::from_secs(600);

struct Invocation {
    id: String,
    body: String,
    deadline_ms: u128,
}

type Answer = Result<serde_json::Value, serde_json::Value>;

#[derive(Default)]
struct Waiting {
    answers: HashMap<String, oneshot::Sender<Answer>>,
    init_error: Option<serde_json::Value>,
}

/// One function binary under the test kit's Runtime API, stopped on drop.
pub struct Runtime {
    child: Mutex<Child>,
    queue: mpsc::UnboundedSender<Invocation>,
    waiting: Arc<Mutex<Waiting>>,
    log: PathBuf,
    next_id: std::sync::atomic::AtomicU64,
    _shutdown: oneshot::Sender<()>,
}

impl Runtime {
    /// Starts `binary` (a path, e.g. `env!("CARGO_BIN_EXE_sluice-export")`) with `env` set, its
    /// logs in `$TMPDIR/sluice-runtime-<port>.log`.
    pub fn start(binary: impl AsRef<Path>, env: &[(&str, String)]) -> Runtime {
        let binary = binary.as_ref();
        let (queue, invocations) = mpsc::unbounded_channel::<Invocation>();
        let invocations = Arc::new(tokio::sync::Mutex::new(invocations));
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let w = waiting.clone();
        let (addr, shutdown) = crate::serve::serve(0, 1, move |req| handle(req, invocations.clone(), w.clone()));
        let log = std::env::temp_dir().join(format!("sluice-runtime-{}.log", addr.port()));
        let file = std::fs::File::create(&log).expect("the runtime log");
        let name = binary.file_name().map_or("function".into(), |n| n.to_string_lossy().into_owned());
        let mut cmd = Command::new(binary);
        cmd.env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("2026/01/01/[$LATEST]{}", addr.port()))
            .stdin(Stdio::null())
            .stdout(file.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        Runtime { child: Mutex::new(child), queue, waiting, log, next_id: Default::default(), _shutdown: shutdown }
    }

    /// Invokes the function with `data`; returns (succeeded, the response, or the error as
    /// `{"errorType", "errorMessage"}`).
    pub fn invoke(&self, data: &str) -> (bool, serde_json::Value) {
        let n = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("00000000-0000-4000-8000-{n:012}");
        let (tx, mut rx) = oneshot::channel();
        {
            let mut w = self.waiting.lock().unwrap();
            if let Some(e) = &w.init_error {
                return (false, e.clone());
            }
            w.answers.insert(id.clone(), tx);
        }
        let deadline_ms = (SystemTime::now() + TIMEOUT).duration_since(UNIX_EPOCH).unwrap().as_millis();
        self.queue.send(Invocation { id, body: data.to_string(), deadline_ms }).expect("the runtime API runs");
        let started = Instant::now();
        loop {
            match rx.try_recv() {
                Ok(Ok(v)) => return (true, v),
                Ok(Err(e)) => return (false, e),
                Err(oneshot::error::TryRecvError::Closed) => return (false, self.exited()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            // A function that died answers nothing: say so with its log.
            if self.child.lock().unwrap().try_wait().ok().flatten().is_some() {
                std::thread::sleep(Duration::from_millis(50));
                if let Ok(answer) = rx.try_recv() {
                    return (answer.is_ok(), answer.unwrap_or_else(|e| e));
                }
                return (false, self.exited());
            }
            if started.elapsed() > TIMEOUT {
                panic!("no answer within {TIMEOUT:?}; its log:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (e.g. `"TERM"`) to the function's process, as the runtime does at shutdown.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.lock().unwrap().id();
        let ok =
            Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {pid}");
    }

    fn exited(&self) -> serde_json::Value {
        serde_json::json!({ "errorType": "Runtime.ExitError", "errorMessage": self.logs() })
    }

    /// What the function logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn answer(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a response")
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    invocations: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>>,
    waiting: Arc<Mutex<Waiting>>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let json = || {
        serde_json::from_slice::<serde_json::Value>(&body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return answer(StatusCode::NOT_FOUND, format!("{{\"errorMessage\":\"no route {path}\"}}"));
    };
    match (method.as_str(), rest) {
        ("GET", "invocation/next") => {
            let next = invocations.lock().await.recv().await;
            let Some(inv) = next else { return answer(StatusCode::GONE, "{}".into()) };
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("lambda-runtime-aws-request-id", &inv.id)
                .header("lambda-runtime-deadline-ms", inv.deadline_ms.to_string())
                .header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:test")
                .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0")
                .body(Full::new(Bytes::from(inv.body)))
                .expect("a response")
        }
        ("POST", "init/error") => {
            let mut w = waiting.lock().unwrap();
            let e = json();
            for (_, tx) in w.answers.drain() {
                let _ = tx.send(Err(e.clone()));
            }
            w.init_error = Some(e);
            answer(StatusCode::ACCEPTED, "{}".into())
        }
        ("POST", r) => {
            let (id, outcome) = match (r.strip_suffix("/response"), r.strip_suffix("/error")) {
                (Some(id), _) => (id, Ok(json())),
                (_, Some(id)) => (id, Err(json())),
                _ => return answer(StatusCode::NOT_FOUND, "{}".into()),
            };
            let id = id.trim_start_matches("invocation/");
            match waiting.lock().unwrap().answers.remove(id) {
                Some(tx) => {
                    let _ = tx.send(outcome);
                    answer(StatusCode::ACCEPTED, "{}".into())
                }
                None => answer(StatusCode::BAD_REQUEST, "{\"errorMessage\":\"unknown request id\"}".into()),
            }
        }
        _ => answer(StatusCode::NOT_FOUND, "{}".into()),
    }
}
