//! `sluice verify` (prove the exported files a chain) and `sluice history rebuild` (the history
//! again from those files).

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use sluice_core::verify::rebuild::{rebuild as rebuild_history, RebuildError};
use sluice_core::verify::{Report, Scope, Severity, Verifier};

use crate::app::{open_location, App};
use crate::commands::{print_json, Usage};
use crate::{exit, output, Cli};

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The export to verify. Default: every export of the config (with --at, every export the
    /// location holds).
    pub export: Option<String>,
    /// Only this table of the export.
    #[arg(long, short = 't', value_name = "TABLE")]
    pub table: Option<String>,
    /// Only runs from this run id on (an earlier run's manifest is trusted, not checked).
    #[arg(long, value_name = "RUN")]
    pub since: Option<String>,
    /// Verify a copy of the files somewhere else (a folder, or s3://bucket/prefix), as a
    /// consumer who received them: no config and no history are read.
    #[arg(long, value_name = "LOCATION")]
    pub at: Option<String>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum HistoryCommand {
    /// Rebuild a lost history from the destination's committed manifests: verified first,
    /// then each run recorded and each watermark moved as the runs moved it.
    Rebuild(RebuildArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RebuildArgs {
    /// The export whose history to rebuild.
    pub export: String,
    /// Only this table.
    #[arg(long, short = 't', value_name = "TABLE")]
    pub table: Option<String>,
}

/// One place verified: a location and what it held.
#[derive(Serialize)]
struct Verified {
    location: String,
    #[serde(flatten)]
    report: Report,
}

pub async fn verify(cli: &Cli, args: &VerifyArgs, json: bool) -> Result<u8> {
    let mut places = Vec::new();
    if let Some(at) = &args.at {
        // A consumer's copy: the files alone.
        let store = open_location(at).await?;
        let scope = Scope { export: args.export.clone(), table: args.table.clone(), since: args.since.clone() };
        let report = Verifier { store: store.as_ref(), history: None }.verify(&scope).await.map_err(|e| anyhow!(e))?;
        places.push(Verified { location: store.location(), report });
    } else {
        let config = crate::commands::load(cli)?;
        let app = App::open(config, cli.history.clone(), cli.event_bus.clone()).await?;
        return verify_exports(app, args, json).await;
    }
    finish(&places, json)
}

/// Verifies the config's exports (or the one named), against the history too.
pub async fn verify_exports(app: App, args: &VerifyArgs, json: bool) -> Result<u8> {
    let mut places = Vec::new();
    {
        let exports = match &args.export {
            Some(name) => vec![app.export(name).await?],
            None => app.config.exports.iter().collect(),
        };
        if exports.is_empty() {
            return Err(anyhow!(Usage("no exports to verify: name one, or verify a copy with --at LOCATION".into())));
        }
        for export in exports {
            if let Some(t) = &args.table {
                if !export.tables.iter().any(|x| &x.name == t) {
                    let has: Vec<&str> = export.tables.iter().map(|t| t.name.as_str()).collect();
                    return Err(anyhow!(Usage(format!(
                        "export {:?} has no table {t:?}; it has: {}",
                        export.name,
                        has.join(", ")
                    ))));
                }
            }
            let store = app.store(export)?;
            let scope =
                Scope { export: Some(export.name.clone()), table: args.table.clone(), since: args.since.clone() };
            let verifier = Verifier { store: store.as_ref(), history: Some(app.history.as_ref()) };
            let report = verifier
                .verify(&scope)
                .await
                .map_err(|e| anyhow!(e).context(format!("listing {}", store.location())))?;
            places.push(Verified { location: store.location(), report });
        }
    }
    finish(&places, json)
}

fn finish(places: &[Verified], json: bool) -> Result<u8> {
    let violations: usize = places.iter().map(|p| p.report.violations()).sum();
    if json {
        print_json(&places)?;
    } else {
        print!("{}", render(places));
    }
    Ok(if violations > 0 { exit::FAILED } else { exit::OK })
}

fn render(places: &[Verified]) -> String {
    let mut out = String::new();
    for place in places {
        out.push_str(&format!("{}\n", place.location));
        if place.report.tables.is_empty() {
            out.push_str("  no runs found\n");
            continue;
        }
        let rows: Vec<Vec<String>> = place
            .report
            .tables
            .iter()
            .map(|t| {
                vec![
                    t.export.clone(),
                    t.table.clone(),
                    match t.backfills {
                        0 => output::count(t.runs),
                        n => format!("{} (+{} backfill)", output::count(t.runs), output::count(n)),
                    },
                    output::count(t.parts),
                    output::count(t.rows),
                    output::bytes(t.bytes),
                    t.last_run.clone().unwrap_or_default(),
                    t.cursor.as_ref().map(|c| c.to_string()).unwrap_or_default(),
                    if t.violations == 0 { "verified".into() } else { format!("{} violation(s)", t.violations) },
                ]
            })
            .collect();
        let header = ["EXPORT", "TABLE", "RUNS", "PARTS", "ROWS", "BYTES", "LAST RUN", "CURSOR", "RESULT"];
        out.push_str(&output::table(&header, &rows));
        for f in &place.report.findings {
            out.push_str(&format!("{f}\n"));
        }
    }
    let violations: usize = places.iter().map(|p| p.report.violations()).sum();
    let notices: usize =
        places.iter().flat_map(|p| &p.report.findings).filter(|f| f.severity == Severity::Notice).count();
    let runs: u64 = places.iter().flat_map(|p| &p.report.tables).map(|t| t.runs).sum();
    if violations == 0 {
        out.push_str(&format!("every chain verified: {} committed run(s), {notices} notice(s)\n", output::count(runs)));
    } else {
        out.push_str(&format!(
            "{violations} violation(s) and {notices} notice(s) in {} committed run(s)\n",
            output::count(runs)
        ));
    }
    out
}

pub async fn rebuild(app: App, args: &RebuildArgs, json: bool) -> Result<u8> {
    let export = app.export(&args.export).await?;
    if let Some(t) = &args.table {
        if !export.tables.iter().any(|x| &x.name == t) {
            return Err(anyhow!(Usage(format!("export {:?} has no table {t:?}", export.name))));
        }
    }
    let store = app.store(export)?;
    let scope = Scope { export: Some(export.name.clone()), table: args.table.clone(), since: None };
    match rebuild_history(store.as_ref(), app.history.as_ref(), &scope, &app.host).await {
        Ok(tables) => {
            if json {
                print_json(&tables)?;
            } else if tables.is_empty() {
                println!("{} holds no committed runs of export {}: nothing to rebuild", store.location(), export.name);
            } else {
                let rows: Vec<Vec<String>> = tables
                    .iter()
                    .map(|t| {
                        vec![
                            t.table.clone(),
                            output::count(t.runs),
                            output::count(t.kept),
                            t.watermark.as_ref().map(|w| w.to_string()).unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!("{}", output::table(&["TABLE", "RUNS RECORDED", "ALREADY RECORDED", "WATERMARK"], &rows));
                println!("the history of export {} is rebuilt from {}", export.name, store.location());
            }
            Ok(exit::OK)
        }
        Err(RebuildError::Unverified(report)) => {
            for f in report.findings.iter().filter(|f| f.severity == Severity::Violation) {
                eprintln!("{f}");
            }
            Err(anyhow!(RebuildError::Unverified(report)))
        }
        Err(RebuildError::Busy(holder)) => {
            eprintln!("error: {}", RebuildError::Busy(holder));
            Ok(exit::BUSY)
        }
        Err(e) => Err(anyhow!(e)),
    }
}
