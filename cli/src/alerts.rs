//! Alerts on one machine, as the functions raise them in AWS: after each run and each delivery,
//! and freshness on its own schedule (`sluice alerts check`, or `sluice run --due` from cron).
//! `sluice alerts list` shows each export's open and last resolved alerts. An alert is an
//! `ExportAlert` event (events.jsonl beside the history, or `--event-bus`), a line on stderr,
//! and a post to the export's webhook when it names one.

use anyhow::Result;
use chrono::Utc;
use clap::{Args, Subcommand};

use sluice_core::alert::{AlertEvent, Notify, Watch, Webhook};
use sluice_core::ports::{AlertRecord, AlertState, DeliverySummary, ExportRunSummary};
use sluice_core::spec::ExportSpec;

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

/// What alerts are settled after.
enum After<'a> {
    Run(&'a ExportRunSummary),
    /// A run that could not start, and why.
    Failed(String),
    Delivery(&'a DeliverySummary),
    /// The freshness check, at this moment.
    Check(chrono::DateTime<Utc>),
}

/// Settles the export's alerts after `after`, over the app's stores, and says on stderr what
/// opened or resolved. The HTTP client and the secret store are built only for an export that
/// names a webhook. Alerting never changes a run's outcome: a failure to read or save alerts
/// is a warning.
async fn settle(app: &App, export: &ExportSpec, after: After<'_>) {
    // Locally a webhook needs only HTTPS (or loopback); the functions also hold it to the
    // stack's allowed hosts.
    let secrets = export.alerts.webhook.as_ref().map(|_| app.secrets());
    let webhook = match (&secrets, secrets.as_ref().and_then(|_| app.http().ok())) {
        (Some(secrets), Some(http)) => Some(Webhook { http, secrets: secrets.as_ref(), hosts: None }),
        _ => None,
    };
    let watch = Watch {
        history: app.history.as_ref(),
        alerts: app.alerts.as_ref(),
        events: app.events.as_ref(),
        notify: webhook.as_ref().map(|w| w as &dyn Notify),
    };
    let result = match sluice_core::alert::watched(app.catalog.as_ref(), export).await {
        Ok(target) => match after {
            After::Run(summary) => watch.after_run(&target, summary).await,
            After::Failed(why) => watch.after_run_error(&target, &why, Utc::now()).await,
            After::Delivery(summary) => watch.after_delivery(&target, summary).await,
            After::Check(now) => watch.check(&target, now).await,
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(announced) => say(&announced),
        Err(e) => {
            eprintln!("warning: export {}: alerts not checked: {}", export.name, sluice_core::error::error_chain(&e))
        }
    }
}

fn say(announced: &[AlertEvent]) {
    for a in announced {
        match a.status {
            AlertState::Resolved => eprintln!("alert resolved: {} ({})", a.what, a.key),
            _ => eprintln!("ALERT: {} ({}): {}", a.what, a.key, a.why),
        }
    }
}

/// After a run, or a run that could not start.
pub async fn after_run(app: &App, export: &ExportSpec, outcome: Result<&ExportRunSummary, &sluice_core::Error>) {
    let after = match outcome {
        Ok(summary) => After::Run(summary),
        // Busy, or a backfill refused for what it asked: not a failed run.
        Err(e) if e.is_lease_held() || matches!(e, sluice_core::Error::Backfill { .. }) => return,
        Err(e) => After::Failed(sluice_core::error::error_chain(e)),
    };
    settle(app, export, after).await;
}

/// A run that could not start because its source could not be opened.
pub async fn after_source_error(app: &App, export: &ExportSpec, error: &anyhow::Error) {
    settle(app, export, After::Failed(format!("{error:#}"))).await;
}

/// After a finished delivery: rows rejected beyond the export's share.
pub async fn after_delivery(app: &App, summary: &DeliverySummary) {
    if let Ok(export) = app.config.export(&summary.export) {
        settle(app, export, After::Delivery(summary)).await;
    }
}

/// Freshness of the given exports (all when none is named).
pub async fn check_freshness(app: &App, names: &[String]) -> Result<()> {
    let now = Utc::now();
    for export in exports(app, names)? {
        settle(app, export, After::Check(now)).await;
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
