//! Alerts on one machine, as the functions raise them in AWS: after each run and each delivery,
//! and freshness on its own schedule (`sluice alerts check`, or `sluice run --due` from cron).
//! `sluice alerts list` shows each export's open and last resolved alerts. An alert is an
//! `ExportAlert` event (events.jsonl beside the history, or `--event-bus`), a line on stderr,
//! and a post to the export's webhook when it names one.

use anyhow::Result;
use chrono::Utc;
use clap::{Args, Subcommand};

use sluice_core::alert::{AlertEvent, Notify, Watch, Watched, Webhook};
use sluice_core::ports::{AlertRecord, AlertState, DeliverySummary, ExportRunSummary, Secrets};
use sluice_core::spec::ExportSpec;
use sluice_core::HistoryError;

use crate::app::App;
use crate::commands::print_json;
use crate::exit;
use crate::output;

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Check every active export's freshness now (no successful run within its `freshness`),
    /// announce what opened or resolved, and list the open alerts. Exits 1 while any is open,
    /// so a cron job can mail it. `sluice run --due` checks freshness too.
    Check(AlertsArgs),
    /// Each export's alerts: open ones, and the last resolved incident of each kind.
    List(AlertsArgs),
}

#[derive(Args, Debug)]
pub struct AlertsArgs {
    /// Only this export (repeatable). Default: every export.
    #[arg(long = "export", short = 'e', value_name = "NAME")]
    pub exports: Vec<String>,
}

/// The alert watch of this process: the app's stores, and its webhook poster.
struct Alerting<'a> {
    app: &'a App,
    secrets: Box<dyn Secrets>,
}

impl<'a> Alerting<'a> {
    fn new(app: &'a App) -> Self {
        Alerting { app, secrets: app.secrets() }
    }

    fn watch<'w>(&'w self, webhook: &'w Option<Webhook<'w>>) -> Watch<'w> {
        Watch {
            history: self.app.history.as_ref(),
            alerts: self.app.alerts.as_ref(),
            events: self.app.events.as_ref(),
            notify: webhook.as_ref().map(|w| w as &dyn Notify),
        }
    }

    fn webhook(&self) -> Option<Webhook<'_>> {
        // Locally a webhook needs only HTTPS (or loopback); the functions also hold it to the
        // stack's allowed hosts.
        self.app.http().ok().map(|http| Webhook { http, secrets: self.secrets.as_ref(), hosts: None })
    }
}

/// The export as the alerts see it: a managed export's schedules are its running
/// orchestrations'; a file's, its `schedule`.
async fn target(app: &App, export: &ExportSpec) -> Result<Watched, HistoryError> {
    Ok(match app.catalog.entry(&export.name).await?.filter(|e| e.state != sluice_core::catalog::Lifecycle::Deleted) {
        Some(entry) => Watched::managed(export, &entry),
        None => Watched::of(export),
    })
}

fn say(announced: &[AlertEvent]) {
    for a in announced {
        match a.status {
            AlertState::Resolved => eprintln!("alert resolved: {} ({})", a.what, a.key),
            _ => eprintln!("ALERT: {} ({}): {}", a.what, a.key, a.why),
        }
    }
}

/// Alerting never changes a run's outcome: a failure to read or save alerts is a warning.
fn settle(export: &str, result: Result<Vec<AlertEvent>, HistoryError>) {
    match result {
        Ok(announced) => say(&announced),
        Err(e) => eprintln!("warning: export {export}: alerts not checked: {}", sluice_core::error::error_chain(&e)),
    }
}

/// After a run, or a run that could not start.
pub async fn after_run(app: &App, export: &ExportSpec, outcome: Result<&ExportRunSummary, &sluice_core::Error>) {
    let alerting = Alerting::new(app);
    let webhook = alerting.webhook();
    let watch = alerting.watch(&webhook);
    let result = match target(app, export).await {
        Ok(target) => match outcome {
            Ok(summary) => watch.after_run(&target, summary).await,
            // Busy, or a backfill refused for what it asked: not a failed run.
            Err(e) if e.is_lease_held() || matches!(e, sluice_core::Error::Backfill { .. }) => Ok(vec![]),
            Err(e) => watch.after_run_error(&target, &sluice_core::error::error_chain(e), Utc::now()).await,
        },
        Err(e) => Err(e),
    };
    settle(&export.name, result);
}

/// A run that could not start because its source could not be opened.
pub async fn after_source_error(app: &App, export: &ExportSpec, error: &anyhow::Error) {
    let alerting = Alerting::new(app);
    let webhook = alerting.webhook();
    let watch = alerting.watch(&webhook);
    let result = match target(app, export).await {
        Ok(target) => watch.after_run_error(&target, &format!("{error:#}"), Utc::now()).await,
        Err(e) => Err(e),
    };
    settle(&export.name, result);
}

/// After a finished delivery: rows rejected beyond the export's share.
pub async fn after_delivery(app: &App, summary: &DeliverySummary) {
    let Ok(export) = app.config.export(&summary.export) else { return };
    let alerting = Alerting::new(app);
    let webhook = alerting.webhook();
    let watch = alerting.watch(&webhook);
    let result = match target(app, export).await {
        Ok(target) => watch.after_delivery(&target, summary).await,
        Err(e) => Err(e),
    };
    settle(&export.name, result);
}

/// Freshness of the given exports (all when none is named).
pub async fn check_freshness(app: &App, names: &[String]) -> Result<()> {
    let alerting = Alerting::new(app);
    let webhook = alerting.webhook();
    let watch = alerting.watch(&webhook);
    let now = Utc::now();
    for export in exports(app, names)? {
        let result = match target(app, export).await {
            Ok(target) => watch.check(&target, now).await,
            Err(e) => Err(e),
        };
        settle(&export.name, result);
    }
    Ok(())
}

fn exports<'a>(app: &'a App, names: &[String]) -> Result<Vec<&'a ExportSpec>> {
    if names.is_empty() {
        return Ok(app.config.exports.iter().collect());
    }
    names.iter().map(|n| app.config.export(n).map_err(anyhow::Error::from)).collect()
}

pub async fn alerts(app: App, cmd: &AlertsCommand, json: bool) -> Result<u8> {
    let args = match cmd {
        AlertsCommand::Check(args) => {
            check_freshness(&app, &args.exports).await?;
            args
        }
        AlertsCommand::List(args) => args,
    };
    let mut all = Vec::new();
    for export in exports(&app, &args.exports)? {
        let mut records = app.alerts.alerts(&export.name).await?;
        records.retain(|r| r.state != AlertState::Watching);
        all.extend(records);
    }
    let open = all.iter().filter(|r| r.state == AlertState::Firing).count();
    if json {
        print_json(&all)?;
    } else if all.is_empty() {
        println!("no alerts");
    } else {
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|r: &AlertRecord| {
                vec![
                    r.export.clone(),
                    r.key.clone(),
                    r.state.as_str().to_uppercase(),
                    output::when(r.since),
                    r.resolved_at.map(output::when).unwrap_or_default(),
                    r.what.clone(),
                ]
            })
            .collect();
        print!("{}", output::table(&["EXPORT", "ALERT", "STATE", "SINCE", "RESOLVED", "WHAT"], &rows));
        println!("{}", output::counted(open as u64, "alert open", "alerts open"));
    }
    Ok(match cmd {
        AlertsCommand::Check(_) if open > 0 => exit::FAILED,
        _ => exit::OK,
    })
}
