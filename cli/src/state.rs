//! `sluice state`: a table's cursor, shown and moved by hand (see `sluice_core::cursor`).

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};

use sluice_core::cursor::{move_cursor, show, MoveError, MoveRequest, Target};

use crate::app::App;
use crate::commands::{print_json, Usage};
use crate::{exit, output};

#[derive(Subcommand, Debug, Clone)]
pub enum StateCommand {
    /// Show each table's cursor: where its next run starts, and the run that left it.
    Show(ShowArgs),
    /// Move a timestamp table's cursor back to a run, so that run's rows and every later run's
    /// are exported again (refused while a run holds the lease; recorded in the history and,
    /// as a manifest, in the table's chain).
    Rewind(RewindArgs),
    /// Set a timestamp table's cursor to a value: back (as rewind), or forward with --skip
    /// (rows stamped in between are then never exported).
    Set(SetArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ShowArgs {
    pub export: String,
    #[arg(long, short = 't', value_name = "TABLE")]
    pub table: Option<String>,
}

#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_run", "to"])))]
pub struct RewindArgs {
    pub export: String,
    #[arg(long, short = 't', value_name = "TABLE")]
    pub table: String,
    /// Back to where this run (see `sluice history EXPORT`) started.
    #[arg(long, value_name = "RUN")]
    pub to_run: Option<String>,
    /// Back to this value of the table's stamp (`2026-01-31 00:00:00`, `1700000000`).
    #[arg(long, value_name = "VALUE")]
    pub to: Option<String>,
    /// Why, for the history and the manifest.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SetArgs {
    pub export: String,
    #[arg(long, short = 't', value_name = "TABLE")]
    pub table: String,
    /// The cursor's new value, of the stamp's type.
    #[arg(long, value_name = "VALUE")]
    pub to: String,
    /// Allow a move forward: rows stamped after the cursor and up to VALUE are skipped.
    #[arg(long)]
    pub skip: bool,
    /// Why, for the history and the manifest.
    #[arg(long)]
    pub reason: Option<String>,
}

/// Who asks (for a cursor move's or a backfill's manifest): the user and this machine.
fn operator() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "someone".into());
    format!("{user}@{}", crate::app::hostname())
}

pub async fn state(app: App, cmd: &StateCommand, json: bool) -> Result<u8> {
    let (export_name, table, to, forward, reason) = match cmd {
        StateCommand::Show(args) => {
            let export = app.export(&args.export).await?;
            let states = show(app.history.as_ref(), export, args.table.as_deref()).await.map_err(refused)?;
            if json {
                print_json(&states)?;
            } else {
                let rows: Vec<Vec<String>> = states
                    .iter()
                    .map(|s| {
                        vec![
                            s.table.clone(),
                            s.strategy.to_string(),
                            s.cursor
                                .as_ref()
                                .map_or("(none: the next run exports every row)".into(), |c| c.to_string()),
                            s.committed_by.clone().unwrap_or_default(),
                            s.committed_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!("{}", output::table(&["TABLE", "STRATEGY", "CURSOR", "COMMITTED BY", "AT"], &rows));
            }
            return Ok(exit::OK);
        }
        StateCommand::Rewind(a) => {
            let to = match (&a.to_run, &a.to) {
                (Some(run), _) => Target::Run(run.clone()),
                (None, Some(v)) => Target::Value(v.clone()),
                (None, None) => return Err(anyhow!(Usage("give --to-run RUN or --to VALUE".into()))),
            };
            (&a.export, &a.table, to, false, a.reason.clone())
        }
        StateCommand::Set(a) => (&a.export, &a.table, Target::Value(a.to.clone()), a.skip, a.reason.clone()),
    };
    let export = app.export(export_name).await?;
    let store = app.store(export)?;
    let req = MoveRequest { export, table, to, forward, by: operator(), reason, host: app.host.clone() };
    match move_cursor(app.history.as_ref(), store.as_ref(), &req).await {
        Ok(moved) => {
            if json {
                print_json(&moved)?;
            } else {
                println!(
                    "table {} of export {}: cursor moved from {} to {} (run {}, {})",
                    moved.table, export.name, moved.from, moved.to, moved.run_id, moved.manifest_key
                );
                println!("the next run exports rows stamped after {}", moved.to);
            }
            Ok(exit::OK)
        }
        Err(MoveError::Busy { export, holder }) => {
            eprintln!("error: {}", MoveError::Busy { export, holder });
            Ok(exit::BUSY)
        }
        Err(e) => Err(refused(e)),
    }
}

/// A refusal is the caller's to fix (exit 2); a failure is not.
fn refused(e: MoveError) -> anyhow::Error {
    match e {
        MoveError::Refused(why) => anyhow!(Usage(why)),
        other => anyhow!(other),
    }
}

#[derive(Args, Debug, Clone)]
pub struct BackfillArgs {
    pub export: String,
    #[arg(long, short = 't', value_name = "TABLE")]
    pub table: String,
    /// Rows stamped after this value (from the first row when left out)…
    #[arg(long, value_name = "VALUE")]
    pub from: Option<String>,
    /// …and up to this one (no later than the table's cursor: see `sluice state show`).
    #[arg(long, value_name = "VALUE")]
    pub to: String,
    /// Why, for the manifest.
    #[arg(long)]
    pub reason: Option<String>,
    /// Do not deliver the backfill's manifest to the export's integrations.
    #[arg(long)]
    pub no_integrate: bool,
}

/// The run a backfill is: the export, one table's window.
pub fn backfill_run(args: &BackfillArgs) -> crate::commands::RunArgs {
    crate::commands::RunArgs {
        exports: vec![args.export.clone()],
        no_integrate: args.no_integrate,
        backfill: Some(sluice_core::run::Backfill {
            table: args.table.clone(),
            from: args.from.clone(),
            to: args.to.clone(),
            by: operator(),
            reason: args.reason.clone(),
        }),
        ..Default::default()
    }
}
