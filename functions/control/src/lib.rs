//! The control API: managed exports and their orchestrations over HTTP, behind a Lambda
//! function URL with IAM auth.
//!
//! Permissions are IAM's. The stack deploys this binary twice, as the configure function and
//! the operate function, each with its own URL, role and `SLUICE_CONTROL_GRANT`; the
//! ConfigurePolicy lets a caller invoke the first's URL, the OperatePolicy the second's. Each
//! function serves the reads and the changes of its grant, and refuses the others with a 403
//! that names the permission needed, so an action maps to exactly one policy:
//!
//! | grant     | changes                                                          |
//! |-----------|------------------------------------------------------------------|
//! | configure | create, edit, activate, discard, delete an export                |
//! | operate   | pause and resume an export; create, pause, resume, delete orchestrations |
//!
//! Running an export now is invoking the export function, which the OperatePolicy grants.
//! The caller's IAM principal (from the URL's IAM authorizer) is who the audit records name.

use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use sluice_aws::{DynamoHistory, EventBridgeScheduler, S3Store, SecretsManager};
use sluice_core::catalog::{Catalog, CatalogError, Edit, Exports};
use sluice_core::ports::ObjectStore;
use sluice_core::spec::{Config, ConfigError, ExportSpec};
use sluice_core::status::{status_of_all, OrchestrationStatus, Stores};

pub use sluice_core::control::{Action, Grant};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("setting {name}: {problem}")]
    Setting { name: &'static str, problem: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config file could not be fetched or is not valid.
    #[error(transparent)]
    ConfigLoad(#[from] sluice_aws::ConfigLoadError),
}

impl From<sluice_aws::SettingError> for StartError {
    fn from(e: sluice_aws::SettingError) -> StartError {
        StartError::Setting { name: e.name, problem: e.problem }
    }
}

/// The function's settings: the shared ones, its grant, and where orchestration rules go.
pub struct Settings {
    pub base: sluice_aws::FunctionSettings,
    pub grant: Grant,
    /// `SLUICE_RULE_PREFIX`: orchestration rules are named `<prefix><export>.<name>`.
    pub rule_prefix: String,
    /// `SLUICE_EXPORT_FUNCTION_ARN`: the rules' target.
    pub export_function: String,
}

pub fn settings_from_env() -> Result<Settings, StartError> {
    let grant = match sluice_aws::required_var("SLUICE_CONTROL_GRANT")?.as_str() {
        "configure" => Grant::Configure,
        "operate" => Grant::Operate,
        other => {
            return Err(StartError::Setting {
                name: "SLUICE_CONTROL_GRANT",
                problem: format!("{other:?} is neither configure nor operate"),
            })
        }
    };
    Ok(Settings {
        base: sluice_aws::FunctionSettings::from_env(std::time::Duration::from_secs(5))?,
        grant,
        rule_prefix: sluice_aws::required_var("SLUICE_RULE_PREFIX")?,
        export_function: sluice_aws::required_var("SLUICE_EXPORT_FUNCTION_ARN")?,
    })
}

/// An HTTP answer that is not a success: its status, a stable code and what to do.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        let (status, code) = match &e {
            CatalogError::NotFound(_) => (404, "NotFound"),
            CatalogError::Exists(_) | CatalogError::InFile { .. } => (409, "Conflict"),
            CatalogError::Stale { .. } => (409, "StaleRevision"),
            CatalogError::WrongState { .. } | CatalogError::InUse { .. } => (409, "WrongState"),
            CatalogError::Invalid { .. } | CatalogError::Edit(_) => (400, "Invalid"),
            CatalogError::Preflight { .. } => (422, "ChecksFailed"),
            CatalogError::Store(_) => (503, "StoreUnavailable"),
            CatalogError::Scheduler(_) => (503, "SchedulerUnavailable"),
        };
        let message = match &e {
            // The store's error chain may be long; its first line says what failed.
            CatalogError::Store(s) => {
                format!("the state store failed: {}; try again", sluice_core::run::error_chain(s))
            }
            CatalogError::InUse { name, .. } => format!("{e}: DELETE /exports/{name}?force=true"),
            other => other.to_string(),
        };
        ApiError::new(status, code, message)
    }
}

/// One request to the API, as the function URL delivers it.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Value,
    /// The caller's IAM principal.
    pub who: String,
}

/// How far a request's `timeEpoch` may be from this function's clock.
const REQUEST_FRESHNESS_MS: i64 = 5 * 60 * 1000;

/// Whether `event` has the shape of a request that came through a function URL (payload 2.0):
/// the URL's id and domain in this region, a request id and a fresh timestamp. The audit's
/// `who` comes from the event, and a direct invocation may carry any event: one that does not
/// look like the URL's is refused, so no tool or test event is taken for a person. (A principal
/// allowed to invoke the function directly can still forge one; the stack grants that to
/// nobody: its policies allow `lambda:InvokeFunction` only with `lambda:InvokedViaFunctionUrl`.)
pub fn from_function_url(event: &Value, region: Option<&str>, now_ms: i64) -> Result<(), String> {
    let ctx = &event["requestContext"];
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    if event["version"].as_str() != Some("2.0") {
        return Err("its payload version is not 2.0".into());
    }
    let api = text(&ctx["apiId"]).ok_or("requestContext.apiId is missing")?;
    let domain = text(&ctx["domainName"]).ok_or("requestContext.domainName is missing")?;
    let expected = match region {
        Some(r) => format!("{api}.lambda-url.{r}.on.aws"),
        None => format!("{api}.lambda-url."),
    };
    if !(domain == expected || (region.is_none() && domain.starts_with(&expected))) {
        return Err(format!("requestContext.domainName {domain:?} is not the function URL's ({expected})"));
    }
    text(&ctx["requestId"]).ok_or("requestContext.requestId is missing")?;
    text(&ctx["accountId"]).ok_or("requestContext.accountId is missing")?;
    let at = ctx["timeEpoch"].as_i64().ok_or("requestContext.timeEpoch is missing")?;
    if (now_ms - at).abs() > REQUEST_FRESHNESS_MS {
        return Err(format!("requestContext.timeEpoch {at} is more than five minutes from now"));
    }
    Ok(())
}

impl Request {
    /// Reads a function URL event (payload format 2.0).
    pub fn from_event(event: &Value) -> Result<Request, ApiError> {
        let region = std::env::var("AWS_REGION").ok();
        from_function_url(event, region.as_deref(), chrono::Utc::now().timestamp_millis()).map_err(|why| {
            ApiError::new(
                403,
                "NotFromFunctionUrl",
                format!("this API takes requests through its function URL only (AWS_IAM auth), so that it knows who sent them; this event was not one: {why}"),
            )
        })?;
        let http = &event["requestContext"]["http"];
        let method = http["method"].as_str().ok_or_else(|| {
            ApiError::bad_request("not a function URL request: requestContext.http.method is missing")
        })?;
        let who = event["requestContext"]["authorizer"]["iam"]["userArn"].as_str().ok_or_else(|| {
            ApiError::new(
                401,
                "Unauthenticated",
                "the request carries no IAM principal: the function URL must use AWS_IAM auth, and requests must be SigV4-signed",
            )
        })?;
        let raw_path = event["rawPath"].as_str().or(http["path"].as_str()).unwrap_or("/");
        let path = raw_path.split('/').filter(|p| !p.is_empty()).map(str::to_string).collect();
        let query = match event["queryStringParameters"].as_object() {
            Some(q) => q.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect(),
            None => Vec::new(),
        };
        let text = match event["body"].as_str() {
            None | Some("") => String::new(),
            Some(b) if event["isBase64Encoded"].as_bool() == Some(true) => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| ApiError::bad_request(format!("the body is not valid base64: {e}")))?;
                String::from_utf8(bytes).map_err(|_| ApiError::bad_request("the body is not UTF-8 JSON"))?
            }
            Some(b) => b.to_string(),
        };
        let body = if text.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&text).map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?
        };
        Ok(Request { method: method.to_ascii_uppercase(), path, query, body, who: who.to_string() })
    }
}

/// The body of a change: the optimistic lock, plus what the route needs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    revision: Option<u64>,
    definition: Option<String>,
    add_table: Option<String>,
    remove_table: Option<String>,
    source: Option<String>,
    destination: Option<String>,
    name: Option<String>,
    schedule: Option<String>,
}

const ROUTES: &str = "GET /exports, GET /exports/{name}[?version=N], GET /exports/{name}/audit, POST /exports, \
    POST /exports/{name}/edit|activate|discard|pause|resume, DELETE /exports/{name}[?force=true], GET /orchestrations, \
    POST /exports/{name}/orchestrations, POST /exports/{name}/orchestrations/{o}/pause|resume, \
    DELETE /exports/{name}/orchestrations/{o}";

/// The action a request names, its body checked.
pub fn route(req: &Request) -> Result<Action, ApiError> {
    let body: Body = serde_json::from_value(req.body.clone()).map_err(|e| {
        ApiError::bad_request(format!("the body is not what {} {} takes: {e}", req.method, req.path.join("/")))
    })?;
    let query = |k: &str| req.query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let number = |k: &str| -> Result<Option<u64>, ApiError> {
        query(k).map(|v| v.parse().map_err(|_| ApiError::bad_request(format!("{k}={v} is not a number")))).transpose()
    };
    let need =
        |v: Option<String>, what: &str| v.ok_or_else(|| ApiError::bad_request(format!("the body needs {what:?}")));
    let p: Vec<&str> = req.path.iter().map(String::as_str).collect();
    let export = |i: usize| p[i].to_string();
    let revision = body.revision;
    if revision.is_some() && p.get(2) == Some(&"orchestrations") {
        // Orchestration changes always apply to the export's latest revision.
        return Err(ApiError::bad_request("orchestration changes take no revision: leave it out"));
    }
    Ok(match (req.method.as_str(), p.as_slice()) {
        ("GET", ["exports"]) => Action::Status,
        ("GET", ["exports", _]) => Action::Show { export: export(1), version: number("version")? },
        ("GET", ["exports", _, "audit"]) => {
            Action::Audit { export: export(1), limit: number("limit")?.unwrap_or(20).min(1000) as usize }
        }
        ("GET", ["orchestrations"]) => Action::Orchestrations,
        ("POST", ["exports"]) => Action::Create { definition: need(body.definition, "definition")? },
        ("POST", ["exports", _, "edit"]) => {
            let edits: Vec<Edit> = [
                body.add_table.map(Edit::AddTable),
                body.remove_table.map(Edit::RemoveTable),
                body.source.map(Edit::SetSource),
                body.destination.map(Edit::SetDestination),
                body.definition.map(Edit::Replace),
            ]
            .into_iter()
            .flatten()
            .collect();
            let [edit] = <[Edit; 1]>::try_from(edits).map_err(|_| {
                ApiError::bad_request(
                    "give exactly one of add_table, remove_table, source, destination, definition (with revision)",
                )
            })?;
            Action::Edit { export: export(1), edit, revision }
        }
        ("POST", ["exports", _, "activate"]) => Action::Activate { export: export(1), revision },
        ("POST", ["exports", _, "discard"]) => Action::Discard { export: export(1), revision },
        ("POST", ["exports", _, "pause"]) => Action::Pause { export: export(1), paused: true, revision },
        ("POST", ["exports", _, "resume"]) => Action::Pause { export: export(1), paused: false, revision },
        ("DELETE", ["exports", _]) => Action::Delete {
            export: export(1),
            force: matches!(query("force"), Some("true" | "1")),
            revision: number("revision")?.or(revision),
        },
        ("POST", ["exports", _, "orchestrations"]) => Action::Orchestrate {
            export: export(1),
            name: need(body.name, "name")?,
            schedule: need(body.schedule, "schedule")?,
            destination: body.destination,
        },
        ("POST", ["exports", _, "orchestrations", o, verb @ ("pause" | "resume")]) => {
            Action::PauseOrchestration { export: export(1), name: o.to_string(), paused: *verb == "pause" }
        }
        ("DELETE", ["exports", _, "orchestrations", o]) => {
            Action::DeleteOrchestration { export: export(1), name: o.to_string() }
        }
        (m, _) => {
            return Err(ApiError::new(
                404,
                "NoSuchRoute",
                format!("no route {m} /{}; the API has {ROUTES}", p.join("/")),
            ))
        }
    })
}

/// Everything built once per cold start.
pub struct App {
    pub settings: Settings,
    pub config: Config,
    s3: aws_sdk_s3::Client,
    history: DynamoHistory,
    scheduler: EventBridgeScheduler,
    secrets: SecretsManager,
}

impl App {
    pub async fn init(settings: Settings) -> Result<App, StartError> {
        let sdk = sluice_aws::client_config().await;
        let s3 = sluice_aws::s3_client(&sdk);
        let config = sluice_aws::load_config(&s3, &settings.base.config, sluice_connect::KINDS).await?;
        let history = DynamoHistory::new(aws_sdk_dynamodb::Client::new(&sdk), &settings.base.history_table);
        let scheduler = EventBridgeScheduler::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            &settings.rule_prefix,
            &settings.export_function,
        );
        let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk));
        Ok(App { settings, config, s3, history, scheduler, secrets })
    }

    /// Answers one function URL event: always an HTTP response, never a function error (a
    /// caller's mistake is a 4xx with what to do, a failing store a 503).
    pub async fn handle(&self, event: &Value) -> Value {
        let started = Instant::now();
        let (status, body, action, who) = match Request::from_event(event) {
            Err(e) => (e.status, error_body(&e), "-", String::new()),
            Ok(req) => {
                let result = match route(&req) {
                    Ok(action) => self.serve(&action, &req.who).await.map(|b| (action.name(), b)),
                    Err(e) => Err(e),
                };
                match result {
                    Ok((name, body)) => (200, body, name, req.who),
                    Err(e) => (e.status, error_body(&e), "-", req.who),
                }
            }
        };
        // One line per request: who did what, with what result (no bodies: they may be long).
        tracing::info!(status, action, who = %who, ms = started.elapsed().as_millis() as u64, "control request");
        json!({
            "statusCode": status,
            "headers": {"content-type": "application/json"},
            "body": body.to_string(),
        })
    }

    /// Serves an action this function's grant allows.
    pub async fn serve(&self, action: &Action, who: &str) -> Result<Value, ApiError> {
        if let Some(needed) = action.needs().filter(|g| *g != self.settings.grant) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{:?} needs the {} permission, and this is the {} endpoint: send it to the {} function's URL, \
                     which callers with the stack's {} may invoke",
                    action.name(),
                    needed.as_str(),
                    self.settings.grant.as_str(),
                    needed.as_str(),
                    needed.policy()
                ),
            ));
        }
        let ops = Exports { catalog: &self.history, config: &self.config, who: who.to_string() };
        let entry = match action {
            Action::Status => {
                let (config, _, invalid) = ops.with_runnable().await?;
                // The control roles do not read the destination: undelivered manifests are counted by
                // `sluice status` and the integration function, not here.
                let stores =
                    Stores { history: &self.history, ledger: &self.history, catalog: &self.history, destination: None };
                let all = status_of_all(&stores, &config, chrono::Utc::now()).await.map_err(CatalogError::Store)?;
                // One broken definition must not hide every export's status: listed apart.
                let problems: Vec<String> = invalid.iter().map(ToString::to_string).collect();
                return Ok(json!({ "exports": all, "problems": problems }));
            }
            Action::Show { export, version } => {
                let e = ops.get(export).await?;
                let definition = match version {
                    Some(v) => self
                        .history
                        .definition(export, *v)
                        .await
                        .map_err(CatalogError::Store)?
                        .map(|d| d.body)
                        .ok_or_else(|| {
                            ApiError::new(404, "NotFound", format!("export {export:?} has no version {v}"))
                        })?,
                    None => ops.working_body(&e).await?,
                };
                return Ok(json!({"entry": e, "definition": definition}));
            }
            Action::Audit { export, limit } => {
                ops.get(export).await?;
                let records = self.history.audit(export, *limit).await.map_err(CatalogError::Store)?;
                return Ok(json!({ "audit": records }));
            }
            Action::Orchestrations => {
                let now = chrono::Utc::now();
                let all: Vec<_> =
                    ops.orchestrations().await?.iter().map(|(e, o)| OrchestrationStatus::of(e, o, now)).collect();
                return Ok(json!({ "orchestrations": all }));
            }
            Action::Create { definition } => ops.create(definition).await?,
            Action::Edit { export, edit, revision } => ops.edit(export, edit, *revision).await?,
            Action::Activate { export, revision } => {
                let store = |spec: &ExportSpec| self.store(spec);
                let checks =
                    sluice_connect::ActivationChecks { config: &self.config, secrets: &self.secrets, store: &store };
                ops.activate(export, *revision, &checks).await?
            }
            Action::Discard { export, revision } => ops.discard(export, *revision).await?,
            Action::Delete { export, force, revision } => {
                ops.delete(export, *force, *revision, &self.scheduler).await?
            }
            Action::Pause { export, paused, revision } => {
                ops.set_paused(export, *paused, *revision, &self.scheduler).await?
            }
            Action::Orchestrate { export, name, schedule, destination } => {
                ops.orchestrate(export, name, schedule, destination.as_deref(), &self.scheduler).await?
            }
            Action::PauseOrchestration { export, name, paused } => {
                ops.set_orchestration_paused(export, name, *paused, &self.scheduler).await?
            }
            Action::DeleteOrchestration { export, name } => ops.unorchestrate(export, name, &self.scheduler).await?,
            // Not routed here: the operate policy invokes the functions that do them.
            Action::RunNow { .. } | Action::Replay { .. } => {
                return Err(ApiError::new(
                    404,
                    "NoSuchRoute",
                    format!(
                        "{:?} is not part of this API: invoke the export or integration function (docs/aws.md)",
                        action.name()
                    ),
                ))
            }
        };
        Ok(json!({ "entry": entry }))
    }

    /// An export's S3 destination, as the export function writes it.
    fn store(&self, spec: &ExportSpec) -> Result<Box<dyn ObjectStore>, String> {
        match spec.destination.settings_as::<sluice_connect::S3Location>() {
            Some(s3) => Ok(Box::new(S3Store::new(
                self.s3.clone(),
                &s3.bucket,
                &s3.prefix,
                self.settings.base.encryption.clone(),
            ))),
            None => Err(format!(
                "export {:?} writes to {}; in AWS exports write to S3: set destination = \"s3://bucket/prefix\"",
                spec.name, spec.destination
            )),
        }
    }
}

fn error_body(e: &ApiError) -> Value {
    json!({"error": e.code, "message": e.message})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(method: &str, path: &str, body: Value) -> Value {
        let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
        json!({
            "version": "2.0",
            "rawPath": path,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abcdefghij",
                "domainName": format!("abcdefghij.lambda-url.{region}.on.aws"),
                "requestId": "req-1",
                "timeEpoch": chrono::Utc::now().timestamp_millis(),
                "http": {"method": method, "path": path},
                "authorizer": {"iam": {"userArn": "arn:aws:iam::123456789012:user/alice"}}
            },
            "body": body.to_string(),
            "isBase64Encoded": false
        })
    }

    fn action(method: &str, path: &str, body: Value) -> Result<Action, ApiError> {
        route(&Request::from_event(&event(method, path, body)).unwrap())
    }

    #[test]
    fn routes_map_to_actions_and_each_change_to_one_permission() {
        let a = action("POST", "/exports/crm/edit", json!({"add_table": "name = \"t\"", "revision": 3})).unwrap();
        assert_eq!(
            a,
            Action::Edit { export: "crm".into(), edit: Edit::AddTable("name = \"t\"".into()), revision: Some(3) }
        );
        assert_eq!(a.needs(), Some(Grant::Configure));
        let a = action("POST", "/exports/crm/orchestrations/hourly/pause", json!({})).unwrap();
        assert_eq!(a.needs(), Some(Grant::Operate));
        assert_eq!(action("POST", "/exports/crm/pause", json!({})).unwrap().needs(), Some(Grant::Operate));
        assert_eq!(action("GET", "/exports", json!({})).unwrap().needs(), None);
        let mut e = event("DELETE", "/exports/crm", json!({}));
        e["queryStringParameters"] = json!({"force": "true"});
        let a = route(&Request::from_event(&e).unwrap()).unwrap();
        assert_eq!(a, Action::Delete { export: "crm".into(), force: true, revision: None });
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let e = action("POST", "/exports/crm/edit", json!({"add_table": "x", "source": "y"})).unwrap_err();
        assert!(e.message.contains("exactly one"), "{}", e.message);
        let e = action("POST", "/exports", json!({"definiton": "x"})).unwrap_err();
        assert!(e.message.contains("definiton"), "{}", e.message);
        let e = action("PUT", "/exports", json!({})).unwrap_err();
        assert_eq!(e.status, 404);
        assert!(e.message.contains("GET /exports"), "{}", e.message);
        let mut no_iam = event("GET", "/exports", json!({}));
        no_iam["requestContext"]["authorizer"] = Value::Null;
        assert_eq!(Request::from_event(&no_iam).unwrap_err().status, 401);
        let mut text = event("POST", "/exports", json!({}));
        text["body"] = "not json".into();
        assert!(Request::from_event(&text).unwrap_err().message.contains("not JSON"));
    }

    #[test]
    fn only_events_shaped_as_the_function_url_sends_them_are_taken() {
        let now = chrono::Utc::now().timestamp_millis();
        let good = event("GET", "/exports", json!({}));
        let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
        assert_eq!(from_function_url(&good, Some(&region), now), Ok(()));
        // What `aws lambda invoke` with a hand-written event, or a test event, looks like.
        let mut bare = good.clone();
        bare["requestContext"] =
            json!({"http": {"method": "GET"}, "authorizer": {"iam": {"userArn": "arn:aws:iam::1:user/x"}}});
        assert!(from_function_url(&bare, Some(&region), now).unwrap_err().contains("apiId"));
        let mut elsewhere = good.clone();
        elsewhere["requestContext"]["domainName"] = "abcdefghij.lambda-url.eu-west-9.on.aws".into();
        assert!(from_function_url(&elsewhere, Some(&region), now).unwrap_err().contains("domainName"));
        let mut stale = good.clone();
        stale["requestContext"]["timeEpoch"] = (now - 3_600_000).into();
        assert!(from_function_url(&stale, Some(&region), now).unwrap_err().contains("five minutes"));
        let mut v1 = good;
        v1["version"] = "1.0".into();
        assert!(from_function_url(&v1, Some(&region), now).is_err());
    }

    #[test]
    fn a_base64_body_is_decoded() {
        use base64::Engine;
        let mut e = event("POST", "/exports", json!({}));
        e["body"] = base64::engine::general_purpose::STANDARD.encode(r#"{"definition": "name = 1"}"#).into();
        e["isBase64Encoded"] = true.into();
        assert_eq!(route(&Request::from_event(&e).unwrap()).unwrap(), Action::Create { definition: "name = 1".into() });
    }
}
