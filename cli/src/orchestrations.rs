//! `sluice orchestrations …`: an activated managed export bound to a schedule. With a DynamoDB
//! history each one is an EventBridge rule that invokes the export function; with a history
//! file it is a record (`status` shows its next run; cron runs `sluice run --due`).
//! The operations are `sluice_core::orchestrate`; this module parses and prints.

use anyhow::Result;
use chrono::Utc;
use sluice_core::catalog::Exports;
use sluice_core::status::OrchestrationStatus;

use crate::app::App;
use crate::exit;
use crate::exports::{local_user, refused};

#[derive(clap::Subcommand, Debug)]
pub enum OrchestrationsCommand {
    /// List every orchestration: export, schedule, state, next run, destination, rule.
    List,
    /// Bind an activated export to a schedule (an EventBridge rate() or cron() expression, UTC).
    Create {
        export: String,
        /// A name for it, unique within the export (a-z, 0-9, _).
        name: String,
        /// When it runs, e.g. 'rate(15 minutes)' or 'cron(0 6 * * ? *)'.
        #[arg(long)]
        schedule: String,
        /// The destination the runs land in; must be the export's (checked, for scripts that
        /// want to be sure). Default: the export's.
        #[arg(long)]
        destination: Option<String>,
    },
    /// Stop one orchestration's runs (its rule is disabled).
    Pause { export: String, name: String },
    /// Let a paused orchestration run again.
    Resume { export: String, name: String },
    /// Remove an orchestration and its rule (the export and what it exported stay).
    Delete { export: String, name: String },
}

pub fn render<'a>(all: impl IntoIterator<Item = &'a OrchestrationStatus>) -> String {
    let rows: Vec<Vec<String>> = all
        .into_iter()
        .map(|o| {
            vec![
                o.export.clone(),
                o.orchestration.clone(),
                o.schedule.clone(),
                o.state.clone(),
                o.next_run.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "-".into()),
                o.destination.clone(),
            ]
        })
        .collect();
    crate::output::table(&["EXPORT", "ORCHESTRATION", "SCHEDULE", "STATE", "NEXT RUN", "DESTINATION"], &rows)
}

/// Every orchestration of the catalog, as shown.
pub async fn all(app: &App) -> Result<Vec<OrchestrationStatus>> {
    let ops = Exports { catalog: app.catalog.as_ref(), config: &app.file_config, who: String::new() };
    let now = Utc::now();
    Ok(ops.orchestrations().await.map_err(refused)?.iter().map(|(e, o)| OrchestrationStatus::of(e, o, now)).collect())
}

pub async fn orchestrations(app: App, cmd: &OrchestrationsCommand, json: bool) -> Result<u8> {
    let config = app.file_config.clone();
    let ops = Exports { catalog: app.catalog.as_ref(), config: &config, who: local_user(&app.host) };
    let scheduler = app.scheduler()?;
    let (name, entry) = match cmd {
        OrchestrationsCommand::List => {
            let all = all(&app).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no orchestrations (bind an activated export to a schedule with `sluice orchestrations create EXPORT NAME --schedule …`)");
            } else {
                print!("{}", render(&all));
            }
            return Ok(exit::OK);
        }
        OrchestrationsCommand::Create { export, name, schedule, destination } => {
            let e = ops.orchestrate(export, name, schedule, destination.as_deref(), scheduler.as_ref()).await;
            (name, e)
        }
        OrchestrationsCommand::Pause { export, name } => {
            (name, ops.set_orchestration_paused(export, name, true, scheduler.as_ref()).await)
        }
        OrchestrationsCommand::Resume { export, name } => {
            (name, ops.set_orchestration_paused(export, name, false, scheduler.as_ref()).await)
        }
        OrchestrationsCommand::Delete { export, name } => {
            let e = ops.unorchestrate(export, name, scheduler.as_ref()).await.map_err(refused)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"export": export, "orchestration": name, "deleted": true, "revision": e.revision})
                );
            } else {
                println!("orchestration {name} of export {export} deleted (revision {})", e.revision);
            }
            return Ok(exit::OK);
        }
    };
    let entry = entry.map_err(refused)?;
    let o = entry.orchestrations.iter().find(|o| &o.name == name).expect("the operation keeps the orchestration");
    let status = OrchestrationStatus::of(&entry, o, Utc::now());
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&[status]));
    }
    Ok(exit::OK)
}
