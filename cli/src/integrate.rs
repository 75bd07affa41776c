//! `sluice integrate`: the integration engine on one machine, against a manifest in a local
//! destination (or S3 with the `aws` feature), with the delivery ledger in the history. `sluice
//! run` calls `after_run` for the local fan-out: each committed table's manifest goes to the
//! export's integrations, as S3 events would send it in AWS.

use anyhow::{anyhow, Result};
use clap::Args;
use std::path::Path;

use sluice_core::integrate::backlog::{self, Undelivered};
use sluice_core::integrate::event::{key_under, ObjectRef};
use sluice_core::integrate::spec::IntegrationSpec;
use sluice_core::integrate::{
    resolve_token, DeliverError, Deliverer, DeliveryOptions, DeliveryOutcome, DeliveryPorts, DeliverySummary,
};
use sluice_core::ports::{ObjectStore, RunState};
use sluice_core::run::{error_chain, ExportRunSummary};
use sluice_core::spec::ExportSpec;

use crate::app::App;
use crate::{exit, output};

#[derive(Args, Debug, Clone)]
pub struct IntegrateArgs {
    /// The integration, as named under [integrations.<name>].
    #[arg(long, short = 'i', value_name = "NAME")]
    pub integration: String,
    /// A manifest to deliver (repeatable): a path inside the export's destination folder, a key
    /// relative to the destination, or s3://bucket/key.
    #[arg(
        long = "manifest",
        short = 'm',
        value_name = "MANIFEST",
        required_unless_present_any = ["retry_failures", "pending", "skip"]
    )]
    pub manifests: Vec<String>,
    /// Deliver every committed manifest the integration has not finished (a stopped delivery
    /// and the runs behind it), table by table in run order; what `sluice run` does first.
    #[arg(long, conflicts_with_all = ["manifests", "retry_failures"])]
    pub pending: bool,
    /// Send again the records of a failures file (<run folder>/failures/<integration>.jsonl).
    #[arg(long, value_name = "FILE", conflicts_with = "manifests")]
    pub retry_failures: Option<String>,
    /// Mark a manifest's delivery done without sending what is left of it (a run whose rows
    /// must not go), so the later runs of its table waiting behind it are delivered. Needs
    /// --reason; recorded in the ledger with who and when.
    #[arg(long, value_name = "MANIFEST", conflicts_with_all = ["manifests", "retry_failures", "pending"], requires = "reason")]
    pub skip: Option<String>,
    /// Why the manifest is skipped (with --skip).
    #[arg(long, value_name = "TEXT", requires = "skip")]
    pub reason: Option<String>,
}

/// A manifest or failures file as a key relative to the export's destination.
fn relative_key(export: &ExportSpec, given: &str) -> Result<String> {
    if let Some(s3) = export.destination.settings_as::<sluice_connect::S3Location>() {
        let Some(rest) = given.strip_prefix("s3://") else { return Ok(given.trim_start_matches('/').to_string()) };
        let (b, key) = rest.split_once('/').unwrap_or((rest, ""));
        let object = ObjectRef { bucket: b.to_string(), key: key.to_string() };
        return key_under(&object, &s3.bucket, &s3.prefix).ok_or_else(|| {
            anyhow!("{given} is not under export {:?}'s destination {}", export.name, export.destination)
        });
    }
    let Some(folder) = export.destination.settings_as::<sluice_local::Folder>() else {
        return Ok(given.trim_start_matches('/').to_string());
    };
    let dir = &folder.path;
    let path = Path::new(given);
    if !path.exists() {
        // Not a path from here: a key relative to the destination.
        return Ok(given.trim_start_matches("./").to_string());
    }
    let full = path.canonicalize()?;
    let root =
        dir.canonicalize().map_err(|e| anyhow!("export {:?}'s destination {}: {e}", export.name, dir.display()))?;
    let rel = full
        .strip_prefix(&root)
        .map_err(|_| anyhow!("{given} is not inside export {:?}'s destination {}", export.name, dir.display()))?;
    Ok(rel.to_string_lossy().replace('\\', "/"))
}

fn owner(app: &App) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{}:{}:{}", app.host, std::process::id(), &id[..8])
}

/// One integration wired to its export's store, with its token read.
struct Wired<'a> {
    spec: &'a IntegrationSpec,
    store: Box<dyn ObjectStore>,
    token: Option<String>,
    /// Where the token is read again if the API refuses it (rotated since).
    secrets: Box<dyn sluice_core::ports::Secrets>,
}

async fn wire<'a>(app: &'a App, spec: &'a IntegrationSpec) -> Result<Wired<'a>> {
    let export = app.config.export(&spec.export)?;
    let store = app.store(export)?;
    let secrets = app.secrets();
    let token = resolve_token(spec, secrets.as_ref()).await.map_err(|e| anyhow!("integration {:?}: {e}", spec.name))?;
    Ok(Wired { spec, store, token, secrets })
}

impl Wired<'_> {
    fn deliverer<'b>(&'b self, app: &'b App) -> Result<Deliverer<'b>> {
        let ports = DeliveryPorts {
            store: self.store.as_ref(),
            ledger: app.ledger.as_ref(),
            http: app.http()?,
            events: app.events.as_ref(),
            secrets: Some(self.secrets.as_ref()),
        };
        let mut opts = DeliveryOptions::new(owner(app));
        opts.token = self.token.clone();
        Ok(Deliverer::new(ports, self.spec, opts))
    }
}

fn report(outcome: &Result<DeliveryOutcome, DeliverError>, what: &str, json: bool) -> (u8, serde_json::Value) {
    match outcome {
        Ok(DeliveryOutcome::Done(s)) => {
            if !json {
                print!("{}", render(s));
            }
            (if s.failed > 0 { exit::FAILED } else { exit::OK }, serde_json::to_value(&**s).unwrap_or_default())
        }
        Ok(DeliveryOutcome::Duplicate(r)) => {
            // Done before, but maybe not cleanly: rows that failed are in a failures file (a
            // replay's in a retry file beside the one replayed), and that file is what to send.
            let (delivered, failed) = r.progress.totals();
            let replay = sluice_core::layout::RunFolder::of_failures(what).is_some();
            let (done, failing) =
                if replay { ("already sent again", "failed again") } else { ("already delivered", "failed") };
            if !json {
                match (&r.failures_key, failed) {
                    (Some(key), 1..) => println!(
                        "{what}: {done} ({delivered} delivered, {failed} {failing}, finished {}); nothing sent. \
                         The rows still failing are in {key}: send them with `sluice integrate -i {} --retry-failures {key}`",
                        r.updated_at.to_rfc3339(),
                        r.id.integration
                    ),
                    _ => println!("{what}: {done} ({} rows, finished {}); nothing sent", r.rows, r.updated_at.to_rfc3339()),
                }
            }
            let value = serde_json::json!({
                "duplicate": what, "delivered": delivered, "failed": failed, "failures_key": r.failures_key,
            });
            (if failed > 0 { exit::FAILED } else { exit::OK }, value)
        }
        Ok(DeliveryOutcome::Skipped(r)) => {
            if !json {
                println!(
                    "{what}: {}; later runs of its table are delivered next",
                    r.skipped.as_deref().unwrap_or("skipped")
                );
            }
            (exit::OK, serde_json::json!({ "skipped": what, "record": &**r }))
        }
        Ok(DeliveryOutcome::Ignored { reason }) => {
            eprintln!("warning: {reason}");
            (exit::OK, serde_json::json!({ "ignored": what, "reason": reason }))
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(e));
            let code = if matches!(e, DeliverError::Busy { .. }) { exit::BUSY } else { exit::FAILED };
            let summary = match e {
                DeliverError::Stopped { summary, .. } => serde_json::to_value(&**summary).unwrap_or_default(),
                other => serde_json::json!({ "manifest_key": what, "error": error_chain(other) }),
            };
            (code, summary)
        }
    }
}

pub fn render(s: &DeliverySummary) -> String {
    let rows = vec![vec![
        s.table.clone(),
        output::count(s.rows),
        output::count(s.delivered),
        output::count(s.failed),
        output::count(s.requests),
        output::count(s.retries),
        s.failures_key.clone().unwrap_or_else(|| "-".into()),
    ]];
    let mut out = format!(
        "integration {} ({}) run {}: {} in {}\n",
        s.integration,
        s.kind,
        s.run_id,
        if s.failed == 0 { "delivered" } else { "delivered with failures" },
        output::duration_ms(s.duration_ms)
    );
    for line in
        output::table(&["TABLE", "ROWS", "DELIVERED", "FAILED", "REQUESTS", "RETRIES", "FAILURES FILE"], &rows).lines()
    {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

/// A finished delivery's rows rejected beyond the export's share raise (or resolve) its alert.
async fn alert(app: &App, outcome: &Result<DeliveryOutcome, DeliverError>) {
    if let Ok(DeliveryOutcome::Done(summary)) = outcome {
        crate::alerts::after_delivery(app, summary).await;
    }
}

/// Sends a failures file again (the console's replay): what became of it, or why not.
pub async fn replay(app: &App, integration: &str, failures: &str) -> Result<String> {
    let spec = app.config.integration(integration)?;
    let wired = wire(app, spec).await?;
    let deliverer = wired.deliverer(app)?;
    let outcome = deliverer.retry_failures(failures).await;
    alert(app, &outcome).await;
    match outcome {
        Ok(DeliveryOutcome::Done(s)) if s.failed == 0 => {
            Ok(format!("{} delivered", output::counted(s.delivered, "record", "records")))
        }
        Ok(DeliveryOutcome::Done(s)) => Err(anyhow!(
            "{} records delivered, {} failed again; they are in {}",
            s.delivered,
            s.failed,
            s.failures_key.as_deref().unwrap_or("a retry file beside it")
        )),
        Ok(DeliveryOutcome::Duplicate(r)) => {
            let (delivered, failed) = r.progress.totals();
            match (&r.failures_key, failed) {
                (Some(key), 1..) => Err(anyhow!(
                    "already sent again: {delivered} delivered, {failed} failed again, in {key}: replay that file"
                )),
                _ => Ok(format!("already sent again: {delivered} delivered")),
            }
        }
        Ok(DeliveryOutcome::Skipped(_)) => Ok("skipped".into()),
        Ok(DeliveryOutcome::Ignored { reason }) => Err(anyhow!(reason)),
        Err(e) => Err(anyhow!(error_chain(&e))),
    }
}

/// The exit code for several outcomes: a failure outweighs "busy", which outweighs success.
pub fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    codes.into_iter().fold(exit::OK, |a, c| if a == exit::FAILED || c == exit::OK { a } else { c })
}

pub async fn integrate(app: App, args: &IntegrateArgs, json: bool) -> Result<u8> {
    let spec = app.config.integration(&args.integration)?;
    let export = app.config.export(&spec.export)?;
    let wired = wire(&app, spec).await?;
    let deliverer = wired.deliverer(&app)?;
    let mut codes = Vec::new();
    let mut results = Vec::new();
    if let Some(file) = &args.retry_failures {
        let key = relative_key(export, file)?;
        let outcome = deliverer.retry_failures(&key).await;
        alert(&app, &outcome).await;
        let (code, value) = report(&outcome, &key, json);
        codes.push(code);
        results.push(value);
    }
    if let Some(m) = &args.skip {
        let key = relative_key(export, m)?;
        let who = format!("{}@{}", std::env::var("USER").unwrap_or_else(|_| "someone".into()), app.host);
        let why = args.reason.as_deref().unwrap_or_default();
        let (code, value) = report(&deliverer.skip(&key, &who, why).await, &key, json);
        codes.push(code);
        results.push(value);
    }
    for m in &args.manifests {
        let key = relative_key(export, m)?;
        let outcome = deliverer.deliver(&key).await;
        alert(&app, &outcome).await;
        let (code, value) = report(&outcome, &key, json);
        codes.push(code);
        results.push(value);
    }
    if args.pending {
        let queue = backlog::undelivered(app.history.as_ref(), app.ledger.as_ref(), wired.store.as_ref(), spec, None)
            .await
            .map_err(|e| anyhow!("integration {:?}: {}", spec.name, error_chain(&e)))?;
        if queue.is_empty() && !json {
            println!("integration {}: nothing undelivered", spec.name);
        }
        deliver_in_order(&app, spec, &deliverer, queue, json, &mut codes, &mut results).await;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(worst(codes))
}

/// Delivers `queue` (oldest first) table by table: a table whose delivery does not finish keeps
/// the rest of its queue, since a later run's rows must not overtake an earlier run's, and the
/// message says how to resume.
async fn deliver_in_order(
    app: &App,
    spec: &IntegrationSpec,
    deliverer: &Deliverer<'_>,
    queue: Vec<Undelivered>,
    json: bool,
    codes: &mut Vec<u8>,
    results: &mut Vec<serde_json::Value>,
) {
    let mut stopped: Vec<String> = Vec::new();
    for (i, item) in queue.iter().enumerate() {
        if stopped.contains(&item.table) {
            continue;
        }
        let outcome = deliverer.deliver(&item.manifest_key).await;
        alert(app, &outcome).await;
        let (code, value) = report(&outcome, &item.manifest_key, json);
        codes.push(code);
        results.push(value);
        if outcome.is_err() {
            let waiting = queue[i..].iter().filter(|u| u.table == item.table).count();
            eprintln!(
                "  {waiting} manifest(s) of table {} wait for integration {}; resume with: sluice --config {} integrate --integration {} --pending (the next `sluice run` resumes them too)",
                item.table,
                spec.name,
                app.config.path.display(),
                spec.name
            );
            stopped.push(item.table.clone());
        }
    }
}

/// The local fan-out after a run, as S3 events and the integration function do it in AWS: each
/// integration of the export delivers, in run order, the committed manifests it has not
/// finished (an earlier run's stopped delivery first), then this run's. Returns the exit code
/// the deliveries call for.
pub async fn after_run(app: &App, summary: &ExportRunSummary, json: bool) -> Result<(u8, Vec<serde_json::Value>)> {
    let mut codes = Vec::new();
    let mut results = Vec::new();
    for spec in app.config.integrations_of(&summary.export) {
        // One integration that cannot start (its token, its ledger) fails its own deliveries,
        // not the other integrations' or the exports still to run.
        if let Err(e) = fan_out(app, spec, summary, json, &mut codes, &mut results).await {
            eprintln!("error: integration {:?}: {e:#}", spec.name);
            codes.push(exit::FAILED);
            results.push(serde_json::json!({ "integration": spec.name, "error": format!("{e:#}") }));
        }
    }
    Ok((worst(codes), results))
}

async fn fan_out(
    app: &App,
    spec: &IntegrationSpec,
    summary: &ExportRunSummary,
    json: bool,
    codes: &mut Vec<u8>,
    results: &mut Vec<serde_json::Value>,
) -> Result<()> {
    let fresh: Vec<Undelivered> = summary
        .tables
        .iter()
        .filter(|t| t.state == RunState::Succeeded && spec.wants(&summary.export, &t.table))
        .filter_map(|t| {
            Some(Undelivered {
                table: t.table.clone(),
                run_id: summary.run_id.clone(),
                manifest_key: t.manifest_key.clone()?,
                started_at: summary.started_at,
                committed_at: Some(summary.finished_at),
                attempted: false,
            })
        })
        .collect();
    let wired = wire(app, spec).await?;
    let mut queue = backlog::undelivered(app.history.as_ref(), app.ledger.as_ref(), wired.store.as_ref(), spec, None)
        .await
        .map_err(|e| anyhow!("{}", error_chain(&e)))?;
    for f in fresh {
        if !queue.iter().any(|q| q.manifest_key == f.manifest_key) {
            queue.push(f);
        }
    }
    if queue.is_empty() {
        return Ok(());
    }
    let deliverer = wired.deliverer(app)?;
    deliver_in_order(app, spec, &deliverer, queue, json, codes, results).await;
    Ok(())
}
